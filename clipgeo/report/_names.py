"""The report's file format, by name: every file, table column and report.json key, in one place.

:mod:`._write` writes these names and :mod:`._read` reads them back; nothing else in clipgeo spells them.

================================  =====================================================
file                              content
================================  =====================================================
``report.json``                   every summary figure + provenance (store meta, config)
``report.md``                     each claim of the paper beside what this data shows
``features.csv``                  one row per feature: separability, mean/std, variance, odd,
                                  the gap's centroids, the PCA's centre and axes
``rows_image.csv``                one row per image row: norms, Mahalanobis, conformity,
``rows_text.csv``                 PCA coordinates, values of the figures' features, id/caption
``covariance_{image,text}.npy``   the (d, d) covariance matrices (ddof = 1)
``centroid_shift.csv``            loss / alignment / uniformity / conformity KL per α
``cosine_gradient.csv``           gradient magnitude vs norm samples
``thin_shell_theory.csv``         norms of isotropic samples for n = 2 … 512
================================  =====================================================
"""

from __future__ import annotations

MODALITIES = ("image", "text")

# -- files -----------------------------------------------------------------------------------------
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
#: the self-contained page of :mod:`._html` (``clipgeo analyze --html``, ``clipgeo report``)
REPORT_HTML = "report.html"
FEATURES_CSV = "features.csv"
CENTROID_SHIFT_CSV = "centroid_shift.csv"
COSINE_GRADIENT_CSV = "cosine_gradient.csv"
THIN_SHELL_THEORY_CSV = "thin_shell_theory.csv"


def rows_csv(modality: str) -> str:
    """``rows_<modality>.csv``: one row per embedding row of that modality."""
    return f"rows_{modality}.csv"


def covariance_npy(modality: str) -> str:
    """``covariance_<modality>.npy``: the (d, d) covariance matrix."""
    return f"covariance_{modality}.npy"


#: every file a report directory may hold (a new report removes the old ones first)
OUTPUT_FILES = (
    REPORT_JSON, REPORT_MD, REPORT_HTML, FEATURES_CSV, *(rows_csv(m) for m in MODALITIES), *(covariance_npy(m) for m in MODALITIES),
    CENTROID_SHIFT_CSV, COSINE_GRADIENT_CSV, THIN_SHELL_THEORY_CSV,
)  # fmt: skip

#: floats in the CSV tables keep this many significant digits
CSV_FLOAT_FORMAT = "%.9g"

# -- features.csv: the separability table (SeparabilityResult.to_frame) plus per-modality columns ---
FEATURE = "feature"
RANK = "rank"
#: separability columns that are SeparabilityResult fields of the same name
SEPARABILITY_COLUMNS = ("threshold_accuracy", "threshold", "orientation", "auc", "dprime")


def mean_column(m: str) -> str:
    return f"mean_{m}"


def std_column(m: str) -> str:
    return f"std_{m}"


def abs_mean_column(m: str) -> str:
    return f"abs_mean_{m}"


def variance_column(m: str) -> str:
    return f"var_{m}"


def odd_column(m: str) -> str:
    return f"odd_{m}"


#: the modality gap's (d,) centroid vectors: columns named as the ModalityGapResult fields
GAP_CENTROID_COLUMNS = ("unit_centroid_image", "unit_centroid_text", "raw_centroid_image", "raw_centroid_text")
#: the PCA's (d,) centre and its (n_components, d) axes, one column per axis
PCA_CENTER = "pca_center"


def pca_component_column(j: int) -> str:
    """Principal axis ``j`` (0-based) is column ``pca_component_{j + 1}``."""
    return f"pca_component_{j + 1}"


# -- rows_<modality>.csv -----------------------------------------------------------------------------
ROW = "row"
ID = "id"
PATH = "path"
CAPTION = "caption"
IMAGE_ROW = "image_row"
NORM = "norm"
CENTERED_NORM = "centered_norm"
MAHALANOBIS = "mahalanobis"
MAHALANOBIS_IN_SAMPLE = "mahalanobis_in_sample"
CENTERED_NORM_HELD_OUT = "centered_norm_held_out"
CONFORMITY = "conformity"
CONFORMITY_ESTIMATE = "conformity_estimate"
CONFORMITY_UNIT_ESTIMATE = "conformity_unit_estimate"
#: columns read back as strings
TEXT_COLUMNS = (ID, PATH, CAPTION)
PC_PREFIX = "pc"
FEATURE_PREFIX = "feature_"


def pc_column(j: int) -> str:
    """Principal component ``j`` (0-based) is column ``pc{j + 1}``."""
    return f"{PC_PREFIX}{j + 1}"


def feature_column(k: int) -> str:
    """Raw values of feature ``k`` (0-based)."""
    return f"{FEATURE_PREFIX}{k}"


# -- report.json --------------------------------------------------------------------------------------
#: per-modality results: report.json key = Report attribute, {modality: summary}
PER_MODALITY = ("thin_shell", "mahalanobis_shell", "off_diagonal_dominance", "ellipsoid_offset", "conformity")
#: report.json key of Report.projection
PCA = "pca"
CONFORMITY_EXTREMES = "conformity_extremes"
FIGURE_FEATURES = "figure_features"
PROVENANCE = "provenance"
FILES = "files"
#: keys under "provenance"
PROVENANCE_STORE = "store"
PROVENANCE_CONFIG = "config"
