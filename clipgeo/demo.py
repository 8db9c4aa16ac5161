"""The main job end to end, offline, on built-in data (``clipgeo demo`` / ``make demo``).

1. generate the captioned-shapes data (:mod:`clipgeo.data.shapes`);
2. train the ``tiny`` CLIP on it for a few minutes on the CPU (:mod:`clipgeo.train`);
3. extract raw embeddings of a fresh evaluation set with the trained model and with
   the same architecture untrained (:mod:`clipgeo.extract`);
4. analyze both stores (:func:`clipgeo.report.analyze`);
5. draw every figure from the trained model's analysis (:mod:`clipgeo.plotting`);
6. write ``report.md``: the paper's claims, the trained and the untrained model's
   numbers side by side, the figures embedded; and ``report.html``, the same two
   analyses as one self-contained page side by side (:func:`clipgeo.report.write_html`).

Given a folder of real CLIP embeddings (``realdata``: ``--realdata DIR``, default
``$CLIPGEO_REALDATA`` or the ``shared/realdata`` folder beside the checkout when it exists),
every embedding dump in it (a sub-folder with ``image_embeddings.npy`` and
``text_embeddings.npy`` or ``caption_embeddings.npy``) is imported and analyzed too, in a
section of their own beside the paper's values; the demo does not depend on them.  Each
step is skipped when its output already exists, so an interrupted demo continues where it
stopped.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import atomic_path, write_text
from .errors import ClipgeoError

if TYPE_CHECKING:  # pragma: no cover
    from .report import Report

#: file names of an embedding dump in the real-data folder: image, then the text candidates
REAL_IMAGE = "image_embeddings.npy"
REAL_TEXT = ("text_embeddings.npy", "caption_embeddings.npy")


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
    temperature : float or None
        Fixed temperature of the CLIP loss (None: learnable from 1/0.07).  0.01 by default: the
        setting of the geometry study (:mod:`clipgeo.train.study`, docs/train.md) that keeps the
        double ellipsoid — a persistent gap, offset ellipsoids, a separating feature — while
        learning; with the learnable scale a short run closes the gap.
    grad_clip : float or None
        Gradient-norm clip (the study's 1.0: without it a fixed τ = 0.01 run from the random
        init can collapse first).
    seed : int
    figures_dir : path, optional
        Also copy the trained model's PNG figures here (``make figures`` → figures/).
    realdata : path or None
        Folder of real embedding dumps to add a section on (default: :func:`default_realdata`).
    """

    out: Path
    n_train: int = 6000
    n_eval: int = 1500
    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    temperature: float | None = 0.01
    grad_clip: float | None = 1.0
    seed: int = 0
    figures_dir: Path | None = None
    realdata: Path | None = None


