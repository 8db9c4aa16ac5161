"""The main job end to end, offline, on built-in data (``clipgeo demo`` / ``make demo``).

1. generate the captioned-shapes data (:mod:`clipgeo.data.shapes`);
2. train the ``tiny`` CLIP on it for a few minutes on the CPU (:mod:`clipgeo.train`);
3. extract raw embeddings of a fresh evaluation set with the trained model and with
   the same architecture untrained (:mod:`clipgeo.extract`);
4. analyze both stores (:func:`clipgeo.report.analyze`);
5. draw every figure from the trained model's analysis (:mod:`clipgeo.plotting`);
6. write ``report.md``: the paper's claims, the trained and the untrained model's
   numbers side by side, the figures embedded.

If ``../shared/realdata`` (or ``$CLIPGEO_REALDATA``) exists, real CLIP embeddings from
there are imported and analyzed too, in a section of their own; the demo does not
depend on them.  Each step is skipped when its output already exists, so an
interrupted demo continues where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ClipgeoError


@dataclass
class DemoConfig:
    """Sizes of the demo; the defaults fit ~10 minutes on 2 CPU cores.

    Attributes
    ----------
    out : path
        Everything goes under this folder.
    n_train : int
        Captioned shapes to train on (a part of them is held out by the trainer).
    n_eval : int
        Fresh shapes (another seed) embedded by both models and analyzed.
    epochs, batch_size, lr : training schedule of the ``tiny`` CLIP.
    seed : int
    figures_dir : path, optional
        Also copy the trained model's PNG figures here (``make figures`` → figures/).
    realdata : path or None
        Folder of real embeddings to add a section on (default: ../shared/realdata if present).
    """

    out: Path
    n_train: int = 6000
    n_eval: int = 1500
    epochs: int = 12
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    figures_dir: Path | None = None
    realdata: Path | None = None


def _default_realdata() -> Path | None:
    env = os.environ.get("CLIPGEO_REALDATA")
    candidates = [Path(env)] if env else []
    candidates += [Path.cwd().parent / "shared" / "realdata", Path(__file__).resolve().parents[2] / "shared" / "realdata"]
    return next((c for c in candidates if c.is_dir()), None)


class _Steps:
    """Prints numbered steps with their wall time."""

    def __init__(self, total: int, log: Callable[[str], None]) -> None:
        self.total, self.log, self.i, self.t0 = total, log, 0, time.perf_counter()

    def start(self, what: str) -> float:
        self.i += 1
        self.log(f"[{self.i}/{self.total}] {what}")
        return time.perf_counter()

    def done(self, t: float, what: str = "") -> None:
        self.log(f"      done in {time.perf_counter() - t:.0f} s{(': ' + what) if what else ''}")


def run_demo(config: DemoConfig, log: Callable[[str], None] | None = None) -> Path:
    """Run the whole demo; returns the path of ``report.md``."""
    from .data.shapes import CaptionedShapes, write_shapes
    from .data.sources import folder
    from .extract import ExtractOptions, extract
    from .plotting import render_figures
    from .report import analyze
    from .store import read_store
    from .train.trainer import TrainConfig, train

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    realdata = config.realdata if config.realdata is not None else _default_realdata()
    steps = _Steps(6 if realdata is None else 7, log)
    t_all = time.perf_counter()

    # 1. data -------------------------------------------------------------------------------------
    t = steps.start(f"captioned shapes: {config.n_train} to train on, {config.n_eval} fresh ones to analyze")
    train_data = CaptionedShapes(config.n_train, seed=config.seed)
    eval_dir = out / "eval_shapes"
    if not (eval_dir / "captions.csv").exists():
        write_shapes(CaptionedShapes(config.n_eval, seed=config.seed + 1000), eval_dir)
    steps.done(t, str(eval_dir))

    # 2. training -------------------------------------------------------------------------------
    run_dir = out / "run"
    t = steps.start(f"training the tiny CLIP for {config.epochs} epochs on the CPU -> {run_dir}")
    weights = run_dir / "model.safetensors"
    if not weights.exists():
        tc = TrainConfig(
            out=str(run_dir), model="tiny", pretrained="none", epochs=config.epochs, batch_size=config.batch_size,
            lr=config.lr, seed=config.seed, device="cpu", precision="fp32", log_every=25,
            resume=(run_dir / "checkpoint.pt").exists(), data={"shapes": config.n_train, "seed": config.seed},
        )
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one thread: steady speed on a busy 2-core machine (BENCHMARKS.md, Training)
        try:
            result = train(tc, train_data, progress=True)
        finally:
            torch.set_num_threads(threads)
        m = result.metrics
        steps.done(t, f"held-out R@1 image->text {m.get('r1_image_to_text', float('nan')):.3f} "
                      f"(chance {m.get('chance_r1', float('nan')):.3f})")
    else:
        steps.done(t, "already trained")

    # 3. extraction -----------------------------------------------------------------------------
    t = steps.start("extracting raw embeddings of the fresh shapes: trained and untrained tiny CLIP")
    source = folder(eval_dir / "images", eval_dir / "captions.csv")
    stores = {"trained": out / "stores" / "trained", "untrained": out / "stores" / "untrained"}
    for name, root in stores.items():
        if (root / "manifest.json").exists() and json.loads((root / "manifest.json").read_text())["status"] == "complete":
            continue
        opts = ExtractOptions(
            model="tiny", pretrained="none", checkpoint=str(weights) if name == "trained" else None,
            batch_size=256, num_workers=1, device="cpu", seed=config.seed, progress=False,
        )
        extract(source, root, opts)
    steps.done(t, ", ".join(str(p) for p in stores.values()))

    # 4. analysis -------------------------------------------------------------------------------
    t = steps.start("analyzing both stores (every SPEC quantity)")
    reports: dict[str, dict[str, Any]] = {}
    for name, root in stores.items():
        adir = out / "analysis" / name
        if not (adir / "report.json").exists():
            analyze(read_store(root)).write(adir)
        reports[name] = json.loads((adir / "report.json").read_text())
    steps.done(t)

    # 5. figures --------------------------------------------------------------------------------
    t = steps.start("drawing every figure from the trained model's analysis")
    fig_dir = out / "figures"
    run = render_figures(out / "analysis" / "trained", fig_dir)
    if config.figures_dir is not None:
        dest = Path(config.figures_dir)
        dest.mkdir(parents=True, exist_ok=True)
        for png in sorted(fig_dir.glob("*.png")):
            shutil.copyfile(png, dest / png.name)
        curves = run_dir / "curves.png"
        if curves.exists():
            shutil.copyfile(curves, dest / "training_curves.png")
    steps.done(t, f"{len(run.written)} figures in {fig_dir}" + (f", {len(run.skipped)} skipped" if run.skipped else ""))

    # 6. real embeddings (optional) ---------------------------------------------------------------
    real_section = ""
    if realdata is not None:
        t = steps.start(f"real CLIP embeddings from {realdata}")
        real_section = _real_section(realdata, out / "real", log)
        steps.done(t)

    # 7. report ---------------------------------------------------------------------------------
    t = steps.start("writing the report")
    metrics = _training_table(run_dir / "metrics.csv")
    report = out / "report.md"
    report.write_text(_render(config, reports, fig_dir, run_dir, metrics, real_section, out, time.perf_counter() - t_all))
    steps.done(t, str(report))
    return report


# -- the report --------------------------------------------------------------------------------------

def _get(d: Any, *keys: Any, default: Any = None) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d or d[k] is None:
            return default
        d = d[k]
    return d


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"
    return str(x)


def claim_rows(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(claim of the paper, the paper's value, what this report shows) for the side-by-side table."""
    g = lambda *k: _get(report, *k)  # noqa: E731
    rows = []
    rows.append(("Modality gap: the two modalities sit apart (l2 centroid distance of unit vectors)",
                 "0.82 (ViT-B/32, COCO)", _fmt(g("modality_gap", "l2_centroid_distance"))))
    feats = g("separability", "features") or []
    if feats:
        top = feats[0]
        rows.append(("A few raw features separate image from text on their own (best single-feature balanced accuracy)",
                     "100 % (2 features)", f"{100 * top['threshold_accuracy']:.1f} % (feature {top['feature']})"))
        n100 = sum(1 for f in feats if f["threshold_accuracy"] >= 0.999)
        rows.append(("Features that separate the modalities perfectly alone", "2 of 512", f"{n100} of {len(feats)}"))
    rows.append(("Linear separability, 5-fold cross-validated", "≈100 %", _pct(g("separability", "linear_cv_accuracy"))))
    for m in ("image", "text"):
        ts = g("thin_shell", m)
        if ts:
            rows.append((f"Thin shell ({m}): centred norm ≈ sqrt(tr C), small relative thickness",
                         "mean² 57.6 vs var 0.19 (image)",
                         f"{_fmt(ts['mean_centered_norm'])} ± {_fmt(ts['std_centered_norm'])} vs {_fmt(ts['sqrt_trace_cov'])}"))
    for m in ("image", "text"):
        ms = g("mahalanobis_shell", m)
        if ms:
            rows.append((f"Ellipsoidal shell ({m}): Mahalanobis cv vs Euclidean cv", "thinner than Euclidean",
                         f"{_fmt(ms['cv'])} vs {_fmt(ms['euclidean_cv'])}"))
    for m in ("image", "text"):
        od = g("off_diagonal_dominance", m)
        if od:
            rows.append((f"Tilted ellipsoid ({m}): median off-diagonal dominance; fraction of rows > 1", "> 1",
                         f"{_fmt(od['median'])}; {_pct(od['fraction_above_1'])}"))
    for m, paper in (("image", "0.94"), ("text", "1.03")):
        eo = g("ellipsoid_offset", m)
        if eo:
            rows.append((f"Centre far from the origin ({m}): ‖m‖ / ‖σ‖", paper, _fmt(eo["ratio"])))
    for m in ("image", "text"):
        c = g("conformity", m)
        if c:
            rows.append((f"Conformity ≈ a·cos(x, m) + b ({m}): Pearson r", "0.9998", _fmt(c["pearson"], 5)))
    cs = g("centroid_shift")
    if cs and cs.get("loss"):
        import numpy as np

        alphas, loss = cs["alpha"], cs["loss"]
        best = alphas[int(np.argmin(loss))]
        rows.append(("Contrastive loss is lowest where training put the ellipsoid (argmin over α of the image shift)",
                     "α = 0", f"α = {best:+.1f}"))
        kl = cs.get("conformity_kl")
        if kl:
            rows.append(("Image/text conformity distributions match best at α = 0 (argmin KL)", "α = 0",
                         f"α = {alphas[int(np.argmin(kl))]:+.1f}"))
    return rows


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * float(x):.1f} %"


