"""The one run driver of the simulators: run checks, the run record, the registry, prepared sets.

Every simulator (clumps, fields, mergers, four_class, morphology) is registered once in
:data:`SIMULATORS`; ``clumpdet simulate <kind>``, a detector config's ``data.simulate.kind``, the
classifier's ``source: simulate`` and every benchmark resolve their simulator here, and
:func:`prepare_sets` is the one "simulate train / val / test unless an identical set is already
on disk" step.

A simulated folder records how it was made in ``config.yaml``: the resolved config plus a
``_run_`` block (``kind``, ``seed``, ``n``, the clumpdet version and simulator-specific extras).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from clumpdet.errors import ClumpdetError, ConfigError, InputError
from clumpdet.registry import Registry

log = logging.getLogger(__name__)

R = TypeVar("R")

#: Top-level key of a saved ``config.yaml`` that records the run (kind, seed, n); ignored on load.
RUN_KEY = "_run_"

#: Name of the run record inside a simulated folder.
RUN_RECORD = "config.yaml"


# --------------------------------------------------------------------------------------------
# run arguments and the run record


def check_run_args(*, n: int, seed: int, workers: int | None) -> int:
    """Validate ``n``, ``seed`` and ``workers`` of a simulation run; return the worker count.

    Raises
    ------
    ConfigError
        ``n < 1``, a negative or non-integer seed, or ``workers < 1``.
    """
    from clumpdet.sim.common import as_seed_sequence

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n: number of images must be an integer >= 1, got {n!r}")
    as_seed_sequence(seed)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers: must be an integer >= 1, got {workers!r}")
    return workers


def coco_info(description: str, *, seed: int, n: int) -> dict[str, Any]:
    """The COCO ``info`` block of a simulated data set (description, version, date, seed, n)."""
    from datetime import datetime, timezone

    from clumpdet import __version__

    return {
        "description": description,
        "version": __version__,
        "date_created": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "seed": int(seed),
        "n": int(n),
    }


def save_run_config(
    cfg: Any, path: str | Path, *, kind: str, seed: int, n: int, **run: Any
) -> None:
    """Write the resolved config plus a ``_run_`` block (kind, seed, n, ``run``, version)."""
    from clumpdet import __version__
    from clumpdet.config import save_config, to_dict

    resolved = to_dict(cfg)
    resolved[RUN_KEY] = {
        "kind": kind,
        "seed": int(seed),
        "n": int(n),
        **run,
        "clumpdet_version": __version__,
    }
    save_config(resolved, path)


# --------------------------------------------------------------------------------------------
# rendering a run


def map_images(
    worker: Callable[[int], R], *, n: int, workers: int, progress: bool, desc: str
) -> Iterator[R]:
    """``worker(i)`` for image indices ``i = 0 .. n-1``, in order, in ``workers`` processes.

    ``worker`` must be picklable (a module-level function or a ``functools.partial`` of one);
    image ``i`` uses ``image_seed(seed, i)``, so the output does not depend on ``workers``.
    """
    from clumpdet.parallel import parallel_map

    return parallel_map(worker, list(range(n)), workers=workers, progress=progress, desc=desc)


def image_file_name(index: int) -> str:
    """Relative path of image ``index`` inside a simulated detection set."""
    return f"images/{index:06d}.fits"


def scene_fits_header(
    scene: Any, seed: int, *, psf_band: str, objects: str, psf: Any = None
) -> dict[str, tuple[Any, str] | str]:
    """FITS header cards of a simulated detection image.

    Parameters
    ----------
    scene : ClumpScene or FieldScene
        Needs ``psf_fwhm`` (arcsec), ``psf_fwhm_bands`` and ``noise_sigma`` ({band: value}),
        ``image_id`` and ``objects``.
    seed : int
        Master seed of the run.
    psf_band : str
        Wording of the band of ``psf_fwhm`` in its comment (``"r"``, ``"reference"``).
    objects : str
        Comment of the ``NOBJ`` card (what ``scene.objects`` counts).
    psf : PSFShape, optional
        The PSF profile (``profile``, ``moffat_beta``): ``PSFPROF`` and ``PSFBETA`` cards, which
        the photometry's clump model reads.
    """
    from clumpdet import __version__

    hdr: dict[str, tuple[Any, str] | str] = {
        "PSFFWHM": (round(scene.psf_fwhm, 5), f"{psf_band}-band PSF FWHM (arcsec)")
    }
    for b, v in scene.psf_fwhm_bands.items():
        hdr[f"PSFFWHM{b.upper()}"] = (round(v, 5), f"{b}-band PSF FWHM (arcsec)")
    if psf is not None:
        hdr["PSFPROF"] = (str(psf.profile), "PSF profile")
        if psf.profile == "moffat":
            hdr["PSFBETA"] = (float(psf.moffat_beta), "Moffat beta of the PSF")
    for b, v in scene.noise_sigma.items():
        hdr[f"NOISE_{b.upper()}"] = (float(v), f"{b} sky noise sigma per pixel (nanomaggy)")
    hdr["IMAGEID"] = (int(scene.image_id), "COCO image id")
    hdr["SIMSEED"] = (int(seed), "master seed of the simulation run")
    hdr["NOBJ"] = (len(scene.objects), objects)
    hdr["ORIGIN"] = f"clumpdet {__version__} (GalSim)"
    return hdr


def render_detection_image(
    index: int,
    *,
    simulate_scene: Callable[..., Any],
    records: Callable[..., R],
    config: Any,
    seed: int,
    root: str | None,
    psf_band: str,
    objects: str,
) -> R:
    """Worker: simulate detection image ``index``, write its FITS under ``root`` (when given)
    and return ``records(scene, file_name=...)`` (its COCO records)."""
    from clumpdet.data.fits import write_image_fits
    from clumpdet.sim.common import image_seed

    scene = simulate_scene(config=config, seed=image_seed(seed, index), image_id=index)
    name = image_file_name(index)
    if root is not None:
        write_image_fits(
            Path(root) / name,
            scene.image,
            bands=scene.bands,
            wcs=scene.wcs,
            unit="nanomaggy",
            pixel_scale=scene.pixel_scale,
            header=scene_fits_header(
                scene, seed, psf_band=psf_band, objects=objects, psf=getattr(config, "psf", None)
            ),
        )
    return records(scene, file_name=name)


def write_detection_set(
    out: str | Path,
    *,
    kind: str,
    config: Any,
    n: int,
    seed: int,
    workers: int | None,
    overwrite: bool,
    progress: bool,
    simulate_scene: Callable[..., Any],
    records: Callable[..., tuple[Any, ...]],
    categories: list[dict[str, Any]],
    description: str,
    psf_band: str,
    objects: str,
    tables: Callable[[Path, list[tuple[list[dict[str, Any]], Any]]], None],
) -> Path:
    """Simulate and write a COCO detection set atomically: the driver of every detection kind.

    Writes ``images/NNNNNN.fits`` (:func:`render_detection_image`), ``annotations.json``
    (annotation ids ``1 ..`` in image order, ``info`` from :func:`coco_info`), the kind's tables
    and the run record ``config.yaml``.

    Parameters
    ----------
    out : path
        Output directory, built under a temporary name and renamed on success.
    kind : str
        Registry name, recorded in the run record and the progress bar.
    config : config object
        The validated simulation config.
    n, seed, workers, overwrite, progress
        As in :func:`clumpdet.sim.simulate_clumps`.
    simulate_scene, records, psf_band, objects
        See :func:`render_detection_image`; ``records`` returns ``(image, annotations)`` or
        ``(image, annotations, extra)``.
    categories : list of dict
        COCO categories.
    description : str
        COCO ``info.description``.
    tables : callable
        ``tables(tmp_dir, [(annotations_with_ids, extra), ...])`` writes the kind's other files
        (one entry per image, in order).

    Returns
    -------
    Path
        ``out``.
    """
    from clumpdet.data.coco import write_coco
    from clumpdet.utils import atomic_dir

    workers = check_run_args(n=n, seed=seed, workers=workers)
    out = Path(out)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        (tmp / "images").mkdir()
        worker = partial(
            render_detection_image,
            simulate_scene=simulate_scene,
            records=records,
            config=config,
            seed=int(seed),
            root=str(tmp),
            psf_band=psf_band,
            objects=objects,
        )
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        per_image: list[tuple[list[dict[str, Any]], Any]] = []
        desc = f"simulate {kind}"
        for image, anns, *extra in map_images(
            worker, n=n, workers=workers, progress=progress, desc=desc
        ):
            images.append(image)
            numbered = [{"id": len(annotations) + k + 1, **a} for k, a in enumerate(anns)]
            annotations.extend(numbered)
            per_image.append((numbered, extra[0] if extra else None))
        write_coco(
            tmp / "annotations.json",
            images=images,
            annotations=annotations,
            categories=categories,
            info=coco_info(description, seed=seed, n=n),
        )
        tables(tmp, per_image)
        save_run_config(config, tmp / "config.yaml", kind=kind, seed=seed, n=n)
    return out


# --------------------------------------------------------------------------------------------
# the registry


@dataclass(frozen=True)
class Simulator:
    """A registered simulator.

    Attributes
    ----------
    name : str
        Registry name (``clumpdet simulate <name>``).
    load_config : callable
        ``load_config(path_or_None, overrides) -> config`` (validated).
    simulate : callable
        ``simulate(*, n, seed, out, config, workers, overwrite, progress) -> Path``.
    class_names : tuple of str
        Detection sets: names of COCO category ids 1, 2, ... (what ``model.class_names`` must
        be). Classification sets: the label columns of ``labels.csv`` (after ``id``).
    detection : bool
        Writes a COCO detection set (``annotations.json`` + FITS) rather than a labelled
        classification set (``images.npy`` + ``labels.csv``).
    """

    name: str
    load_config: Callable[..., Any]
    simulate: Callable[..., Path]
    class_names: tuple[str, ...]
    detection: bool

    @property
    def marker(self) -> str:
        """File whose presence marks a complete set (written last, atomically with the rest)."""
        return "annotations.json" if self.detection else "labels.csv"


SIMULATORS: Registry[Callable[[], Simulator]] = Registry("simulator")


@SIMULATORS.register("clumps", help="clumps and odd clumps inside SDSS-like galaxies (COCO)")
def _clumps() -> Simulator:
    from clumpdet.sim.clumps.config import load_sim_config
    from clumpdet.sim.clumps.writer import simulate_clumps

    return Simulator("clumps", load_sim_config, simulate_clumps, ("clump", "odd_clump"), True)


@SIMULATORS.register("fields", help="stars and galaxies in blended DECam-like fields (COCO)")
def _fields() -> Simulator:
    from clumpdet.sim.fields.config import load_field_config
    from clumpdet.sim.fields.writer import simulate_fields

    return Simulator("fields", load_field_config, simulate_fields, ("star", "galaxy"), True)


def _galaxy_simulator(task: str) -> Simulator:
    from clumpdet.sim.galaxies.config import load_galaxy_sim_config
    from clumpdet.sim.galaxies.writer import galaxy_label_columns, simulate_galaxies

    return Simulator(
        task,
        partial(load_galaxy_sim_config, task),
        partial(simulate_galaxies, task=task),
        tuple(galaxy_label_columns(task)),
        False,
    )


@SIMULATORS.register("mergers", help="DeepMerge-like merging pairs vs not (classification)")
def _mergers() -> Simulator:
    return _galaxy_simulator("mergers")


@SIMULATORS.register("four_class", help="normal / ringed / merger / other galaxies (one-hot)")
def _four_class() -> Simulator:
    return _galaxy_simulator("four_class")


@SIMULATORS.register("morphology", help="Galaxy-Zoo-like vote fractions and CANDELS-like fractions")
def _morphology() -> Simulator:
    return _galaxy_simulator("morphology")


def simulator(kind: str) -> Simulator:
    """The simulator registered as ``kind`` (``RegistryError`` lists the known kinds)."""
    return SIMULATORS.get(kind)()


def resolve_config(kind: str, config: Any = None, overrides: Any = ()) -> Any:
    """``kind``'s config from an object (returned as is), a YAML path, or ``None`` (default).

    ``overrides`` (``"key=value"`` strings or a nested mapping) apply to a path or the default.
    """
    sim = simulator(kind)
    if config is None or isinstance(config, (str, os.PathLike)):
        return sim.load_config(config, overrides)
    if overrides:
        raise ConfigError(f"{kind}: overrides need a config path or None, not a config object")
    return config


def simulate_set(
    kind: str,
    *,
    n: int,
    seed: int,
    out: str | Path,
    config: Any = None,
    overrides: Any = (),
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Simulate ``n`` images of ``kind`` into ``out`` (see :func:`resolve_config` for
    ``config`` and ``overrides``); returns ``out``."""
    cfg = resolve_config(kind, config, overrides)
    return simulator(kind).simulate(
        n=n, seed=seed, out=out, config=cfg, workers=workers, overwrite=overwrite, progress=progress
    )


