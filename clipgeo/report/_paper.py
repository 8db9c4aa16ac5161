"""The paper's values (Levi & Gilboa 2025, CLIP ViT-B/32 on MS-COCO), quoted once.

``report.md`` cites them beside each measurement and the demo's side-by-side table lists them; both read
this table.  ``claim`` is the one-line statement (``{m}`` stands for the modality), ``paper`` the value as
the paper gives it, ``value`` the number where a text computes with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PaperValue:
    """One claim of the paper and its value for ViT-B/32."""

    claim: str
    paper: str
    value: Any = None


#: the model and data the values were measured on
PAPER_MODEL = "ViT-B/32"

PAPER: dict[str, PaperValue] = {
    "modality_gap": PaperValue(
        "Modality gap: the two modalities sit apart (l2 centroid distance of unit vectors)", "0.82 (ViT-B/32, COCO)", 0.82
    ),
    "best_feature": PaperValue(
        "A few raw features separate image from text on their own (best single-feature balanced accuracy)",
        "100 % (2 features)",
        1.0,
    ),
    "perfect_features": PaperValue("Features that separate the modalities perfectly alone", "2 of 512", 2),
    "label_features": PaperValue(
        "A handful of \"modality label\" features separate image from text on their own",
        "9 for ViT-B/32, two of them 100 %",
        9,
    ),
    # the two perfectly separating ViT-B/32 features as the paper numbers them (base unknown: 0 or 1)
    "label_feature_indices": PaperValue("The perfectly separating features of ViT-B/32", "93 and 134", (93, 134)),
    "linear_cv": PaperValue("Linear separability, 5-fold cross-validated", "≈100 %", 1.0),
    "thin_shell": PaperValue(
        "Thin shell ({m}): centred norm ≈ sqrt(tr C), small relative thickness",
        "mean² 57.6 vs var 0.19 (image)",
        {"mean_sq": 57.6, "var": 0.19},
    ),
    "mahalanobis_shell": PaperValue("Ellipsoidal shell ({m}): Mahalanobis cv vs Euclidean cv", "thinner than Euclidean"),
    "off_diagonal_dominance": PaperValue(
        "Tilted ellipsoid ({m}): median off-diagonal dominance; fraction of rows > 1", "> 1", 1.0
    ),
    "offset_image": PaperValue("Centre far from the origin (image): ‖m‖ / ‖σ‖", "0.94", 0.94),
    "offset_text": PaperValue("Centre far from the origin (text): ‖m‖ / ‖σ‖", "1.03", 1.03),
    "conformity": PaperValue("Conformity ≈ a·cos(x, m) + b ({m}): Pearson r", "0.9998", 0.9998),
    "centroid_shift_loss": PaperValue(
        "Contrastive loss is lowest where training put the ellipsoid (argmin over α of the image shift)", "α = 0", 0.0
    ),
    "centroid_shift_kl": PaperValue(
        "Image/text conformity distributions match best at α = 0 (argmin KL)", "α = 0", 0.0
    ),
}
