"""Helpers shared by the classical finders: filters, result tables, running over a set.

Both finders (:mod:`clumpdet.baselines.classical`, :mod:`clumpdet.baselines.sources`) filter
with a normalised Gaussian of the PSF size, return astropy Tables laid out by a column schema
(:func:`schema_table`; :func:`to_coco_results` turns one into COCO results) and run over image
sets in
:func:`clumpdet.parallel.parallel_map` (spawn) workers that report a failed image as a
:class:`JobFailure` instead of raising (project exceptions carry a path and are not rebuilt
by pickling), so the parent raises it with the image's path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
from astropy.table import Column, Table

from clumpdet.errors import ClumpdetError, InputError
from clumpdet.parallel import parallel_map

#: FWHM of a Gaussian in units of its sigma, ``2 sqrt(2 ln 2)``.
FWHM_PER_SIGMA: float = 2.0 * math.sqrt(2.0 * math.log(2.0))

T = TypeVar("T")
R = TypeVar("R")


def gaussian_kernel(fwhm: float) -> np.ndarray:
    """Normalised 2-D Gaussian kernel.

    Parameters
    ----------
    fwhm : float
        FWHM in pixels.

    Returns
    -------
    ndarray, shape (2 h + 1, 2 h + 1), float32
        Sums to 1; ``h = max(1, ceil(2 sigma))``.
    """
    sigma = fwhm / FWHM_PER_SIGMA
    half = max(1, math.ceil(2.0 * sigma))
    ax = np.arange(-half, half + 1, dtype=np.float64)
    k = np.exp(-0.5 * (ax[:, None] ** 2 + ax[None, :] ** 2) / sigma**2)
    return (k / k.sum()).astype(np.float32)


def filtered_rms(rms: float, kernel: np.ndarray | None) -> float:
    """Per-pixel white-noise rms after convolution with a normalised ``kernel``.

    Parameters
    ----------
    rms : float
        Per-pixel noise of the unfiltered image (any flux unit).
    kernel : ndarray or None
        The filter; None means no filtering.

    Returns
    -------
    float
        ``rms * sqrt(sum(kernel ** 2))`` (``rms`` when ``kernel`` is None), same unit.
    """
    if kernel is None:
        return rms
    return float(rms * np.sqrt(np.sum(kernel.astype(np.float64) ** 2)))


class ColumnSpec(NamedTuple):
    """One column of a finder's table: numpy dtype, astropy unit string (None: none) and text."""

    dtype: type
    unit: str | None
    description: str


def schema_table(
    schema: Mapping[str, ColumnSpec], names: Sequence[str] | None = None, **columns: Any
) -> Table:
    """An astropy Table laid out by a column schema.

    Parameters
    ----------
    schema : mapping of str to ColumnSpec
        Every known column.
    names : sequence of str, optional
        The columns, in order (default: all of ``schema``).
    **columns : array-like, shape (N,)
        Data by column name; a column not given is empty (a zero-row table).

    Returns
    -------
    astropy.table.Table
        Columns cast to their dtype, with unit and description set.
    """
    cols = []
    for name in schema if names is None else names:
        spec = schema[name]
        data = np.asarray(columns.get(name, ()), dtype=spec.dtype)
        cols.append(Column(data, name, unit=spec.unit, description=spec.description))
    return Table(cols)


def boxes_xyxy(table: Table) -> np.ndarray:
    """The boxes of a finder's table.

    Parameters
    ----------
    table : astropy.table.Table
        Output of :func:`~clumpdet.baselines.classical.find_clumps` or
        :func:`~clumpdet.baselines.sources.find_sources` (columns ``x1, y1, x2, y2``).

    Returns
    -------
    ndarray, shape (N, 4)
        ``x1, y1, x2, y2`` pixels, in the columns' dtype.
    """
    return np.stack([np.asarray(table[c]) for c in ("x1", "y1", "x2", "y2")], axis=1).reshape(-1, 4)


def to_coco_results(table: Table, *, image_id: int) -> list[dict[str, Any]]:
    """COCO detection results of one image from a finder's table.

    Parameters
    ----------
    table : astropy.table.Table
        Columns ``x1, y1, x2, y2`` (pixels), ``label`` and ``score``, as the finders return.
    image_id : int
        The image's COCO id.

    Returns
    -------
    list of dict
        ``{image_id, category_id, bbox [x, y, w, h], score}`` per row, in table order; box
        values rounded to 3 decimals (pixels), scores to 5.
    """
    rows = zip(
        boxes_xyxy(table).tolist(), np.asarray(table["label"]).tolist(), table["score"].tolist()
    )
    return [
        {
            "image_id": int(image_id),
            "category_id": int(lab),
            "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
            "score": round(float(sc), 5),
        }
        for (x1, y1, x2, y2), lab, sc in rows
    ]


class JobFailure(NamedTuple):
    """A worker's report that one image failed.

    Attributes
    ----------
    path : str
        The image file.
    problem : str
        One-line description.
    input_error : bool
        Raise it as :class:`~clumpdet.errors.InputError` (else
        :class:`~clumpdet.errors.ClumpdetError`).
    """

    path: str
    problem: str
    input_error: bool


def map_images(
    fn: Callable[[T], R | JobFailure],
    jobs: Sequence[T],
    *,
    workers: int,
    desc: str,
    progress: bool = True,
) -> list[R]:
    """Run ``fn`` on every job with :func:`~clumpdet.parallel.parallel_map`, in order.

    Parameters
    ----------
    fn : callable
        Module-level function (or ``functools.partial`` of one) returning a result or a
        :class:`JobFailure`.
    jobs : sequence
        One picklable job per image.
    workers : int
        Processes (spawn); 1 runs in this process.
    desc : str
        Progress-bar label.
    progress : bool
        Show the progress bar.

    Returns
    -------
    list
        The results, in job order.

    Raises
    ------
    InputError or ClumpdetError
        The first failure, as ``"<path>: <problem>"``.
    """
    results: list[R] = []
    for item in parallel_map(fn, jobs, workers=workers, progress=progress, desc=desc):
        if isinstance(item, JobFailure):
            if item.input_error:
                raise InputError(item.path, item.problem)
            raise ClumpdetError(f"{item.path}: {item.problem}")
        results.append(item)
    return results
