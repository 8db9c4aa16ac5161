"""EmbeddingSet: the in-memory form of a store, as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._meta import StoreMeta


@dataclass
class EmbeddingSet:
    """Raw image and text embeddings of one model, with ids, captions and pairing.

    Attributes
    ----------
    image : ndarray of shape (n_image, dim)
        Raw image embeddings, as produced (never normalised here).
    text : ndarray of shape (n_text, dim)
        Raw text embeddings.
    image_ids, text_ids : ndarray of str
    image_paths : ndarray of str, shape (n_image,)
        Path or URI of every image row ("" when unknown).
    captions : ndarray of str, shape (n_text,)
    text_image_index : ndarray of int64, shape (n_text,)
        Row of ``image`` that text row ``j`` describes, ``-1`` for a text-only
        row.  One image may have several captions.
    meta : StoreMeta
    skipped : list of dict
        Inputs the writer skipped, each with ``id``, ``modality`` and ``reason``.
    """

    image: np.ndarray
    text: np.ndarray
    image_ids: np.ndarray
    text_ids: np.ndarray
    image_paths: np.ndarray
    captions: np.ndarray
    text_image_index: np.ndarray
    meta: StoreMeta
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def dim(self) -> int:
        return self.meta.dim

    @property
    def n_image(self) -> int:
        return int(self.image.shape[0])

    @property
    def n_text(self) -> int:
        return int(self.text.shape[0])

    @property
    def n_pairs(self) -> int:
        return int((self.text_image_index >= 0).sum())

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Matched rows: ``(image_rows, text_rows)``, one pair per paired text row."""
        text_rows = np.flatnonzero(self.text_image_index >= 0)
        return self.text_image_index[text_rows], text_rows

    def paired_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(image, text)`` arrays of shape (n_pairs, dim), row i of one matching row i of the other."""
        image_rows, text_rows = self.pairs()
        return self.image[image_rows], self.text[text_rows]

    def __repr__(self) -> str:
        return (
            f"EmbeddingSet(model={self.meta.model_id!r}, dim={self.dim}, n_image={self.n_image}, "
            f"n_text={self.n_text}, n_pairs={self.n_pairs}, normalized={self.meta.normalized})"
        )
