"""Every geometry measurement of SPEC §1–9: arrays in, small frozen result objects out.

numpy, scipy and scikit-learn only: no torch (tensors are accepted by duck
typing), no file I/O, no store.  Each function checks its input once with
:mod:`clipgeo.validation` (2-D, finite, enough rows, matching dimensions), computes in float64, and returns a
frozen dataclass whose ``to_dict()`` is the JSON-able summary and whose array
fields feed the tables and figures.

=========================  =============================  ========
function                   measures                       SPEC
=========================  =============================  ========
:func:`modality_gap`       centroid distances             §1
:func:`feature_separability`  image vs text per feature   §2
:func:`thin_shell`         norms vs sqrt(tr C)            §3
:func:`mahalanobis_shell`  Ledoit–Wolf Mahalanobis shell  §4
:func:`off_diagonal_dominance`  tilted covariance         §5
:func:`ellipsoid_offset`   ||m|| / ||σ||                  §6
:func:`conformity`         exact conformity + estimates   §7
:func:`centroid_shift`     InfoNCE / KL vs mean shift α   §8
:func:`alignment_uniformity`  Wang & Isola metrics        §8
:func:`cosine_gradient`    |Δcos| under a fixed move      §9
:func:`pca_projection`     2-D picture of the gap         §10
:func:`pair_conformity`    C_img vs C_txt over pairs      §12
:func:`retrieval_by_conformity`  rank vs conformity decile  §12
:func:`commonness`         conformity vs caption wording  §12
:func:`gap_metrics`        L2M, L2I, RMG (Schrodi et al.)  §12
:class:`Whitener`, :func:`whitening`  whitening, likelihood  §12
:func:`vslerp`             mean-shifted slerp             §12
:func:`spectrum`           eigenvalues, effective rank    §12
:func:`bootstrap`          95 % intervals of headlines    §12
=========================  =============================  ========
"""

from ..validation import UnitNormWarning, check_embeddings, rows_are_unit, to_numpy
from ._bootstrap import BootstrapResult, Interval, bootstrap
from ._centroid_shift import (
    AlignmentUniformityResult,
    CentroidShiftResult,
    alignment_uniformity,
    centroid_shift,
    default_alphas,
)
from ._commonness import CommonnessResult, commonness
from ._conformity import ConformityResult, conformity, mean_conformity, pairwise_conformity
from ._covariance import OffDiagonalDominanceResult, off_diagonal_dominance
from ._gap import ModalityGapResult, mean_pairwise_cosine, modality_gap
from ._gap_metrics import GapMetricsResult, gap_metrics
from ._gradient import CosineGradientResult, cosine_gradient
from ._mahalanobis import MahalanobisShellResult, mahalanobis_shell
from ._offset import EllipsoidOffsetResult, ellipsoid_offset
from ._pair_conformity import PairConformityResult, pair_conformity
from ._probe import ProbeResult, linear_probe, linear_probe_split
from ._projection import ProjectionResult, pca_projection
from ._retrieval import RetrievalByConformityResult, retrieval_by_conformity
from ._separability import SeparabilityResult, feature_separability
from ._shell import ThinShellResult, thin_shell
from ._spectrum import SpectrumResult, spectrum, spectrum_summary
from ._vslerp import vslerp
from ._whitening import Whitener, WhiteningResult, gaussianity, whitening

__all__ = [
    # SPEC §12
    "BootstrapResult",
    "CommonnessResult",
    "GapMetricsResult",
    "Interval",
    "PairConformityResult",
    "RetrievalByConformityResult",
    "SpectrumResult",
    "Whitener",
    "WhiteningResult",
    "bootstrap",
    "commonness",
    "gap_metrics",
    "gaussianity",
    "pair_conformity",
    "retrieval_by_conformity",
    "spectrum",
    "spectrum_summary",
    "vslerp",
    "whitening",
    # SPEC §1-10
    "AlignmentUniformityResult",
    "CentroidShiftResult",
    "ConformityResult",
    "CosineGradientResult",
    "EllipsoidOffsetResult",
    "MahalanobisShellResult",
    "ModalityGapResult",
    "OffDiagonalDominanceResult",
    "ProbeResult",
    "ProjectionResult",
    "SeparabilityResult",
    "ThinShellResult",
    "UnitNormWarning",
    "alignment_uniformity",
    "centroid_shift",
    "check_embeddings",
    "conformity",
    "cosine_gradient",
    "default_alphas",
    "ellipsoid_offset",
    "feature_separability",
    "mahalanobis_shell",
    "mean_conformity",
    "linear_probe",
    "linear_probe_split",
    "mean_pairwise_cosine",
    "modality_gap",
    "off_diagonal_dominance",
    "pairwise_conformity",
    "pca_projection",
    "rows_are_unit",
    "thin_shell",
    "to_numpy",
]
