"""Commonness (SPEC §12): is high conformity the same thing as common wording?

Conformity of each caption against three plain measures of how common the caption is in its corpus: its
length in words, how many captions in the corpus are the same text, and the mean corpus frequency of its
words -- each as a Spearman r.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ._result import Result
from ._stats import spearman

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def normalise_caption(text: str) -> str:
    """The form two captions must share to count as duplicates: lower case, single spaces, no end punctuation."""
    return " ".join(str(text).lower().split()).rstrip(" .!?;,")


def caption_words(text: str) -> list[str]:
    """Lower-case words (letters and digits, with an apostrophe suffix such as "man's")."""
    return _WORD.findall(str(text).lower())


@dataclass(frozen=True, repr=False)
class CommonnessResult(Result):
    """Spearman r between caption conformity and three commonness measures.

    Attributes
    ----------
    n_captions : int
        Captions used (non-empty ones).
    spearman_length, spearman_duplicates, spearman_word_frequency : float
        Spearman r of conformity with the caption's word count, its duplicate count and its mean word
        frequency (NaN when a measure is constant, e.g. no caption repeats).
    n_duplicated : int
        Captions whose normalised text occurs more than once.
    rows : ndarray of int, shape (n_captions,)
        Text rows used.
    conformity, length, duplicates, word_frequency : ndarrays of shape (n_captions,)
        Per caption: conformity; words; captions in the corpus with the same normalised text (itself
        included, so ≥ 1); mean over its words of (corpus count of the word / corpus word count).
    """

    n_captions: int
    spearman_length: float
    spearman_duplicates: float
    spearman_word_frequency: float
    n_duplicated: int
    rows: np.ndarray
    conformity: np.ndarray
    length: np.ndarray
    duplicates: np.ndarray
    word_frequency: np.ndarray

    _arrays = ("rows", "conformity", "length", "duplicates", "word_frequency")


def commonness(conformity: object, captions: object) -> CommonnessResult:
    """Conformity of each caption against its length, duplicate count and mean word frequency.

    Parameters
    ----------
    conformity : array-like of shape (n_text,)
        Exact conformity of every text row (e.g. ``conformity(txt).values``).
    captions : sequence of str, length n_text
        The caption of each text row; empty or missing captions are left out.

    Returns
    -------
    CommonnessResult

    Raises
    ------
    InputError
        When the lengths differ, or fewer than 2 captions are non-empty (nothing to correlate).

    Notes
    -----
    Duplicates compare captions after :func:`normalise_caption` (case, spacing and end punctuation do not
    make two captions different).  Word frequencies are counted over the non-empty captions with
    :func:`caption_words`; a caption without words has frequency 0.
    """
    values = np.asarray(conformity, dtype=np.float64)
    if values.ndim != 1:
        raise InputError(f"conformity has shape {values.shape}; expected one value per caption")
    texts = ["" if c is None else str(c) for c in captions]
    if len(texts) != len(values):
        raise InputError(f"{len(texts)} captions for {len(values)} conformity values; give one caption per text row")
    rows = np.array([j for j, t in enumerate(texts) if t.strip()], dtype=np.int64)
    if len(rows) < 2:
        raise InputError(f"{len(rows)} non-empty caption(s); commonness needs captions (store them with the text rows)")
    used = [texts[j] for j in rows]
    keys = [normalise_caption(t) for t in used]
    key_count = Counter(keys)
    words = [caption_words(t) for t in used]
    word_count = Counter(w for ws in words for w in ws)
    total = max(sum(word_count.values()), 1)
    length = np.array([len(ws) for ws in words], dtype=np.float64)
    duplicates = np.array([key_count[k] for k in keys], dtype=np.float64)
    frequency = np.array([np.mean([word_count[w] / total for w in ws]) if ws else 0.0 for ws in words])
    conf = values[rows]
    return CommonnessResult(
        n_captions=len(rows),
        spearman_length=spearman(conf, length),
        spearman_duplicates=spearman(conf, duplicates),
        spearman_word_frequency=spearman(conf, frequency),
        n_duplicated=int((duplicates > 1).sum()),
        rows=rows,
        conformity=conf,
        length=length,
        duplicates=duplicates,
        word_frequency=frequency,
    )
