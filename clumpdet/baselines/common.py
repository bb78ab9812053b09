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


def estimate_psf_fwhm(
    image: np.ndarray,
    *,
    profile: str = "moffat",
    moffat_beta: float = 3.5,
    min_snr: float = 30.0,
    max_stars: int = 40,
    min_stars: int = 3,
    guess_fwhm_px: float = 3.0,
    isolation: float = 4.0,
    _depth: int = 0,
) -> float:
    """PSF FWHM (pixels) measured from the point sources of an image, not from any truth.

    Bright, isolated, unflagged ``sep`` sources of the (band-summed, background-subtracted)
    image are measured with GalSim HSM adaptive moments; the stellar locus is the compact end of
    their size distribution (sources within 15 % of the 20th-percentile moment size); its
    median moment size is turned into a FWHM by measuring a noiseless, pixel-integrated PSF of
    the given ``profile`` the same way (so estimator and pixel biases cancel), iterated twice.

    Parameters
    ----------
    image : ndarray, shape (C, H, W) or (H, W)
        Image; planes are summed, non-finite pixels count as 0.
    profile : {"moffat", "gaussian", "kolmogorov"}
        PSF shape assumed to convert moments to a FWHM.
    moffat_beta : float
        Moffat ``beta`` when ``profile="moffat"``.
    min_snr : float
        Minimum isophotal S/N of a candidate star.
    max_stars : int
        Use at most this many (brightest unsaturated-looking) candidates.
    min_stars : int
        Fewer measured candidates than this is an error.
    guess_fwhm_px : float
        Starting FWHM of the moment measurement.
    isolation : float
        A candidate needs no other detection within this many guess FWHMs (0: no cut).

    Returns
    -------
    float
        Estimated PSF FWHM in pixels.

    Raises
    ------
    InputError
        Too few point-like sources to measure the PSF.
    """
    import galsim
    import sep

    from clumpdet.noise import mad_sigma

    arr = np.asarray(image, dtype=np.float64)
    det = arr.reshape(-1, *arr.shape[-2:]).sum(axis=0) if arr.ndim == 3 else arr
    det = np.ascontiguousarray(np.where(np.isfinite(det), det, 0.0), dtype=np.float32)
    if min(det.shape) >= 192:
        sub = det - sep.Background(det, bw=64, bh=64).back()
    else:  # a small tile: one sky level (a 64 px mesh would eat its sources)
        sub = det - np.float32(np.median(det[det != 0])) if np.any(det != 0) else det
    rms = mad_sigma(sub, ignore_zeros=True)
    if not rms > 0:
        raise InputError(None, "cannot measure the PSF: the image has no noise")
    try:
        objs = sep.extract(sub, 5.0, err=rms, minarea=5, deblend_cont=1.0)
    except Exception as exc:  # sep raises bare Exception on overflow
        raise InputError(None, f"cannot measure the PSF: sep failed ({exc})") from None
    h, w = sub.shape
    edge = 3.0 * guess_fwhm_px
    snr = objs["flux"] / (rms * np.sqrt(np.maximum(objs["npix"], 1)))
    ok = (
        (objs["flag"] == 0)
        & (snr >= min_snr)
        & (objs["x"] > edge)
        & (objs["x"] < w - 1 - edge)
        & (objs["y"] > edge)
        & (objs["y"] < h - 1 - edge)
    )
    if len(objs) > 1 and isolation > 0:
        d = np.hypot(objs["x"][:, None] - objs["x"][None], objs["y"][:, None] - objs["y"][None])
        np.fill_diagonal(d, np.inf)
        ok &= d.min(axis=1) > isolation * guess_fwhm_px
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(-snr[idx])][: int(max_stars)]
    r = math.ceil(3.0 * guess_fwhm_px)
    sig = []
    for k in idx:
        xi, yi = round(float(objs["x"][k])), round(float(objs["y"][k]))
        stamp = sub[max(0, yi - r) : yi + r + 1, max(0, xi - r) : xi + r + 1]
        try:
            mom = galsim.hsm.FindAdaptiveMom(
                galsim.Image(np.ascontiguousarray(stamp, dtype=np.float64)),
                guess_sig=guess_fwhm_px / FWHM_PER_SIGMA,
                strict=False,
            )
        except (galsim.GalSimError, RuntimeError, ValueError):
            continue
        if mom.moments_status == 0 and mom.moments_sigma > 0:
            sig.append(mom.moments_sigma)
    if len(sig) < min_stars:
        raise InputError(
            None,
            f"cannot measure the PSF: {len(sig)} bright isolated source(s), need {min_stars}",
        )
    s = np.asarray(sig)
    lo = np.percentile(s, 20)
    star_sigma = float(np.median(s[s <= 1.15 * lo]))
    fwhm = FWHM_PER_SIGMA * star_sigma
    for _ in range(2):
        fwhm *= star_sigma / _psf_moment_sigma(profile, float(moffat_beta), round(fwhm, 4))
    if abs(fwhm / guess_fwhm_px - 1.0) > 0.3 and _depth < 2:  # stamps / isolation sized anew
        try:
            return estimate_psf_fwhm(
                image, profile=profile, moffat_beta=moffat_beta, min_snr=min_snr,
                max_stars=max_stars, min_stars=min_stars, guess_fwhm_px=fwhm,
                isolation=isolation, _depth=_depth + 1,
            )  # fmt: skip
        except InputError:
            pass
    return float(fwhm)


def _psf_moment_sigma(profile: str, beta: float, fwhm: float) -> float:
    """HSM adaptive-moment sigma (pixels) of a noiseless, pixel-integrated PSF of this FWHM."""
    import galsim

    if profile == "gaussian":
        psf = galsim.Gaussian(fwhm=fwhm)
    elif profile == "kolmogorov":
        psf = galsim.Kolmogorov(fwhm=fwhm)
    else:
        psf = galsim.Moffat(beta=beta, fwhm=fwhm)
    n = int(2 * math.ceil(4 * fwhm) + 1)
    img = psf.drawImage(nx=n, ny=n, scale=1.0)
    return float(galsim.hsm.FindAdaptiveMom(img).moments_sigma)
