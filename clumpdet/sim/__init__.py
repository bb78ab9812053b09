"""GalSim simulations with exact truth: clumpy galaxies (``simulate_clumps``).

See :mod:`clumpdet.sim.clumps` for the physics, the truth-box rule and the S/N definition, and
``configs/sim/clumps_sdss.yaml`` for every knob with its default.
"""

from clumpdet.sim.clumps import (
    KIND_LABELS,
    ClumpScene,
    HostTruth,
    SimObject,
    image_seed,
    simulate_clump_scene,
)
from clumpdet.sim.config import (
    ClumpSimConfig,
    load_sim_config,
    validate_sim_config,
)
from clumpdet.sim.writer import scene_records, simulate_clumps

__all__ = [
    "KIND_LABELS",
    "ClumpScene",
    "ClumpSimConfig",
    "HostTruth",
    "SimObject",
    "image_seed",
    "load_sim_config",
    "scene_records",
    "simulate_clump_scene",
    "simulate_clumps",
    "validate_sim_config",
]
