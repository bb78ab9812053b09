"""GalSim simulations with exact truth: clumpy galaxies (``simulate_clumps``) and galaxy
classification data sets (``simulate_galaxies``: mergers, four_class, morphology).

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
from clumpdet.sim.galaxies import (
    FOUR_CLASS_NAMES,
    GalaxyScene,
    simulate_four_class_scene,
    simulate_galaxy_scene,
    simulate_merger_scene,
    simulate_morphology_scene,
)
from clumpdet.sim.galaxy_config import (
    FourClassSimConfig,
    MergerSimConfig,
    MorphologySimConfig,
    load_galaxy_sim_config,
    validate_galaxy_sim_config,
)
from clumpdet.sim.galaxy_writer import galaxy_label_columns, simulate_galaxies
from clumpdet.sim.writer import scene_records, simulate_clumps

__all__ = [
    "FOUR_CLASS_NAMES",
    "KIND_LABELS",
    "ClumpScene",
    "ClumpSimConfig",
    "FourClassSimConfig",
    "GalaxyScene",
    "HostTruth",
    "MergerSimConfig",
    "MorphologySimConfig",
    "SimObject",
    "galaxy_label_columns",
    "image_seed",
    "load_galaxy_sim_config",
    "load_sim_config",
    "scene_records",
    "simulate_clump_scene",
    "simulate_clumps",
    "simulate_four_class_scene",
    "simulate_galaxies",
    "simulate_galaxy_scene",
    "simulate_merger_scene",
    "simulate_morphology_scene",
    "validate_galaxy_sim_config",
    "validate_sim_config",
]
