"""GalSim simulations with exact truth: clumpy galaxies (``simulate_clumps``) and galaxy
classification data sets (``simulate_galaxies``: mergers, four_class, morphology), and blended
star/galaxy survey fields (``simulate_fields``).

All five are registered in :data:`SIMULATORS` (:mod:`clumpdet.sim.run`); :func:`simulate_set`
simulates one set of any kind and :func:`prepare_sets` the train / val / test splits of a run,
reusing a folder only when its recorded run (kind, seed, n, resolved config) matches.

See :mod:`clumpdet.sim.clumps` for the physics, the truth-box rule and the S/N definition, and
``configs/sim/clumps_sdss.yaml`` for every knob with its default. The names below are imported
lazily, so ``import clumpdet.sim`` (and the CLI's ``--help``) does not import GalSim.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "KIND_LABELS": "clumpdet.sim.clumps",
    "ClumpScene": "clumpdet.sim.clumps",
    "HostTruth": "clumpdet.sim.clumps",
    "SimObject": "clumpdet.sim.clumps",
    "simulate_clump_scene": "clumpdet.sim.clumps",
    "image_seed": "clumpdet.sim.common",
    "ClumpSimConfig": "clumpdet.sim.config",
    "load_sim_config": "clumpdet.sim.config",
    "validate_sim_config": "clumpdet.sim.config",
    "FIELD_CATEGORIES": "clumpdet.sim.field_config",
    "FieldSimConfig": "clumpdet.sim.field_config",
    "load_field_config": "clumpdet.sim.field_config",
    "read_objects": "clumpdet.sim.field_writer",
    "simulate_fields": "clumpdet.sim.field_writer",
    "FieldScene": "clumpdet.sim.fields",
    "simulate_field_scene": "clumpdet.sim.fields",
    "FOUR_CLASS_NAMES": "clumpdet.sim.galaxies",
    "GalaxyScene": "clumpdet.sim.galaxies",
    "simulate_four_class_scene": "clumpdet.sim.galaxies",
    "simulate_galaxy_scene": "clumpdet.sim.galaxies",
    "simulate_merger_scene": "clumpdet.sim.galaxies",
    "simulate_morphology_scene": "clumpdet.sim.galaxies",
    "FourClassSimConfig": "clumpdet.sim.galaxy_config",
    "MergerSimConfig": "clumpdet.sim.galaxy_config",
    "MorphologySimConfig": "clumpdet.sim.galaxy_config",
    "load_galaxy_sim_config": "clumpdet.sim.galaxy_config",
    "validate_galaxy_sim_config": "clumpdet.sim.galaxy_config",
    "galaxy_label_columns": "clumpdet.sim.galaxy_writer",
    "simulate_galaxies": "clumpdet.sim.galaxy_writer",
    "SIMULATORS": "clumpdet.sim.run",
    "Simulator": "clumpdet.sim.run",
    "Split": "clumpdet.sim.run",
    "prepare_sets": "clumpdet.sim.run",
    "simulate_set": "clumpdet.sim.run",
    "simulator": "clumpdet.sim.run",
    "scene_records": "clumpdet.sim.writer",
    "simulate_clumps": "clumpdet.sim.writer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clumpdet.sim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
