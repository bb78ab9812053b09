"""Write simulated galaxy-classification data sets (mergers, four_class, morphology) to disk.

Layout of ``out`` (built under a temporary name, renamed on success)::

    images.npy    (N, C, H, W) float32 in the task's unit (config ``image.unit``)
    labels.csv    id + label columns (:func:`galaxy_label_columns`):
                    mergers     MergerLabel (1 merger, 0 not)
                    four_class  normal,ringed,merger,other (one-hot)
                    morphology  Class1.1 .. Class11.6 (cumulative vote fractions),
                                count_Class1.1 .. count_Class11.6 (vote counts), n_volunteers,
                                spheroid,disk,irregular,point_source,unclassifiable (CANDELS-like)
    params.csv    id + the true parameters of every image (same columns for every row)
    config.yaml   resolved config plus a ``_run_`` block (kind, seed, n, bands, unit, version)

Row ``i`` of the CSVs (``id == i``) belongs to ``images[i]``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from clumpdet.errors import ConfigError
from clumpdet.sim.common import image_seed
from clumpdet.sim.galaxies.config import (
    task_config_class,
    task_of_config,
    validate_galaxy_sim_config,
)
from clumpdet.sim.galaxies.scene import FOUR_CLASS_NAMES, MERGER_LABEL, simulate_galaxy_scene
from clumpdet.sim.galaxies.votes import CANDELS_NAMES
from clumpdet.sim.run import check_run_args, map_images, save_run_config
from clumpdet.utils import atomic_dir


class _Labels(NamedTuple):
    """The ``labels.csv`` columns of one simulator kind and the row of one scene."""

    columns: Callable[[], list[str]]
    row: Callable[[Any], list[Any]]


def _morphology_columns() -> list[str]:
    from clumpdet.tasks.gz_tree import ANSWER_NAMES  # imports torch: only when asked

    return [
        *ANSWER_NAMES,
        *(f"count_{a}" for a in ANSWER_NAMES),
        "n_volunteers",
        *CANDELS_NAMES,
    ]


def _morphology_row(scene: Any) -> list[Any]:
    counts = scene.extra["counts"]
    # the fractions are written from the exact counts / N (tree sums exact in float64)
    fractions = counts / float(scene.params["n_volunteers"])
    return [
        *(float(v) for v in fractions.astype(np.float64)),
        *(int(c) for c in counts),
        int(scene.params["n_volunteers"]),
        *(float(v) for v in scene.extra["candels"].astype(np.float64)),
    ]


#: Label columns and rows of each simulator kind.
_LABELS: dict[str, _Labels] = {
    "mergers": _Labels(lambda: [MERGER_LABEL], lambda scene: [int(scene.label[0])]),
    "four_class": _Labels(
        lambda: list(FOUR_CLASS_NAMES), lambda scene: [int(v) for v in scene.label]
    ),
    "morphology": _Labels(_morphology_columns, _morphology_row),
}


def galaxy_label_columns(task: str) -> list[str]:
    """Label columns of ``labels.csv`` for ``task`` (without the leading ``id``)."""
    task_config_class(task)
    return _LABELS[task].columns()


def _render(
    index: int, *, task: str, cfg: Any, seed: int
) -> tuple[np.ndarray, list[Any], dict[str, Any]]:
    """Worker: simulate image ``index`` of a run; returns (image, label row, params)."""
    sc = simulate_galaxy_scene(task=task, config=cfg, seed=image_seed(seed, index), image_id=index)
    return sc.image, _LABELS[task].row(sc), sc.params


def _fmt(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return ""
    return v


def simulate_galaxies(
    *,
    task: Literal["mergers", "four_class", "morphology"],
    n: int,
    seed: int,
    out: str | Path,
    config: Any = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Simulate ``n`` labelled galaxy images of ``task`` and write them to ``out`` atomically.

    Parameters
    ----------
    task : {"mergers", "four_class", "morphology"}
        Which simulator (:mod:`clumpdet.sim.galaxies.scene`).
    n : int
        Number of images (>= 1).
    seed : int
        Master seed. Image ``i`` is a pure function of ``(config, seed, i)``: the output does not
        depend on ``workers``.
    out : str or Path
        Output directory (layout in the module docstring).
    config : MergerSimConfig, FourClassSimConfig or MorphologySimConfig, optional
        Defaults to the task's default config (``configs/sim/<task>.yaml``).
    workers : int, optional
        Processes; default ``os.cpu_count()``; 1 runs in-process. Workers are started with
        ``spawn``, so scripts calling this with ``workers > 1`` need the
        ``if __name__ == "__main__":`` guard.
    overwrite : bool
        Replace a non-empty existing ``out``.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ConfigError
        Unknown task, a config of another task, an invalid config, ``n < 1``, a bad seed or
        worker count.
    InputError
        ``out`` exists and is not empty and ``overwrite`` is false.
    """
    cls = task_config_class(task)
    cfg = cls() if config is None else config
    if task_of_config(cfg) != task:
        raise ConfigError(f"config: a {type(cfg).__name__} cannot simulate task {task!r}")
    validate_galaxy_sim_config(cfg)
    workers = check_run_args(n=n, seed=seed, workers=workers)
    out = Path(out)
    im = cfg.image
    shape = (n, len(im.bands), im.height, im.width)
    label_cols = galaxy_label_columns(task)
    with atomic_dir(out, overwrite=overwrite) as tmp:
        images = np.lib.format.open_memmap(
            tmp / "images.npy", mode="w+", dtype=np.float32, shape=shape
        )
        labels: list[list[Any]] = []
        params: list[dict[str, Any]] = []
        worker = partial(_render, task=task, cfg=cfg, seed=int(seed))
        results = map_images(
            worker, n=n, workers=workers, progress=progress, desc=f"simulate {task}"
        )
        for i, (img, row, par) in enumerate(results):
            images[i] = img
            labels.append([i, *row])
            params.append(par)
        images.flush()
        del images
        with open(tmp / "labels.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", *label_cols])
            w.writerows(labels)
        keys: list[str] = []
        for par in params:
            keys.extend(k for k in par if k not in keys)
        with open(tmp / "params.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["id", *keys])
            for i, par in enumerate(params):
                w.writerow([i, *(_fmt(par.get(k, "")) for k in keys)])
        save_run_config(
            cfg, tmp / "config.yaml", kind=task, seed=seed, n=n, bands=list(im.bands), unit=im.unit
        )
    return out
