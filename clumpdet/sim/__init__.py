"""GalSim simulations with exact truth: clumpy galaxies (``simulate_clumps``) and galaxy
classification data sets (``simulate_galaxies``: mergers, four_class, morphology), and blended
star/galaxy survey fields (``simulate_fields``).

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
from clumpdet.sim.detection_sets import (
    DETECTION_SIMULATORS,
    detection_simulator,
    simulate_detection_set,
)
from clumpdet.sim.field_config import FIELD_CATEGORIES, FieldSimConfig, load_field_config
from clumpdet.sim.field_writer import read_objects, simulate_fields
from clumpdet.sim.fields import FieldScene, simulate_field_scene
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
    "DETECTION_SIMULATORS",
    "FIELD_CATEGORIES",
    "FOUR_CLASS_NAMES",
    "KIND_LABELS",
    "ClumpScene",
    "ClumpSimConfig",
    "FieldScene",
    "FieldSimConfig",
    "FourClassSimConfig",
    "GalaxyScene",
    "HostTruth",
    "MergerSimConfig",
    "MorphologySimConfig",
    "SimObject",
    "detection_simulator",
    "galaxy_label_columns",
    "image_seed",
    "load_field_config",
    "load_galaxy_sim_config",
    "load_sim_config",
    "read_objects",
    "scene_records",
    "simulate_clump_scene",
    "simulate_clumps",
    "simulate_detection_set",
    "simulate_field_scene",
    "simulate_fields",
    "simulate_four_class_scene",
    "simulate_galaxies",
    "simulate_galaxy_scene",
    "simulate_merger_scene",
    "simulate_morphology_scene",
    "validate_galaxy_sim_config",
    "validate_sim_config",
]