def _training_table(metrics_csv: Path) -> list[dict[str, Any]]:
    if not metrics_csv.exists():
        return []
    import pandas as pd

    frame = pd.read_csv(metrics_csv)
    if len(frame) == 0:
        return []
    keep = [c for c in ("step", "epoch", "loss", "logit_scale", "r1_image_to_text", "r1_text_to_image", "chance_r1",
                        "l2_centroid_distance") if c in frame.columns]
    picks = sorted({0, len(frame) // 2, len(frame) - 1})
    return frame.iloc[picks][keep].to_dict("records")


def _render(config: DemoConfig, reports: dict[str, dict[str, Any]], fig_dir: Path, run_dir: Path,
            metrics: list[dict[str, Any]], real_section: str, out: Path, seconds: float) -> str:
    rel = lambda p: os.path.relpath(p, out)  # noqa: E731
    trained, untrained = claim_rows(reports["trained"]), claim_rows(reports["untrained"])
    untrained_by_claim = {c: v for c, _, v in untrained}
    lines = [
        "# clipgeo demo: the double-ellipsoid geometry, from an untrained to a trained CLIP",
        "",
        f"A `tiny` CLIP (2-layer towers, 64-d) trained for {config.epochs} epochs on {config.n_train} captioned shapes "
        f"on the CPU; both it and the same architecture untrained then embedded {config.n_eval} fresh shapes, and "
        f"`clipgeo analyze` measured every quantity of the paper on the raw (pre-normalisation) embeddings. "
        f"Total time {seconds / 60:.1f} min.",
        "",
        "## The paper's claims, side by side",
        "",
        "| claim (Levi & Gilboa 2025) | paper (ViT-B/32) | trained tiny CLIP | untrained |",
        "|---|---|---|---|",
    ]
    for claim, paper, value in trained:
        lines.append(f"| {claim} | {paper} | {value} | {untrained_by_claim.get(claim, '–')} |")
    lines += ["", "Definitions: docs/SPEC.md in the clipgeo repository (each quantity's exact formula is in its analyzer's docstring).", ""]
    if metrics:
        lines += ["## Training", "", "| " + " | ".join(metrics[0]) + " |", "|" + "---|" * len(metrics[0])]
        for row in metrics:
            lines.append("| " + " | ".join(_fmt(v) for v in row.values()) + " |")
        if (run_dir / "curves.png").exists():
            lines += ["", f"![training curves]({rel(run_dir / 'curves.png')})"]
        lines.append("")
    lines += ["## Figures (trained model)", ""]
    for png in sorted(fig_dir.glob("*.png")):
        lines += [f"### {png.stem.replace('_', ' ')}", "", f"![{png.stem}]({rel(png)})", ""]
    lines += ["## Where everything is", "",
              f"- stores: `{rel(out / 'stores')}` (read with `clipgeo info` or `cg.read_store`)",
              f"- analyses: `{rel(out / 'analysis')}` (report.json, report.md, CSV tables per model)",
              f"- training run: `{rel(run_dir)}` (metrics.csv, curves.png, model.safetensors)", ""]
    if real_section:
        lines += [real_section, ""]
    return "\n".join(lines)


_REAL = (
    ("hm_products1126_clip512", "image_embeddings.npy", "text_embeddings.npy", "H&M products, 512-d CLIP"),
    ("flickr8k_100x5_clip_vitb32", "image_embeddings.npy", "text_embeddings.npy", "Flickr8k, CLIP ViT-B/32"),
    ("unsplash290_clip_vitb32", "image_embeddings.npy", "caption_embeddings.npy", "Unsplash, CLIP ViT-B/32"),
)


def _real_section(realdata: Path, out: Path, log: Callable[[str], None]) -> str:
    """Import the real (unit-norm) CLIP embeddings at hand and report their modality gap."""
    from .report import analyze
    from .store import import_embeddings, read_store

    lines = ["## Real CLIP embeddings (from ../shared/realdata)", "",
             "These dumps were L2-normalised by whoever saved them, so only the unit-sphere quantities are meaningful "
             "(raw-space ones — thin shell, offsets — are degenerate on unit rows).", "",
             "| data | n | l2 centroid distance | best single feature (balanced acc.) | linear CV accuracy |", "|---|---|---|---|---|"]
    for folder_name, image, text, label in _REAL:
        d = realdata / folder_name
        if not (d / image).exists():
            continue
        store = out / folder_name
        try:
            if not (store / "manifest.json").exists():
                import_embeddings(store, image=d / image, text=d / text, model_name=label)
            data = analyze(read_store(store)).to_dict()
        except ClipgeoError as exc:
            log(f"      skipped {folder_name}: {exc}")
            continue
        feats = _get(data, "separability", "features") or [{}]
        lines.append(f"| {label} | {data['n_pairs']} | {_fmt(_get(data, 'modality_gap', 'l2_centroid_distance'))} | "
                     f"{_pct(feats[0].get('threshold_accuracy'))} (feature {feats[0].get('feature', '–')}) | "
                     f"{_pct(_get(data, 'separability', 'linear_cv_accuracy'))} |")
    return "\n".join(lines)