# --------------------------------------------------------------------------------------------
# prepared sets


class Split(NamedTuple):
    """Size and master seed of one simulated split."""

    n: int
    seed: int


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def recorded_difference(folder: str | Path, kind: str, split: Split, config: Any) -> str | None:
    """What differs between the set recorded in ``folder`` and the one asked for (None: same).

    Parameters
    ----------
    folder : path
        A simulated folder (its ``config.yaml`` run record and completion marker are read).
    kind : str
        Registry name.
    split : Split
        ``n`` and ``seed`` asked for.
    config : config object
        The resolved config asked for.

    Returns
    -------
    str or None
        A short description (``"seed 1 recorded, 0 wanted"``, ``"config differs at noise.gain"``,
        ...) or ``None`` when the folder holds exactly that set.
    """
    from clumpdet.config import read_yaml, to_dict

    folder = Path(folder)
    sim = simulator(kind)
    record = folder / RUN_RECORD
    if not (folder / sim.marker).is_file():
        return f"no {sim.marker}"
    if not record.is_file():
        return f"no {RUN_RECORD} run record"
    try:
        run = read_yaml(record).get(RUN_KEY) or {}
    except ClumpdetError as exc:
        return f"unreadable run record ({exc})"
    wanted = {"kind": kind, "seed": int(split.seed), "n": int(split.n)}
    diffs = [
        f"{k} {run.get(k)!r} recorded, {v!r} wanted" for k, v in wanted.items() if run.get(k) != v
    ]
    if diffs:
        return "; ".join(diffs)
    try:
        recorded = sim.load_config(record, ())
    except ClumpdetError as exc:
        return f"recorded config does not load ({exc})"
    if recorded == config:
        return None
    old, new = _flatten(to_dict(recorded)), _flatten(to_dict(config))
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    shown = ", ".join(f"{k} ({old.get(k)!r} recorded, {new.get(k)!r} wanted)" for k in keys[:3])
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return f"config differs at {shown}{more}"


