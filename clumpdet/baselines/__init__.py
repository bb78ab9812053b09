"""Classical (non-learned) finders: the floor every learned detector must beat.

:mod:`clumpdet.baselines.classical` finds clumps in galaxy images,
:mod:`clumpdet.baselines.sources` detects and deblends sources in blended fields; both return
astropy Tables (:mod:`clumpdet.baselines.common` turns them into COCO results).
:mod:`clumpdet.baselines.tuning` retunes the clump finders on validation data and runs them in
sweep form (threshold down to 1.5 sigma, S/N score) for full precision-recall curves.
"""

from __future__ import annotations

from clumpdet.baselines.classical import (
    CLUMP_COLUMNS,
    ClassicalConfig,
    find_clumps,
    run_classical_baseline,
)
from clumpdet.baselines.common import boxes_xyxy, estimate_psf_fwhm, to_coco_results
from clumpdet.baselines.tuning import sweep_config, tune_classical

__all__ = [
    "CLUMP_COLUMNS",
    "ClassicalConfig",
    "boxes_xyxy",
    "estimate_psf_fwhm",
    "find_clumps",
    "run_classical_baseline",
    "sweep_config",
    "to_coco_results",
    "tune_classical",
]
