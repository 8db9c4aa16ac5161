"""The analysis run: every SPEC measurement the data allows, on one embedding set -> :class:`Report`.

Uses the public analyzer functions only (:mod:`clipgeo.analyzers`) and the thin-shell simulation of
:mod:`clipgeo.synthetic`; no file I/O.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from .. import analyzers as az
from .._io import to_jsonable
from ..analyzers._blocks import float_rows
from ..errors import InputError
from ..validation import check_features
from ._config import AnalyzeConfig
from ._names import MODALITIES
from ._result import Report

#: the per-modality analyses, in the order they run
_PER_MODALITY = ("thin_shell", "mahalanobis_shell", "off_diagonal_dominance", "ellipsoid_offset", "conformity")
_PAIRED = ("centroid_shift", "alignment_uniformity", "cosine_gradient")


def _rows_info(es: Any, modality: str, n: int) -> dict[str, np.ndarray]:
    def get(name: str):
        value = getattr(es, name, None)
        return None if value is None or len(value) != n else np.asarray(value)

    info: dict[str, np.ndarray] = {}
    ids = get("image_ids" if modality == "image" else "text_ids")
    if ids is not None:
        info["ids"] = ids
    if modality == "image":
        paths = get("image_paths")
        if paths is not None:
            info["paths"] = paths
    else:
        captions = get("captions")
        if captions is not None:
            info["captions"] = captions
        link = get("text_image_index")
        if link is not None:
            info["image_row"] = link
    return info


def _pair_rows(es: Any, n_image: int, n_text: int) -> tuple[np.ndarray, np.ndarray]:
    """``(image_rows, text_rows)`` of the matched pairs: from ``text_image_index``, else row i with row i."""
    none = np.zeros(0, dtype=np.int64)
    if n_image == 0 or n_text == 0:
        return none, none
    link = getattr(es, "text_image_index", None)
    if link is None:
        if n_image != n_text:
            return none, none
        return np.arange(n_image), np.arange(n_text)
    link = np.asarray(link)
    text_rows = np.flatnonzero(link >= 0)
    return link[text_rows].astype(np.int64), text_rows


def analyze(embedding_set: Any, config: AnalyzeConfig | None = None, /, **options: Any) -> Report:
    """Run every analyzer the data allows on an embedding set.

    Parameters
    ----------
    embedding_set : EmbeddingSet
        Or any object with ``image`` (n_image, d) and ``text`` (n_text, d)
        arrays, and optionally ``text_image_index``, ``captions``,
        ``image_paths``, ``image_ids``, ``text_ids``, ``meta``.
    config : AnalyzeConfig, optional
        The options (default ``AnalyzeConfig()``; see its attributes).
    **options
        Fields of :class:`AnalyzeConfig` replacing those of ``config``, e.g. ``analyze(es, linear_cv=False)``.

    Returns
    -------
    Report
        With ``config`` the resolved options (``alphas`` expanded) and the thin-shell simulation
        (``thin_shell_theory``, seeded with ``config.seed``).

    Raises
    ------
    InputError
        An unknown or invalid option, arrays of the wrong shape, no rows at all.

    Notes
    -----
    Separability, the gap and the PCA use all rows of each modality; the
    centroid shift, Wang–Isola metrics, cosine gradient and matched cosine use
    the matched pairs (``text_image_index``), so an image with several
    captions appears once per caption there.  An analysis that cannot run
    (one modality, fewer than 2 rows, no pairs) is recorded in
    ``Report.skipped`` with the reason, and the others still run.
    """
    from ..synthetic import thin_shell_curve

    cfg = AnalyzeConfig.from_options(config, **options)
    alphas = az.default_alphas() if cfg.alphas is None else np.asarray(cfg.alphas, dtype=np.float64)

    meta_obj = getattr(embedding_set, "meta", None)
    meta = meta_obj.to_dict() if hasattr(meta_obj, "to_dict") else {}
    raw = {"image": getattr(embedding_set, "image", None), "text": getattr(embedding_set, "text", None)}
    arrays: dict[str, np.ndarray] = {}
    dim = None
    for m in MODALITIES:
        if raw[m] is None:
            continue
        # float rows stay as given (a float32 store sample is not widened here: each analyzer widens
        # what it needs, block by block); other numeric input becomes float64
        x = float_rows(raw[m], f"{m} embeddings", min_rows=0, dim=dim)
        if x.shape[0] == 0:
            continue
        dim = x.shape[1]
        arrays[m] = x
    if not arrays:
        raise InputError("the embedding set has no image and no text rows; nothing to analyze")
    dim = next(iter(arrays.values())).shape[1]
    named = check_features(cfg.features, dim)  # before any work: a feature >= d is a one-line error
    empty = np.empty((0, dim))
    image, text = arrays.get("image", empty), arrays.get("text", empty)
    image_rows, text_rows = _pair_rows(embedding_set, len(image), len(text))

    report = Report(
        dim=dim,
        n_image=len(image),
        n_text=len(text),
        n_pairs=len(image_rows),
        config={**cfg.to_dict(), "alphas": [float(a) for a in alphas]},
        meta=to_jsonable(meta),
        rows={m: _rows_info(embedding_set, m, len(arrays[m])) for m in arrays},
    )
    for m, x in arrays.items():
        report.unit_norm[m] = az.rows_are_unit(x)
        if report.unit_norm[m]:
            report.warnings.append(
                f"{m} rows are already unit-norm: the raw-space analyses (thin shell, Mahalanobis shell, "
                "ellipsoid offset, raw centroid distance, conformity estimate from the raw mean) are degenerate; "
                "extract raw embeddings (`clipgeo extract`, encode_*(x, normalize=False)) to measure them"
            )

    from .._progress import progress

    bar = progress(desc="analyze", unit="step")  # one tick per analysis (shown on a terminal only)

    def run(name: str, fn, *args, **kwargs):
        bar.set_postfix_str(name, refresh=False)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", az.UnitNormWarning)
            result = fn(*args, **kwargs)
        report.timings[name] = report.timings.get(name, 0.0) + time.perf_counter() - start
        bar.update(1)
        return result

    # per modality
    for m in MODALITIES:
        x = arrays.get(m)
        if x is None:
            reason = f"no {m} rows in the store"
        elif len(x) < 2:
            reason = f"{m} has {len(x)} row; these measurements need at least 2"
        else:
            reason = None
        if reason:
            for name in _PER_MODALITY:
                report.skipped[f"{name}.{m}"] = reason
            continue
        report.thin_shell[m] = run("thin_shell", az.thin_shell, x)
        report.mahalanobis_shell[m] = run("mahalanobis_shell", az.mahalanobis_shell, x, seed=cfg.seed)
        report.off_diagonal_dominance[m] = run("off_diagonal_dominance", az.off_diagonal_dominance, x)
        report.ellipsoid_offset[m] = run("ellipsoid_offset", az.ellipsoid_offset, x)
        report.conformity[m] = run("conformity", az.conformity, x, cfg.conformity, max_rows=cfg.max_rows_conformity)
        if report.conformity[m].method != cfg.conformity:
            report.warnings.append(
                f"{m}: {len(x)} rows exceed max_rows_conformity={cfg.max_rows_conformity}, so the exact "
                "conformity was computed with the O(N d) unit-mean identity (the same numbers) instead of the pairwise sum"
            )

    # both modalities
    if len(image) >= 2 and len(text) >= 2:
        report.modality_gap = run("modality_gap", az.modality_gap, image, text, pairs=(image_rows, text_rows))
        report.separability = run(
            "separability",
            az.feature_separability,
            image,
            text,
            top_k=cfg.top_k_pairs,
            cv_folds=cfg.cv_folds,
            linear_cv=cfg.linear_cv,
            seed=cfg.seed,
        )
        if report.separability.linear_cv_skipped and cfg.linear_cv:
            report.skipped["separability.linear_cv_accuracy"] = report.separability.linear_cv_skipped
    else:
        reason = "needs at least 2 image rows and 2 text rows"
        report.skipped["modality_gap"] = reason
        report.skipped["separability"] = reason
    report.projection = run("pca", az.pca_projection, image if len(image) else None, text if len(text) else None)

    # matched pairs (the centroid shift batches distinct images: it needs two of them)
    if len(np.unique(image_rows)) >= 2:
        # the image row of every text row (-1: none): the sweeps batch each image once, one caption per draw
        image_index = np.full(len(text), -1, dtype=np.int64)
        image_index[text_rows] = image_rows
        report.centroid_shift = run(
            "centroid_shift",
            az.centroid_shift,
            image,
            text,
            alphas,
            cfg.temperature,
            image_index=image_index,
            batch_size=cfg.batch_size,
            kl_bins=cfg.kl_bins,
            seed=cfg.seed,
        )
        identity = len(image_rows) == len(image) == len(text) and bool(
            np.array_equal(image_rows, text_rows) and np.array_equal(text_rows, np.arange(len(text)))
        )
        # row i with row i: the arrays themselves, no copies of the pairs
        pair_img, pair_txt = (image, text) if identity else (image[image_rows], text[text_rows])
        report.alignment_uniformity = run(
            "alignment_uniformity",
            az.alignment_uniformity,
            pair_img,
            pair_txt,
            max_rows=cfg.uniformity_rows,
            seed=cfg.seed,
        )
        report.cosine_gradient = run(
            "cosine_gradient",
            az.cosine_gradient,
            image,
            text,
            alphas,
            image_index=image_index,
            n_samples=cfg.gradient_samples,
            seed=cfg.seed,
        )
    else:
        reason = (
            f"no matched image-text pairs in the store: none of its {len(text)} text rows names an image "
            "(import with pairs, e.g. `clipgeo import --pairs FILE`)"
            if len(image_rows) == 0
            else "needs matched pairs of at least 2 distinct images"
        )
        for name in _PAIRED:
            report.skipped[name] = reason

    # raw values of the features the figures draw
    chosen: list[int] = list(range(min(10, dim)))
    if report.separability is not None:
        chosen += [int(k) for k in report.separability.ranking[:10]]
        if report.separability.best_pair is not None:
            chosen += list(report.separability.best_pair)
    chosen = sorted(set(chosen) | set(named))
    report.top_feature_values = {
        m: {k: np.array(x[:, k], dtype=np.float64) for k in chosen} for m, x in arrays.items()
    }  # float64 as ever, whatever the rows' dtype

    # beyond the paper (SPEC §12): gap metrics, per-pair conformity, retrieval, spectrum, whitening, bootstrap
    from ._beyond import run_beyond

    run_beyond(report, arrays, image_rows, text_rows, cfg, run)

    # the theory of SPEC §3, independent of the data (drawn by the thin_shell_theory figure)
    report.thin_shell_theory = thin_shell_curve(seed=cfg.seed)
    bar.close()
    return report
