"""Classical (non-learned) finders: the floor every learned detector must beat.

:mod:`clumpdet.baselines.classical` finds clumps in galaxy images,
:mod:`clumpdet.baselines.sources` detects and deblends sources in blended fields; both return
astropy Tables (:mod:`clumpdet.baselines.common` turns them into COCO results).
"""

from __future__ import annotations

from clumpdet.baselines.classical import (
    CLUMP_COLUMNS,
    ClassicalConfig,
    find_clumps,
    run_classical_baseline,
)
from clumpdet.baselines.common import boxes_xyxy, to_coco_results

__all__ = [
    "CLUMP_COLUMNS",
    "ClassicalConfig",
    "boxes_xyxy",
    "find_clumps",
    "run_classical_baseline",
    "to_coco_results",
]
