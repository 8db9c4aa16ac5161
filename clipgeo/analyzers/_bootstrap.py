"""Error bars (SPEC §12): bootstrap 95 % intervals of the headline numbers.

Each draw resamples the *images* with replacement (seeded) and every caption comes along with its image
(captions without an image are resampled on their own).  A draw is a vector of multiplicities ``c`` (how
often each row was drawn), and every headline is a function of weighted sums over rows -- means, second
moments, the sum of the unit rows -- so a draw costs a few (draws × rows) × d products instead of a re-run of
the analyzers.  Each formula equals its analyzer on the resampled rows exactly (duplicated rows included),
except two that are stated: the best single feature is re-scored among the full data's top features only,
and the centroid-shift loss is resampled from per-pair loss terms on fixed batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..validation import check_embeddings, check_pair_index, unit_rows
from ._gap_metrics import D_M_FLOOR
from ._pairs import image_groups, matched_pairs
from ._result import Result

#: default number of bootstrap draws (``clipgeo analyze --bootstrap``)
DEFAULT_N_BOOT = 200
#: (rows × draws) elements of one chunk of the per-row bootstrap arrays (32 MB of float64)
_CHUNK_ELEMENTS = 4_000_000
#: largest 2/τ for which one constant shift keeps every exp(S - 1/τ) above float64 underflow
_CONSTANT_SHIFT_LIMIT = 600.0


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile interval: ``low``, ``high`` (2.5 and 97.5 percentiles) of ``n`` valid draws."""

    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, Any]:
        from ._result import plain

        return plain({"low": self.low, "high": self.high, "n_boot": self.n})


@dataclass(frozen=True, repr=False)
class BootstrapResult(Result):
    """Bootstrap intervals of the headline numbers.

    Attributes
    ----------
    n_boot, seed : int
    level : float
        0.95: intervals run from the 2.5th to the 97.5th percentile of the draws.
    n_image, n_text : int
        Rows resampled.
    intervals : dict of str to Interval
        By dotted report.json path of the headline (``"modality_gap.l2_centroid_distance"``,
        ``"ellipsoid_offset.image.ratio"``, …).
    draws : dict of str to ndarray of shape (n_boot,)
        The bootstrap values behind each interval (NaN where a draw was degenerate).
    notes : dict of str to str
        How a headline was resampled, where it is not the exact analyzer on the resampled rows.
    """

    n_boot: int
    seed: int
    level: float
    n_image: int
    n_text: int
    intervals: dict[str, Interval]
    draws: dict[str, np.ndarray]
    notes: dict[str, str]

    _arrays = ("draws",)

    def _summary(self) -> dict[str, Any]:
        return {
            "n_boot": self.n_boot,
            "seed": self.seed,
            "level": self.level,
            "method": "percentile bootstrap; images resampled with replacement, captions follow their image",
            "intervals": {k: v.to_dict() for k, v in self.intervals.items()},
            "notes": dict(self.notes),
        }

    def interval(self, name: str) -> Interval | None:
        """The interval of one headline (dotted name), or None when it was not bootstrapped."""
        return self.intervals.get(name)


# -- resampling weights ----------------------------------------------------------------------------------


