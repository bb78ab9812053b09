"""GalSim simulations with exact truth: clumpy galaxies (``simulate_clumps``) and galaxy
classification data sets (``simulate_galaxies``: mergers, four_class, morphology), and blended
star/galaxy survey fields (``simulate_fields``).

All five are registered in :data:`SIMULATORS` (:mod:`clumpdet.sim.run`); :func:`simulate_set`
simulates one set of any kind and :func:`prepare_sets` the train / val / test splits of a run,
reusing a folder only when its recorded run (kind, seed, n, resolved config) matches.

See :mod:`clumpdet.sim.clumps.scene` for the physics, the truth-box rule and the S/N definition, and
``configs/sim/clumps_sdss.yaml`` for every knob with its default. The names below are imported
lazily, so ``import clumpdet.sim`` (and the CLI's ``--help``) does not import GalSim.
"""

from __future__ import annotations

from clumpdet.utils import lazy_exports

_LAZY = {
    "KIND_LABELS": "clumpdet.sim.clumps.scene",
    "ClumpScene": "clumpdet.sim.clumps.scene",
    "HostTruth": "clumpdet.sim.clumps.scene",
    "SimObject": "clumpdet.sim.clumps.scene",
    "simulate_clump_scene": "clumpdet.sim.clumps.scene",
    "image_seed": "clumpdet.sim.common",
    "ClumpSimConfig": "clumpdet.sim.clumps.config",
    "load_sim_config": "clumpdet.sim.clumps.config",
    "validate_sim_config": "clumpdet.sim.clumps.config",
    "FIELD_CATEGORIES": "clumpdet.sim.fields.config",
    "FieldSimConfig": "clumpdet.sim.fields.config",
    "load_field_config": "clumpdet.sim.fields.config",
    "read_objects": "clumpdet.sim.fields.writer",
    "simulate_fields": "clumpdet.sim.fields.writer",
    "FieldScene": "clumpdet.sim.fields.scene",
    "simulate_field_scene": "clumpdet.sim.fields.scene",
    "FOUR_CLASS_NAMES": "clumpdet.sim.galaxies.scene",
    "GalaxyScene": "clumpdet.sim.galaxies.scene",
    "simulate_four_class_scene": "clumpdet.sim.galaxies.scene",
    "simulate_galaxy_scene": "clumpdet.sim.galaxies.scene",
    "simulate_merger_scene": "clumpdet.sim.galaxies.scene",
    "simulate_morphology_scene": "clumpdet.sim.galaxies.scene",
    "FourClassSimConfig": "clumpdet.sim.galaxies.config",
    "MergerSimConfig": "clumpdet.sim.galaxies.config",
    "MorphologySimConfig": "clumpdet.sim.galaxies.config",
    "load_galaxy_sim_config": "clumpdet.sim.galaxies.config",
    "validate_galaxy_sim_config": "clumpdet.sim.galaxies.config",
    "galaxy_label_columns": "clumpdet.sim.galaxies.writer",
    "simulate_galaxies": "clumpdet.sim.galaxies.writer",
    "SIMULATORS": "clumpdet.sim.run",
    "Simulator": "clumpdet.sim.run",
    "Split": "clumpdet.sim.run",
    "prepare_sets": "clumpdet.sim.run",
    "simulate_set": "clumpdet.sim.run",
    "simulator": "clumpdet.sim.run",
    "scene_records": "clumpdet.sim.clumps.writer",
    "simulate_clumps": "clumpdet.sim.clumps.writer",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