def prepare_sets(
    kind: str,
    splits: Mapping[str, Split | tuple[int, int]],
    *,
    config: Any = None,
    out: str | Path,
    workers: int | None = None,
    progress: bool = True,
    reuse: Literal["regenerate", "error"] = "regenerate",
) -> dict[str, Path]:
    """Simulate the named splits of ``kind`` under ``out``, reusing identical existing sets.

    Parameters
    ----------
    kind : str
        Registry name (:data:`SIMULATORS`): ``clumps``, ``fields``, ``mergers``, ``four_class``
        or ``morphology``.
    splits : mapping of str to Split or (n, seed)
        E.g. ``{"train": (300, 0), "val": (60, 1)}``; split ``s`` is written to ``out / s``.
    config : config object, YAML path or None
        The simulation config (``None``: the simulator's built-in default).
    out : path
        Parent folder of the splits.
    workers : int, optional
        Processes (default: all cores).
    progress : bool
        Show progress bars.
    reuse : {"regenerate", "error"}
        What to do with an existing folder whose run record (kind, seed, n, resolved config)
        differs from the request: say so in a warning and simulate it again, or stop.

    Returns
    -------
    dict of str to Path
        Split name -> its folder (``annotations.json`` + FITS for detection kinds,
        ``images.npy`` + ``labels.csv`` for classification kinds).

    Raises
    ------
    InputError
        ``reuse="error"`` and an existing folder records a different set (the message names the
        folder and what differs).
    ConfigError
        An unknown ``reuse`` value, bad sizes or seeds, or an invalid config.
    """
    if reuse not in ("regenerate", "error"):
        raise ConfigError(f"reuse: expected 'regenerate' or 'error', got {reuse!r}")
    sim = simulator(kind)
    cfg = resolve_config(kind, config)
    out = Path(out)
    result: dict[str, Path] = {}
    for name, spec in splits.items():
        split = Split(*spec)
        target = out / name
        if target.exists():
            diff = recorded_difference(target, kind, split, cfg)
            if diff is None:
                log.info("reusing %s (%s, n=%d, seed=%d)", target, kind, split.n, split.seed)
                result[name] = target
                continue
            if reuse == "error":
                raise InputError(target, f"holds a different {kind} set: {diff}")
            log.warning("%s: regenerating, it holds a different %s set: %s", target, kind, diff)
        sim.simulate(
            n=split.n,
            seed=split.seed,
            out=target,
            config=cfg,
            workers=workers,
            overwrite=True,
            progress=progress,
        )
        result[name] = target
    return result
