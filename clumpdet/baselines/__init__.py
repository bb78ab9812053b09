"""Classical (non-learned) clump finders: the floor every learned detector must beat.

See :mod:`clumpdet.baselines.classical` for the algorithm.
"""

from __future__ import annotations

from clumpdet.baselines.classical import (
    ClassicalConfig,
    Detections,
    find_clumps,
    run_classical_baseline,
)

__all__ = ["ClassicalConfig", "Detections", "find_clumps", "run_classical_baseline"]