def default_realdata() -> Path | None:
    """``$CLIPGEO_REALDATA``, else ``shared/realdata`` beside the checkout this package runs from; None if absent."""
    env = os.environ.get("CLIPGEO_REALDATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    checkout = Path(__file__).resolve().parents[1]
    beside = checkout.parent / "shared" / "realdata"
    return beside if (checkout / "pyproject.toml").is_file() and beside.is_dir() else None


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
    """Run the whole demo; returns the path of ``report.md`` (``report.html`` beside it: both models side by side)."""
    from .data.shapes import CaptionedShapes, write_shapes
    from .data.sources import folder
    from .extract import ExtractOptions, extract
    from .plotting import render_figures
    from .report import REPORT_JSON, analyze, read_report, write_html
    from .store import read_store, status
    from .train.trainer import TrainConfig, train

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    realdata = config.realdata if config.realdata is not None else default_realdata()
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
            temperature=config.temperature, grad_clip=config.grad_clip,
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
        if status(root).complete:
            continue
        opts = ExtractOptions(
            model="tiny", pretrained="none", checkpoint=str(weights) if name == "trained" else None,
            batch_size=256, num_workers=1, device="cpu", seed=config.seed, progress=False,
        )
        extract(source, root, opts)
    steps.done(t, ", ".join(str(p) for p in stores.values()))

    # 4. analysis -------------------------------------------------------------------------------
    t = steps.start("analyzing both stores (every SPEC quantity)")
    reports: dict[str, Report] = {}
    for name, root in stores.items():
        adir = out / "analysis" / name
        if not (adir / REPORT_JSON).exists():
            analyze(read_store(root)).write(adir)
        reports[name] = read_report(adir)
    steps.done(t)

    # 5. figures --------------------------------------------------------------------------------
    t = steps.start("drawing every figure from the trained model's analysis")
    fig_dir = out / "figures"
    run = render_figures(out / "analysis" / "trained", fig_dir)
    if config.figures_dir is not None:
        copy_figures(fig_dir, run_dir / "curves.png", config.figures_dir)
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
    moments = real_moments(realdata) if realdata is not None else {}
    write_text(report, _render(config, reports, fig_dir, run_dir, metrics, real_section, out, time.perf_counter() - t_all,
                               moments=moments))  # fmt: skip
    # the same two analyses as one self-contained page, side by side (the trained model's figures as drawn above)
    page = write_html(
        [out / "analysis" / "trained", out / "analysis" / "untrained"], out, labels=["trained", "untrained"],
        figures_dirs=[fig_dir, None], title="clipgeo demo: trained vs untrained tiny CLIP",
    )  # fmt: skip
    steps.done(t, f"{report}, {page.path}")
    return report


def copy_figures(fig_dir: Path, curves: Path, dest: str | os.PathLike) -> list[Path]:
    """Copy the PNG figures of ``fig_dir`` (and the training ``curves``, as ``training_curves.png``) into ``dest``.

    Each copy is atomic (:func:`clipgeo._io.atomic_path`): an interrupted copy leaves the previous file, never
    part of one.  Returns the files written.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    pairs = [(png, dest / png.name) for png in sorted(Path(fig_dir).glob("*.png"))]
    if Path(curves).is_file():
        pairs.append((Path(curves), dest / "training_curves.png"))
    for src, target in pairs:
        with atomic_path(target) as tmp:
            shutil.copyfile(src, tmp)
    return [target for _, target in pairs]


# -- the report --------------------------------------------------------------------------------------

def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1e4 else f"{x:.3e}"
    return str(x)


def claim_rows(report: Report) -> list[tuple[str, str, str]]:
    """(claim of the paper, the paper's value, what this report shows) for the side-by-side table."""
    import numpy as np

    from .report import PAPER

    rows: list[tuple[str, str, str]] = []

    def add(key: str, here: str, m: str = "") -> None:
        rows.append((PAPER[key].claim.format(m=m), PAPER[key].paper, here))

    gap, sep = report.modality_gap, report.separability
    add("modality_gap", _fmt(None if gap is None else gap.l2_centroid_distance))
    if sep is not None and len(sep.ranking):
        top = int(sep.ranking[0])
        add("best_feature", f"{100 * sep.threshold_accuracy[top]:.1f} % (feature {top})")
        n100 = int(np.sum(sep.threshold_accuracy >= 0.999))
        add("perfect_features", f"{n100} of {len(sep.threshold_accuracy)}")
    add("linear_cv", _pct(None if sep is None else sep.linear_cv_accuracy))
    for m, ts in report.thin_shell.items():
        add("thin_shell", f"{_fmt(ts.mean_centered_norm)} ± {_fmt(ts.std_centered_norm)} vs {_fmt(ts.sqrt_trace_cov)}", m)
    for m, ms in report.mahalanobis_shell.items():
        add("mahalanobis_shell", f"{_fmt(ms.cv)} vs {_fmt(ms.euclidean_cv)}", m)
    for m, od in report.off_diagonal_dominance.items():
        add("off_diagonal_dominance", f"{_fmt(od.median)}; {_pct(od.fraction_above_1)}", m)
    for m, eo in report.ellipsoid_offset.items():
        add(f"offset_{m}", _fmt(eo.ratio))
    for m, c in report.conformity.items():
        add("conformity", _fmt(c.pearson, 5), m)
    cs = report.centroid_shift
    if cs is not None and len(cs.loss):
        add("centroid_shift_loss", f"α = {cs.alpha[int(np.argmin(cs.loss))]:+.1f}")
        if len(cs.conformity_kl):
            add("centroid_shift_kl", f"α = {cs.alpha[int(np.argmin(cs.conformity_kl))]:+.1f}")
    return rows


def _temperature_words(config: DemoConfig) -> str:
    if config.temperature is None:
        return "the learnable logit scale (from 1/0.07)"
    return f"a fixed temperature τ = {config.temperature:g} (logit scale {1 / config.temperature:g})"


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


#: folder of the real raw ViT-L/14 moments in the real-data folder (README of shared/realdata)
REAL_MOMENTS = "raw_moments_vitl14_coco"


def real_moments(realdata: Path) -> dict[str, str]:
    """Claim text -> value of the real **raw** OpenAI ViT-L/14 moments on MS-COCO, where they answer it.

    The folder holds the raw image mean and covariance and the raw text mean (no samples, no text
    covariance), so they give the image offset ratio ``‖m‖ / ‖σ‖ = ‖m‖ / sqrt(tr C)`` and the
    shell radius ``sqrt(tr C)``, and nothing that needs rows (gap of unit vectors, separability).
    Empty when the folder is absent.
    """
    import numpy as np

    from .report import PAPER

    folder = Path(realdata) / REAL_MOMENTS
    if not (folder / "image_mean.npy").is_file() or not (folder / "image_cov.npy").is_file():
        return {}
    mean = np.load(folder / "image_mean.npy").astype(np.float64)
    cov = np.load(folder / "image_cov.npy").astype(np.float64)
    radius = float(np.sqrt(np.trace(cov)))
    out = {
        PAPER["offset_image"].claim: f"{np.linalg.norm(mean) / radius:.3g} (‖m‖ {np.linalg.norm(mean):.2f}, √tr C {radius:.2f})",
        PAPER["thin_shell"].claim.format(m="image"): f"√tr C = {radius:.2f} (moments only)",
    }
    if (folder / "text_mean.npy").is_file():
        out[PAPER["offset_text"].claim] = f"‖m‖ {np.linalg.norm(np.load(folder / 'text_mean.npy').astype(np.float64)):.2f} (no covariance)"
    return out


def _render(config: DemoConfig, reports: dict[str, Report], fig_dir: Path, run_dir: Path,
            metrics: list[dict[str, Any]], real_section: str, out: Path, seconds: float,
            moments: dict[str, str] | None = None) -> str:
    rel = lambda p: os.path.relpath(p, out)  # noqa: E731
    trained, untrained = claim_rows(reports["trained"]), claim_rows(reports["untrained"])
    untrained_by_claim = {c: v for c, _, v in untrained}
    lines = [
        "# clipgeo demo: the double-ellipsoid geometry, from an untrained to a trained CLIP",
        "",
        f"A `tiny` CLIP (2-layer towers, 64-d) trained for {config.epochs} epochs on {config.n_train} captioned shapes "
        f"on the CPU with {_temperature_words(config)} (the setting the geometry study found to keep the double "
        f"ellipsoid: docs/train.md); both it and the same architecture untrained then embedded {config.n_eval} fresh shapes, and "
        f"`clipgeo analyze` measured every quantity of the paper on the raw (pre-normalisation) embeddings. "
        f"Total time {seconds / 60:.1f} min.",
        "",
        "## The paper's claims, side by side",
        "",
        "| claim (Levi & Gilboa 2025) | paper (ViT-B/32) | trained tiny CLIP | untrained | real ViT-L/14 (raw moments, COCO) |",
        "|---|---|---|---|---|",
    ]
    moments = moments or {}
    for claim, paper, value in trained:
        lines.append(f"| {claim} | {paper} | {value} | {untrained_by_claim.get(claim, '–')} | {moments.get(claim, '–')} |")
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


def real_sets(realdata: Path) -> list[tuple[str, Path, Path]]:
    """``(name, image file, text file)`` of every embedding dump in ``realdata`` (sub-folders, sorted by name)."""
    found = []
    for folder in sorted(p for p in Path(realdata).iterdir() if p.is_dir()) if Path(realdata).is_dir() else []:
        text = next((folder / t for t in REAL_TEXT if (folder / t).is_file()), None)
        if (folder / REAL_IMAGE).is_file() and text is not None:
            found.append((folder.name, folder / REAL_IMAGE, text))
    return found


def _real_section(realdata: Path, out: Path, log: Callable[[str], None]) -> str:
    """Import the real (unit-norm) CLIP embeddings at hand and report their modality gap beside the paper's."""
    from .report import PAPER, analyze
    from .store import import_embeddings, read_store, status

    lines = [f"## Real CLIP embeddings (from {realdata})", "",
             "These dumps were L2-normalised by whoever saved them, so only the unit-sphere quantities are meaningful "
             "(raw-space ones — thin shell, offsets — are degenerate on unit rows).", "",
             "| data | n | l2 centroid distance | best single feature (balanced acc.) | linear CV accuracy |", "|---|---|---|---|---|",
             f"| paper ({PAPER['modality_gap'].paper}) | – | {PAPER['modality_gap'].value} | {PAPER['best_feature'].paper} | "
             f"{PAPER['linear_cv'].paper} |"]  # fmt: skip
    for name, image, text in real_sets(realdata):
        store = out / name
        try:
            if not status(store).complete:
                import_embeddings(store, image=image, text=text, model_name=name)
            report = analyze(read_store(store))
        except ClipgeoError as exc:
            log(f"      skipped {name}: {exc}")
            continue
        sep, gap = report.separability, report.modality_gap
        top = None if sep is None else int(sep.ranking[0])
        best = "–" if top is None else f"{_pct(sep.threshold_accuracy[top])} (feature {top})"
        lines.append(f"| {name} | {report.n_pairs} | {_fmt(None if gap is None else gap.l2_centroid_distance)} | "
                     f"{best} | {_pct(None if sep is None else sep.linear_cv_accuracy)} |")
    return "\n".join(lines)