def resample_weights(
    n_image: int, link: np.ndarray, n_boot: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Multiplicities of the image and text rows in ``n_boot`` draws.

    Returns
    -------
    w_img : ndarray of shape (n_boot, n_image), float64
        How often each image was drawn (multinomial, n_image draws).
    w_txt : ndarray of shape (n_boot, n_text), float64
        A caption's multiplicity is its image's; captions with no image (-1) are drawn among themselves.
    """
    n_text = len(link)
    w_img = (
        rng.multinomial(n_image, np.full(n_image, 1.0 / n_image), size=n_boot).astype(np.float64)
        if n_image
        else np.zeros((n_boot, 0))
    )
    w_txt = np.zeros((n_boot, n_text))
    has = link >= 0
    if has.any():
        w_txt[:, has] = w_img[:, link[has]]
    alone = np.flatnonzero(~has)
    if len(alone):
        w_txt[:, alone] = rng.multinomial(len(alone), np.full(len(alone), 1.0 / len(alone)), size=n_boot)
    return w_img, w_txt


def _weighted_pearson_columns(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson r of columns b of ``x`` and ``y`` (n, B) with row weights ``w.T`` (B, n); NaN where constant."""
    total = w.sum(axis=1)  # (B,)
    mx = np.einsum("bn,nb->b", w, x) / total
    my = np.einsum("bn,nb->b", w, y) / total
    xc, yc = x - mx, y - my
    sxx = np.einsum("bn,nb->b", w, xc * xc)
    syy = np.einsum("bn,nb->b", w, yc * yc)
    sxy = np.einsum("bn,nb->b", w, xc * yc)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    return np.where((sxx > 0) & (syy > 0), r, np.nan)


@dataclass
class _Modality:
    """Per-draw statistics of one modality (all arrays over the B draws)."""

    offset_ratio: np.ndarray
    relative_thickness: np.ndarray
    conformity_mean: np.ndarray
    conformity_pearson: np.ndarray
    unit_mean: np.ndarray  # (B, d) mean of the unit rows
    conformity: np.ndarray  # (n, B) exact conformity of each row within draw b


def _modality_draws(x: np.ndarray, w: np.ndarray) -> _Modality:
    """Offset ratio, thin-shell thickness, conformity mean and r for every draw (rows ``x`` (n, d), weights ``w`` (B, n))."""
    total = w.sum(axis=1)  # (B,) = n for the images; varies for captions of several-caption images
    n, d = x.shape
    m_full = x.mean(axis=0)
    xc = x - m_full  # centring first keeps the second moments well conditioned
    u = unit_rows(x)
    sums = w @ np.hstack([xc, xc * xc, u])  # (B, 3d): one product for the three weighted sums
    mc = sums[:, :d] / total[:, None]  # resampled mean, relative to the full mean
    var = (sums[:, d : 2 * d] - total[:, None] * mc * mc) / (total - 1)[:, None]  # (B, d), ddof = 1
    s = sums[:, 2 * d :]  # (B, d): Σ w u, the sum of the resampled unit rows
    mean = mc + m_full
    offset = np.linalg.norm(mean, axis=1) / np.sqrt(np.maximum(var, 0).sum(axis=1))

    # centred norms ||x_j - m_b|| = sqrt(||xc_j||² - 2 xc_j·mc_b + ||mc_b||²)
    xc_mc = xc @ mc.T  # (n, B)
    sq = np.einsum("ij,ij->i", xc, xc)
    r = np.sqrt(np.maximum(sq[:, None] - 2 * xc_mc + np.einsum("bj,bj->b", mc, mc)[None, :], 0.0))
    mu = np.einsum("bn,nb->b", w, r) / total
    sd = np.sqrt(np.einsum("bn,nb->b", w, (r - mu) ** 2) / (total - 1))
    thickness = sd / mu

    # conformity within the draw: C_j = (u_j · s_b - ||u_j||²) / (N_b - 1)
    uu = np.einsum("ij,ij->i", u, u)  # 1, or 0 for a zero row
    conf = (u @ s.T - uu[:, None]) / (total - 1)[None, :]  # (n, B)
    conf_mean = (np.einsum("bj,bj->b", s, s) - w @ uu) / (total * (total - 1))
    # estimate: cos(x_j, m_b) with x_j · m_b = xc_j · mc_b + xc_j · m + m · m_b (no further (n, B) product)
    dots = xc_mc + (xc @ m_full)[:, None] + (mean @ m_full)[None, :]
    xn = np.linalg.norm(x, axis=1)
    mn = np.linalg.norm(mean, axis=1)
    denom = xn[:, None] * mn[None, :]
    est = np.divide(dots, denom, out=np.zeros_like(denom), where=denom > 0)
    pearson = _weighted_pearson_columns(conf, est, w)
    return _Modality(offset, thickness, conf_mean, pearson, s / total[:, None], conf)


def weighted_best_accuracy(values: np.ndarray, is_image: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Best balanced single-threshold accuracy of one feature under each draw's row weights.

    Parameters
    ----------
    values : ndarray of shape (n,)
        The feature on the pooled rows (images and texts).
    is_image : ndarray of bool, shape (n,)
    w : ndarray of shape (B, n)
        Row multiplicities per draw.

    Returns
    -------
    ndarray of shape (B,)
        ``max over cuts, both orientations`` of ``½ (recall_img + recall_txt)``, cuts only between distinct
        values -- SPEC §2's ``threshold_accuracy`` on the resampled rows.
    """
    order = np.argsort(values, kind="stable")
    v = values[order]
    lab = is_image[order]
    ends = np.ones(len(v), dtype=bool)
    ends[:-1] = v[1:] != v[:-1]
    # multiplicities are small integers: int32 cumulative sums are exact and half the memory of float64
    ws = np.ascontiguousarray(w[:, order], dtype=np.int32)  # (B, n)
    cum_all = np.cumsum(ws, axis=1, dtype=np.int32)[:, ends]
    ws *= lab  # image rows only
    cum_img = np.cumsum(ws, axis=1, dtype=np.int32)[:, ends]
    del ws
    n_img = cum_img[:, -1:].astype(np.float64)
    n_txt = (cum_all[:, -1:] - cum_img[:, -1:]).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bal = 0.5 * ((cum_all - cum_img) / n_txt + (n_img - cum_img) / n_img)
    gain = np.abs(bal - 0.5)
    return 0.5 + np.nanmax(np.maximum(gain, 0.0), axis=1)


def pair_shift_terms(
    img: np.ndarray, txt: np.ndarray, alphas: np.ndarray, temperature: float, batch_size: int, seed: int
) -> np.ndarray:
    """Each pair's share of the symmetric InfoNCE at every shift α, on one fixed set of batches.

    Parameters
    ----------
    img, txt : ndarrays of shape (n, d)
        One caption per image (matched rows), raw image rows.
    alphas : ndarray of shape (k,)
    temperature : float
    batch_size : int
        B; pairs are shuffled (seeded) and cut into batches of min(n, B), the last partial batch kept.

    Returns
    -------
    ndarray of shape (n, k)
        ``-S_pp + ½ (logsumexp_j S_pj + logsumexp_i S_ip)`` of pair p inside its batch (SPEC §8, with
        ``S = cos(x_i - α m, t_j) / τ``); their mean over the pairs is the batch-size-weighted loss.
    """
    n = len(img)
    m = img.mean(axis=0)
    t = unit_rows(txt)
    order = np.random.default_rng(seed).permutation(n)
    size = min(n, int(batch_size))
    cuts = list(range(0, n, size)) + [n]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] == 1:  # a batch of one pair has no negative
        del cuts[-2]
    sq = np.einsum("ij,ij->i", img, img)
    xm, mm, tm = img @ m, float(m @ m), t @ m
    terms = np.empty((n, len(alphas)))
    c = 1.0 / temperature
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        rows = order[lo:hi]
        g = img[rows] @ t[rows].T  # (b, b): x_i · t_j
        s = np.empty_like(g)
        for k, al in enumerate(alphas):
            norm = np.sqrt(np.maximum(sq[rows] - 2 * al * xm[rows] + al * al * mm, 0.0))
            scale = np.divide(c, norm, out=np.zeros_like(norm), where=norm > 0)
            np.subtract(g, al * tm[rows][None, :], out=s)
            s *= scale[:, None]  # S_ij = cos(x_i - α m, t_j) / τ, |S| <= 1/τ
            diag = np.diag(s).copy()
            if 2.0 * c < _CONSTANT_SHIFT_LIMIT:
                s -= c  # every logit in [-2c, 0]: exp neither overflows nor underflows
                np.exp(s, out=s)
                lse_r, lse_c = c + np.log(s.sum(axis=1)), c + np.log(s.sum(axis=0))
            else:
                from scipy.special import logsumexp

                lse_r, lse_c = logsumexp(s, axis=1), logsumexp(s, axis=0)
            terms[rows, k] = -diag + 0.5 * (lse_r + lse_c)
    return terms


def _interval(draws: np.ndarray) -> Interval:
    ok = draws[np.isfinite(draws)]
    if len(ok) == 0:
        return Interval(float("nan"), float("nan"), 0)
    low, high = np.percentile(ok, [2.5, 97.5])
    return Interval(float(low), float(high), int(len(ok)))


def bootstrap(
    img: object = None,
    txt: object = None,
    image_index: object = None,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    separability_features: object = None,
    alphas: object = None,
    temperature: float = 0.01,
    batch_size: int = 1024,
) -> BootstrapResult:
    """Bootstrap 95 % intervals of the SPEC §12 headline numbers.

    Parameters
    ----------
    img : array-like of shape (n_image, d), optional
        Raw image rows.
    txt : array-like of shape (n_text, d), optional
        Raw text rows.
    image_index : array-like of int, shape (n_text,), optional
        Image row of each text row (-1: none).  Default: row i ↔ row i when the counts agree, else no pairs.
    n_boot : int
        Draws (200 by default; at least 2).
    seed : int
    separability_features : array-like of int, optional
        Features re-scored for the best single-feature accuracy (e.g. the top 10 of
        ``feature_separability``); omitted: that headline is not bootstrapped.
    alphas : array-like, optional
        Grid of the centroid shift (default -1 … 1 step 0.1); with ``temperature`` and ``batch_size`` as in
        ``centroid_shift``.

    Returns
    -------
    BootstrapResult
        Intervals keyed by report.json path: ``modality_gap.l2_centroid_distance``, ``gap_metrics.l2i``,
        ``gap_metrics.rmg``, ``ellipsoid_offset.<m>.ratio``, ``thin_shell.<m>.relative_thickness``,
        ``conformity.<m>.mean``, ``conformity.<m>.pearson``, ``pair_conformity.pearson``,
        ``separability.best_threshold_accuracy``, ``centroid_shift.loss_argmin`` -- those the data allows.
    """
    n_boot = int(n_boot)
    if n_boot < 2:
        raise InputError(f"n_boot must be at least 2 draws, got {n_boot} (0 turns the bootstrap off in analyze)")
    arrays: dict[str, np.ndarray] = {}
    for name, x in (("image", img), ("text", txt)):
        if x is not None:
            arr = check_embeddings(
                x, f"{name} rows", min_rows=0, dim=None if not arrays else next(iter(arrays.values())).shape[1]
            )
            if len(arr):
                arrays[name] = arr
    if not arrays:
        raise InputError("no image and no text rows to bootstrap")
    n_i = len(arrays.get("image", ()))
    n_t = len(arrays.get("text", ()))
    if image_index is None and n_i != n_t:
        link = np.full(n_t, -1, dtype=np.int64)
    else:
        link = check_pair_index(image_index, "image_index", n_image=n_i, n_text=n_t) if n_t else np.zeros(0, np.int64)
    if n_i == 0:
        link = np.full(n_t, -1, dtype=np.int64)
    rng = np.random.default_rng(seed)
    w_img, w_txt = resample_weights(n_i, link, n_boot, rng)
    weights = {"image": w_img, "text": w_txt}
    draws: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    rows_img, rows_txt = matched_pairs(link)
    both = "image" in arrays and "text" in arrays and n_i >= 3 and n_t >= 3
    # draws in chunks, so that the (rows × draws) arrays stay near _CHUNK_ELEMENTS elements
    step = max(1, int(_CHUNK_ELEMENTS // max(n_i, n_t, 1)))
    parts: list[dict[str, np.ndarray]] = []
    for lo in range(0, n_boot, step):
        sl = slice(lo, min(lo + step, n_boot))
        per = {m: _modality_draws(x, weights[m][sl]) for m, x in arrays.items() if len(x) >= 3}
        part: dict[str, np.ndarray] = {}
        for m, res in per.items():
            part[f"ellipsoid_offset.{m}.ratio"] = res.offset_ratio
            part[f"thin_shell.{m}.relative_thickness"] = res.relative_thickness
            part[f"conformity.{m}.mean"] = res.conformity_mean
            part[f"conformity.{m}.pearson"] = res.conformity_pearson
        if both:
            part["modality_gap.l2_centroid_distance"] = np.linalg.norm(
                per["image"].unit_mean - per["text"].unit_mean, axis=1
            )
            if len(rows_img) >= 2:
                wp = w_txt[sl][:, rows_txt]  # (b, n_pairs): a pair's multiplicity is its caption's (= its image's)
                total = wp.sum(axis=1)
                ua, ub = unit_rows(arrays["image"][rows_img]), unit_rows(arrays["text"][rows_txt])
                cos = np.einsum("ij,ij->i", ua, ub)
                dist = np.linalg.norm(ua - ub, axis=1)
                part["gap_metrics.l2i"] = (wp @ dist) / total
                d_m = np.maximum((1.0 - (wp @ cos) / total) / 2.0, D_M_FLOOR)
                d_i = (1.0 - per["image"].conformity_mean) / 2.0
                d_t = (1.0 - per["text"].conformity_mean) / 2.0
                part["gap_metrics.rmg"] = d_m / (d_m + 0.5 * (d_i + d_t))
                part["pair_conformity.pearson"] = _weighted_pearson_columns(
                    per["image"].conformity[rows_img], per["text"].conformity[rows_txt], wp
                )
        parts.append(part)
    for key in parts[0]:
        draws[key] = np.concatenate([p[key] for p in parts])
    if both:
        if separability_features is not None:
            feats = np.asarray(separability_features, dtype=np.int64).reshape(-1)
            if len(feats):
                pooled = np.vstack([arrays["image"], arrays["text"]])
                is_image = np.r_[np.ones(n_i, bool), np.zeros(n_t, bool)]
                wpool = np.hstack([w_img, w_txt])
                best = np.max([weighted_best_accuracy(pooled[:, f], is_image, wpool) for f in feats], axis=0)
                draws["separability.best_threshold_accuracy"] = best
                notes["separability.best_threshold_accuracy"] = (
                    f"re-scored among the full data's top {len(feats)} features in each draw"
                )
        if len(rows_img) >= 2:
            from ._centroid_shift import default_alphas

            grid = default_alphas() if alphas is None else np.unique(np.asarray(alphas, dtype=np.float64))
            # one caption per image (seeded), as a CLIP batch holds each image once
            pick = np.random.default_rng(seed + 1).permutation(len(rows_img))
            first = np.unique(image_groups(arrays["image"])[rows_img[pick]], return_index=True)[1]
            chosen = np.sort(pick[first])
            terms = pair_shift_terms(
                arrays["image"][rows_img[chosen]],
                arrays["text"][rows_txt[chosen]],
                grid,
                float(temperature),
                batch_size,
                seed,
            )
            wc = w_img[:, rows_img[chosen]]
            loss = (wc @ terms) / wc.sum(axis=1, keepdims=True)  # (B, k)
            draws["centroid_shift.loss_argmin"] = grid[np.argmin(loss, axis=1)]
            notes["centroid_shift.loss_argmin"] = (
                "per-pair InfoNCE terms on one fixed set of batches (one caption per image), resampled with the images"
            )
    intervals = {k: _interval(v) for k, v in draws.items()}
    return BootstrapResult(
        n_boot=n_boot,
        seed=int(seed),
        level=0.95,
        n_image=n_i,
        n_text=n_t,
        intervals=intervals,
        draws=draws,
        notes=notes,
    )
