"""Registry of the detection-data simulators: one name per kind of COCO training set.

``clumpdet simulate <kind>`` and a detector config's ``data.simulate.kind`` both resolve here, so
every detection task (clumps inside galaxies, stars/galaxies in blended fields) is simulated,
trained and evaluated through the same path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from clumpdet.registry import Registry


class _Simulate(Protocol):
    def __call__(
        self,
        *,
        n: int,
        seed: int,
        out: str | Path,
        config: Any = None,
        workers: int | None = None,
        overwrite: bool = False,
        progress: bool = True,
    ) -> Path: ...


@dataclass(frozen=True)
class DetectionSimulator:
    """A detection-data simulator.

    Attributes
    ----------
    load_config : callable
        ``load_config(path_or_None, overrides) -> config`` (validated).
    simulate : callable
        ``simulate(*, n, seed, out, config, workers, overwrite, progress) -> Path``; writes a
        COCO ``annotations.json`` plus FITS images under ``out``.
    class_names : tuple of str
        Names of category ids 1, 2, ... (what ``model.class_names`` must be).
    """

    load_config: Any
    simulate: _Simulate
    class_names: tuple[str, ...]


DETECTION_SIMULATORS: Registry[Any] = Registry("detection simulator")


@DETECTION_SIMULATORS.register("clumps", help="clumps and odd clumps inside SDSS-like galaxies")
def _clumps() -> DetectionSimulator:
    from clumpdet.sim.config import load_sim_config
    from clumpdet.sim.writer import simulate_clumps

    return DetectionSimulator(load_sim_config, simulate_clumps, ("clump", "odd_clump"))


@DETECTION_SIMULATORS.register("fields", help="stars and galaxies in blended DECam-like fields")
def _fields() -> DetectionSimulator:
    from clumpdet.sim.field_config import load_field_config
    from clumpdet.sim.field_writer import simulate_fields

    return DetectionSimulator(load_field_config, simulate_fields, ("star", "galaxy"))


def detection_simulator(kind: str) -> DetectionSimulator:
    """The simulator registered as ``kind`` (``RegistryError`` lists the known kinds)."""
    return DETECTION_SIMULATORS.get(kind)()


def simulate_detection_set(
    kind: str,
    *,
    n: int,
    seed: int,
    out: str | Path,
    config_path: str | Path | None = None,
    overrides: Iterable[str] = (),
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Load ``kind``'s config (``config_path`` + ``overrides``) and simulate ``n`` images."""
    sim = detection_simulator(kind)
    cfg = sim.load_config(config_path, list(overrides))
    return sim.simulate(
        n=n, seed=seed, out=out, config=cfg, workers=workers, overwrite=overwrite, progress=progress
    )
