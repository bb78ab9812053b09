"""Classical source detection and deblending (SExtractor-like) for blended star/galaxy fields.

The baseline the neural detector is compared with on the blended-field benchmark. It needs no
training: it thresholds a filtered, noise-weighted coadd, deblends the segments with
multi-threshold (sep) or watershed (photutils) deblending, and calls a source a star when it is
as compact as the PSF.

Algorithm
---------
1. **Bad pixels.** A pixel that is non-finite (NaN, +-inf) in *any* band is masked: it is set
   to 0 in every band, excluded from the noise estimate and the background mesh, and masked in
   detection (sep: zero data and infinite noise before filtering; photutils: ``mask=``). Fluxes
   over a segment therefore count masked pixels as zero.
2. **Background** (:attr:`SourceFinderConfig.background`). ``"none"`` (default): the images are
   taken as sky-subtracted, as simulated tiles are. ``"sep"``: per band, a ``sep.Background``
   mesh (``background_mesh`` px boxes, ``background_filter`` median filter) is subtracted, for
   real frames such as the NTT field.
3. **Noise.** The per-pixel sky sigma of each band, ``noise_sigma``; when not given it is
   estimated, per band, as the MAD rms (:func:`clumpdet.noise.mad_sigma`) of the non-zero
   pixels, after the background subtraction (unlike ``sep.Background.globalrms`` it is not
   inflated by sky gradients within a mesh; sources inflate it a little).
4. **Detection image.** The inverse-variance-weighted mean of the bands,
   ``D = sum_b w_b I_b`` with ``w_b = sigma_b^-2 / sum_c sigma_c^-2``: in flux units (for a flat
   spectrum in nanomaggies ``D`` equals each band) with a known per-pixel noise
   ``sigma_D = (sum_b sigma_b^-2)^-1/2``, the best S/N any fixed-weight coadd reaches.
5. **Filter and threshold.** ``D`` is convolved with a normalised Gaussian of FWHM
   ``filter_fwhm_factor * psf_fwhm_px`` (a matched filter for a point source). The threshold is
   ``thresh * sigma_D`` with ``thresh_units="pixel"`` (SExtractor's ``DETECT_THRESH``: in units
   of the *unfiltered* pixel noise, applied to the filtered image; the default 1.5 is
   default.sex's and, for a 3.5 px FWHM, sits at 7.7 sigma of the filtered image), or
   ``thresh * sigma_F`` with ``thresh_units="filtered"``, ``sigma_F = sigma_D * sqrt(sum K^2)``
   the noise of the filtered image (a matched-filter S/N cut, independent of the PSF size;
   1.5 sigma_F would find ~4000 noise peaks per megapixel, use 3.5-4). At least ``minarea``
   connected pixels must pass. Measured on isolated Moffat stars (FWHM 3.5 px) and pure noise,
   both engines alike: ``pixel 1.5`` finds 0% / 23% / 89% of stars of optimal S/N 5 / 8 / 10
   and no noise peak per megapixel; ``filtered 4`` finds 69% / 100% / 100% and 2 noise peaks
   per megapixel; ``filtered 3.5`` 83% / 100% / 100% and 11.
6. **Deblending.** ``method="sep"``: ``sep.extract`` (SExtractor's multi-threshold deblending,
   ``deblend_nthresh`` levels, ``deblend_cont`` minimum contrast, cleaning on).
   ``method="photutils"``: ``detect_sources`` on the filtered image, then ``deblend_sources``
   (``nlevels`` levels, ``contrast``, exponential spacing; scikit-image watershed).
7. **Measurements** per deblended segment (both engines alike, so they differ only in
   detection and deblending): the centroid (sep's isophotal barycentre / photutils
   ``SourceCatalog`` centroid of ``D``), the box (the segment's bounding box),
   ``score = S/N = sum_seg D / (sigma_D sqrt(npix))`` (isophotal S/N of the detection image),
   the reference-band flux ``FLUX_AUTO`` (Kron ellipse ``max(2.5 k, 3.5) * (a, b)`` from the
   segment's moments on ``D``, other segments masked; ~5% low for a Moffat star, as in
   SExtractor), ``mag = flux_to_mag(flux)`` (:mod:`clumpdet.units`, zero point 22.5; NaN
   when the flux is not positive), and the half-light radius ``r50`` of ``D``
   (``sep.flux_radius``, normalised within ``r50_rmax_fwhm * psf_fwhm_px``, pixels of other
   segments masked). Every image's measurements are one astropy Table (units on the columns).
8. **Star or galaxy.** A source is a star (label 1) when ``r50 < star_r50_factor * r50_psf``,
   else a galaxy (label 2; also when ``r50`` cannot be measured). ``r50_psf`` is measured with
   the same estimator on a noiseless, pixel-integrated PSF (``psf_profile``,
   ``psf_moffat_beta``) of FWHM ``psf_fwhm_px``, so estimator and pixel biases cancel: at
   3.5 px FWHM it is 0.624 FWHM for the simulator's Moffat beta = 3.5 (0.60-0.67 from 8 to
   2 px), 0.590 for Kolmogorov and 0.522 for a Gaussian (0.5 unpixelised). On noisy isolated
   Moffat stars the measured ``r50 / r50_psf`` has median 1.00 and 10-90% range 0.85-1.31 at
   S/N 15, 0.90-1.10 at S/N 30; an exponential galaxy of half-light radius 0.29 FWHM has median
   1.15, one of 0.57 FWHM 1.46. The default ``star_r50_factor = 1.15`` keeps ~95% of stars
   at S/N 30 (~70-90% at S/N 15) and calls galaxies larger than ~0.3 FWHM galaxies; smaller
   galaxies are unresolved and end up as stars. On 12 simulated DECam-like tiles
   (configs/sim/fields_decam.yaml, sep) 92-96% of the found stars of S/N > 20 are labelled
   star, and 93-100% of the found galaxies with a disk half-light radius above 0.4 FWHM are
   labelled galaxy.

Coordinates follow docs/conventions.md: sep and photutils return 0-based pixel-centre
coordinates, so ``x = x_sep + 0.5``; the box of a segment covering columns ``j0 .. j1`` is
``x1 = j0``, ``x2 = j1 + 1``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import sep
from astropy.table import Table, vstack
from scipy import ndimage

from clumpdet.baselines.common import (
    ColumnSpec,
    JobFailure,
    filtered_rms,
    gaussian_kernel,
    map_images,
    schema_table,
)
from clumpdet.errors import ClumpdetError, ConfigError, InputError, NoDetectionsWarning
from clumpdet.noise import mad_sigma
from clumpdet.units import flux_to_mag

SourceMethod = Literal["sep", "photutils"]
_METHODS: tuple[str, ...] = ("sep", "photutils")

#: Columns of the :func:`find_sources` table: ``name -> (dtype, unit, description)``
#: (:func:`run_source_baseline` prepends ``image_id``).
_SOURCE_SCHEMA: dict[str, ColumnSpec] = {
    "image_id": ColumnSpec(np.int64, None, "COCO image id"),
    "x": ColumnSpec(np.float64, "pix", "centroid x (corner-origin pixels)"),
    "y": ColumnSpec(np.float64, "pix", "centroid y (corner-origin pixels)"),
    "x1": ColumnSpec(np.float64, "pix", "segment bounding box left"),
    "y1": ColumnSpec(np.float64, "pix", "segment bounding box bottom"),
    "x2": ColumnSpec(np.float64, "pix", "segment bounding box right (exclusive)"),
    "y2": ColumnSpec(np.float64, "pix", "segment bounding box top (exclusive)"),
    "label": ColumnSpec(np.int64, None, "1 star, 2 galaxy"),
    "score": ColumnSpec(np.float64, None, "isophotal S/N of the detection image"),
    "mag": ColumnSpec(np.float64, "mag", "reference-band AB magnitude (NaN when flux <= 0)"),
    "flux": ColumnSpec(np.float64, "nmgy", "reference-band Kron flux FLUX_AUTO"),
    "r50": ColumnSpec(np.float64, "pix", "half-light radius of the detection image"),
    "npix": ColumnSpec(np.int64, "pix2", "segment area"),
}
#: Column names of :func:`find_sources` output, in order.
SOURCE_COLUMNS: tuple[str, ...] = tuple(_SOURCE_SCHEMA)[1:]

#: sep's active-pixel buffer is never set below its default (300 000 pixels) ...
_MIN_PIXSTACK = 300_000
#: ... and its sub-object limit per deblended segment to at least this (costs nothing).
_MIN_SUB_OBJECTS = 4096


@dataclass
class SourceFinderConfig:
    """Knobs of the classical source finder (lengths in pixels unless stated).

    Defaults follow SExtractor's default.sex (threshold, minimum area, deblending) and
    photutils' defaults (``nlevels``, ``contrast``); the star/galaxy rule is calibrated on the
    simulator's PSF (module docstring). Load from YAML with
    ``clumpdet.config.load_config(SourceFinderConfig, path)``.

    Parameters
    ----------
    method : {"sep", "photutils"}
        Detection and deblending engine.
    thresh : float
        Detection threshold in units given by ``thresh_units``.
    thresh_units : {"pixel", "filtered"}
        ``"pixel"``: ``thresh`` times the per-pixel noise of the unfiltered detection image,
        applied to the filtered image (SExtractor's ``DETECT_THRESH``); ``"filtered"``:
        ``thresh`` times the noise of the filtered image (a matched-filter S/N).
    minarea : int
        Minimum number of connected pixels above the threshold (SExtractor 5).
    deblend_nthresh : int
        sep: number of deblending thresholds (SExtractor 32).
    deblend_cont : float
        sep: minimum contrast (flux fraction) of a deblended branch (SExtractor 0.005); 1.0
        disables deblending.
    nlevels : int
        photutils: number of multi-thresholding levels of ``deblend_sources`` (default 32).
    contrast : float
        photutils: minimum flux fraction of a deblended source (photutils default 0.001); 1.0
        disables deblending.
    filter_fwhm_factor : float
        Detection filter: Gaussian of FWHM ``filter_fwhm_factor * psf_fwhm_px``.
    star_r50_factor : float
        A source is a star when ``r50 < star_r50_factor * r50_psf``.
    psf_profile : {"moffat", "gaussian", "kolmogorov"}
        PSF shape used to compute ``r50_psf`` (the simulator's default is Moffat).
    psf_moffat_beta : float
        Moffat index of that PSF.
    r50_rmax_fwhm : float
        ``r50`` is the radius enclosing half the flux within ``r50_rmax_fwhm * psf_fwhm_px``.
    reference_band : str
        Band of the reported flux and magnitude (a single-plane image is used whatever its
        name).
    background : {"none", "sep"}
        ``"none"``: images are sky-subtracted; ``"sep"``: subtract a ``sep.Background`` mesh.
    background_mesh : int
        sep background box size, pixels.
    background_filter : int
        sep background median-filter size, in boxes.
    """

    method: SourceMethod = "sep"
    thresh: float = 1.5
    thresh_units: Literal["pixel", "filtered"] = "pixel"
    minarea: int = 5
    deblend_nthresh: int = 32
    deblend_cont: float = 0.005
    nlevels: int = 32
    contrast: float = 0.001
    filter_fwhm_factor: float = 1.0
    star_r50_factor: float = 1.15
    psf_profile: Literal["moffat", "gaussian", "kolmogorov"] = "moffat"
    psf_moffat_beta: float = 3.5
    r50_rmax_fwhm: float = 3.0
    reference_band: str = "r"
    background: Literal["none", "sep"] = "none"
    background_mesh: int = 64
    background_filter: int = 3

    def __post_init__(self) -> None:
        if self.method not in _METHODS:
            raise ConfigError(
                f"SourceFinderConfig.method: {self.method!r} is not one of {list(_METHODS)}"
            )
        for name in ("thresh", "filter_fwhm_factor", "star_r50_factor", "r50_rmax_fwhm"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"SourceFinderConfig.{name}: must be a positive number, got {value!r}"
                )
        if self.thresh_units not in ("pixel", "filtered"):
            raise ConfigError(
                f"SourceFinderConfig.thresh_units: {self.thresh_units!r} is not one of "
                "['pixel', 'filtered']"
            )
        for name in ("minarea", "deblend_nthresh", "nlevels", "background_mesh"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"SourceFinderConfig.{name}: must be >= 1")
        if self.background_filter < 1 or self.background_filter % 2 == 0:
            raise ConfigError("SourceFinderConfig.background_filter: must be an odd number >= 1")
        for name in ("deblend_cont", "contrast"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise ConfigError(f"SourceFinderConfig.{name}: must be in (0, 1]")
        if self.psf_profile not in ("moffat", "gaussian", "kolmogorov"):
            raise ConfigError(
                f"SourceFinderConfig.psf_profile: {self.psf_profile!r} is not one of "
                "['moffat', 'gaussian', 'kolmogorov']"
            )
        if not self.psf_moffat_beta > 1.1:
            raise ConfigError("SourceFinderConfig.psf_moffat_beta: must be > 1.1 (finite flux)")
        if self.background not in ("none", "sep"):
            raise ConfigError(
                f"SourceFinderConfig.background: {self.background!r} is not one of ['none', 'sep']"
            )


class _Segments(NamedTuple):
    """Deblended segments: map (labels 1..n, 0 = sky) and 0-based centroids per label."""

    segmap: np.ndarray
    x: np.ndarray
    y: np.ndarray


def empty_sources(*, with_image_id: bool = False) -> Table:
    """An empty source table with the columns, dtypes and units of :func:`find_sources`.

    Parameters
    ----------
    with_image_id : bool
        Prepend an ``image_id`` column (the layout of :func:`run_source_baseline`).

    Returns
    -------
    astropy.table.Table
        Zero rows.
    """
    names = (("image_id",) if with_image_id else ()) + SOURCE_COLUMNS
    return schema_table(_SOURCE_SCHEMA, names)


# --------------------------------------------------------------------------- PSF size


@functools.lru_cache(maxsize=128)
def _psf_r50_cached(profile: str, beta: float, fwhm_px: float, rmax_fwhm: float) -> float:
    import galsim

    if profile == "gaussian":
        psf = galsim.Gaussian(fwhm=fwhm_px)
    elif profile == "kolmogorov":
        psf = galsim.Kolmogorov(fwhm=fwhm_px)
    else:
        psf = galsim.Moffat(beta=beta, fwhm=fwhm_px)
    half = math.ceil(rmax_fwhm * fwhm_px) + 3
    n = 2 * half + 1
    img = psf.drawImage(nx=n, ny=n, scale=1.0).array.astype(np.float32)  # pixel-integrated
    r, _ = sep.flux_radius(
        np.ascontiguousarray(img),
        np.array([float(half)]),
        np.array([float(half)]),
        np.array([rmax_fwhm * fwhm_px]),
        0.5,
        subpix=5,
    )
    return float(np.asarray(r).ravel()[0])


def psf_r50(
    fwhm_px: float,
    *,
    profile: Literal["moffat", "gaussian", "kolmogorov"] = "moffat",
    moffat_beta: float = 3.5,
    rmax_fwhm: float = 3.0,
) -> float:
    """Half-light radius of a pixel-integrated PSF as :func:`find_sources` measures it.

    The PSF is drawn noiseless with GalSim (pixel response included) and its ``r50`` measured
    with ``sep.flux_radius`` within ``rmax_fwhm * fwhm_px``, the estimator applied to sources.

    Parameters
    ----------
    fwhm_px : float
        PSF FWHM, pixels.
    profile : {"moffat", "gaussian", "kolmogorov"}
        PSF shape.
    moffat_beta : float
        Moffat index (``profile="moffat"``).
    rmax_fwhm : float
        Normalisation radius in FWHMs.

    Returns
    -------
    float
        ``r50`` in pixels (0.624 FWHM for Moffat beta = 3.5, 0.522 for a Gaussian at
        3.5 px FWHM).
    """
    if not (math.isfinite(fwhm_px) and fwhm_px > 0):
        raise InputError(None, f"psf_fwhm_px must be a positive number, got {fwhm_px!r}")
    return _psf_r50_cached(profile, float(moffat_beta), round(float(fwhm_px), 3), rmax_fwhm)


# --------------------------------------------------------------------------- preparation


def _as_cube(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 2 or arr.shape[2] < 2:
        raise InputError(None, f"expected an image of shape (C, H, W) or (H, W), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(None, f"expected a numeric image, got dtype {arr.dtype}")
    return arr.astype(np.float32, copy=True)


def _band_names(bands: Sequence[str] | None, n: int) -> tuple[str, ...] | None:
    if bands is None:
        return None
    names = (bands,) if isinstance(bands, str) else tuple(str(b) for b in bands)
    if len(names) != n:
        raise InputError(None, f"{len(names)} band name(s) {list(names)} for {n} image plane(s)")
    return names


def _noise_per_band(
    noise_sigma: Mapping[str, float] | Sequence[float] | float | None,
    names: tuple[str, ...] | None,
    n: int,
) -> np.ndarray | None:
    """Per-plane sky sigma from the user's ``noise_sigma``; None to estimate it."""
    if noise_sigma is None:
        return None
    if isinstance(noise_sigma, Mapping):
        if names is None:
            raise InputError(None, "noise_sigma is a mapping of band names: pass bands= too")
        missing = [b for b in names if b not in noise_sigma]
        if missing:
            raise InputError(
                None, f"noise_sigma has no value for band(s) {missing} (has {list(noise_sigma)})"
            )
        sig = np.array([float(noise_sigma[b]) for b in names])
    elif np.ndim(noise_sigma) == 0:
        sig = np.full(n, float(noise_sigma))  # type: ignore[arg-type]
    else:
        sig = np.asarray(noise_sigma, dtype=np.float64).reshape(-1)
        if sig.size != n:
            raise InputError(None, f"{sig.size} noise_sigma value(s) for {n} image plane(s)")
    if not np.all(np.isfinite(sig) & (sig > 0)):
        raise InputError(None, f"noise_sigma must be positive and finite, got {sig.tolist()}")
    return sig


def _subtract_background(cube: np.ndarray, bad: np.ndarray, cfg: SourceFinderConfig) -> None:
    """Subtract a sep background mesh from every plane, in place (masked pixels stay 0)."""
    h, w = cube.shape[1:]
    mesh = int(min(cfg.background_mesh, h, w))
    for c in range(cube.shape[0]):
        bkg = sep.Background(
            cube[c],
            mask=bad,
            bw=mesh,
            bh=mesh,
            fw=cfg.background_filter,
            fh=cfg.background_filter,
        )
        cube[c] -= bkg.back(dtype=np.float32)
    cube[:, bad] = 0.0


def _reference_index(names: tuple[str, ...] | None, n: int, ref: str) -> int:
    if names is not None and ref in names:
        return names.index(ref)
    if n == 1:
        return 0
    have = "no band names given" if names is None else f"bands {list(names)}"
    raise InputError(None, f"reference band {ref!r} not found ({have})")


# --------------------------------------------------------------------------- detection


@contextlib.contextmanager
def _sep_limits(npix: int) -> Iterator[None]:
    """Size sep's global buffers for an ``npix``-pixel image, restoring them afterwards.

    The active-pixel stack is set to ``max(300 000, npix)``: no more pixels than the image
    holds can be active, so it cannot overflow (a 2048 x 2048 mosaic needs 4.2 M). It is not
    left large, because sep allocates and clears the whole stack on every call (16 M pixels
    cost ~0.4 s and ~0.5 GB per call even for a small tile).
    """
    old_stack, old_sub = sep.get_extract_pixstack(), sep.get_sub_object_limit()
    sep.set_extract_pixstack(max(_MIN_PIXSTACK, int(npix)))
    sep.set_sub_object_limit(max(old_sub, _MIN_SUB_OBJECTS))
    try:
        yield
    finally:
        sep.set_extract_pixstack(old_stack)
        sep.set_sub_object_limit(old_sub)


def _segments_sep(
    det: np.ndarray, bad: np.ndarray, noise: float, kernel: np.ndarray, cfg: SourceFinderConfig
) -> _Segments:
    try:
        with _sep_limits(det.size):
            objs, segmap = sep.extract(
                det,
                cfg.thresh,
                err=noise,
                mask=bad if bad.any() else None,
                minarea=int(cfg.minarea),
                filter_kernel=kernel,
                filter_type="matched",
                deblend_nthresh=int(cfg.deblend_nthresh),
                deblend_cont=float(cfg.deblend_cont),
                segmentation_map=True,
            )
    except Exception as exc:  # sep raises bare Exception for its buffer overflows
        msg = str(exc)
        if "pixel buffer full" in msg or "deblending overflow" in msg:
            raise ClumpdetError(
                f"sep could not extract sources from a {det.shape[0]}x{det.shape[1]} image "
                f"({msg.split(':')[0]}): a segment holds more sub-objects than sep's limit "
                f"({max(sep.get_sub_object_limit(), _MIN_SUB_OBJECTS)}) or too many pixels are "
                "above the threshold. Check that the image is background-subtracted "
                "(background='sep' for raw frames), raise thresh, or lower deblend_nthresh. "
                "sep said: " + msg
            ) from None
        raise
    segmap = np.asarray(segmap, dtype=np.int32)
    return _Segments(segmap, np.asarray(objs["x"], float), np.asarray(objs["y"], float))


def _segments_photutils(
    det: np.ndarray, bad: np.ndarray, threshold: float, kernel: np.ndarray, cfg: SourceFinderConfig
) -> _Segments:
    import inspect

    from astropy.utils.exceptions import AstropyWarning
    from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources

    conv = ndimage.convolve(det, kernel.astype(np.float32), mode="constant", cval=0.0)
    mask = bad if bad.any() else None
    empty = _Segments(np.zeros(det.shape, np.int32), np.zeros(0), np.zeros(0))
    # photutils warns (AstropyWarning subclasses) when nothing is found and when deblending
    # changes a label's mode; neither is news to the caller.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        segm = detect_sources(conv, threshold, int(cfg.minarea), mask=mask)
        if segm is None:
            return empty
        if cfg.contrast < 1.0:
            params = inspect.signature(deblend_sources).parameters
            levels = "n_levels" if "n_levels" in params else "nlevels"  # photutils < 3: nlevels
            segm = deblend_sources(
                conv, segm, int(cfg.minarea), contrast=float(cfg.contrast), progress_bar=False,
                **{levels: int(cfg.nlevels)},
            )  # fmt: skip
        labels = np.asarray(segm.labels, dtype=np.int64)
        if labels.size == 0:
            return empty
        cat = SourceCatalog(det, segm, mask=mask)
        new_names = hasattr(SourceCatalog, "x_centroid")  # photutils >= 3.0
        x = np.asarray(getattr(cat, "x_centroid" if new_names else "xcentroid"), dtype=float)
        y = np.asarray(getattr(cat, "y_centroid" if new_names else "ycentroid"), dtype=float)
    # relabel to 1..n in label order (the catalogue's order)
    raw = np.asarray(segm.data)
    lut = np.zeros(int(raw.max()) + 1, dtype=np.int32)
    lut[labels] = np.arange(1, labels.size + 1, dtype=np.int32)
    segmap = lut[raw]
    bad_c = ~(np.isfinite(x) & np.isfinite(y))
    if bad_c.any():  # e.g. a segment of negative unfiltered flux: use its filtered peak
        pos = ndimage.maximum_position(conv, segmap, index=np.flatnonzero(bad_c) + 1)
        for k, (py, px) in zip(np.flatnonzero(bad_c), pos):
            x[k], y[k] = float(px), float(py)
    return _Segments(segmap, x, y)


def _shapes(
    segmap: np.ndarray, det: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ellipse ``a, b`` (px) and ``theta`` (rad) of each segment from flux-weighted moments.

    Second moments of the positive detection-image pixels of each segment about the source
    centroid (SExtractor's ``A_IMAGE``, ``B_IMAGE``, ``THETA_IMAGE``); ``1/12`` px^2 is added
    to both axes (a pixel's own variance) so single-pixel or flat segments stay non-singular.
    """
    n = x.size
    rows, cols = np.nonzero(segmap)
    lab = segmap[rows, cols].astype(np.int64)
    w = np.clip(det[rows, cols].astype(np.float64), 0.0, None)
    dx = cols - x[lab - 1]
    dy = rows - y[lab - 1]
    tot = np.bincount(lab, weights=w, minlength=n + 1)[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        x2 = np.bincount(lab, weights=w * dx * dx, minlength=n + 1)[1:] / tot
        y2 = np.bincount(lab, weights=w * dy * dy, minlength=n + 1)[1:] / tot
        xy = np.bincount(lab, weights=w * dx * dy, minlength=n + 1)[1:] / tot
    ok = tot > 0
    x2 = np.where(ok, x2, 0.0) + 1.0 / 12.0
    y2 = np.where(ok, y2, 0.0) + 1.0 / 12.0
    xy = np.where(ok, xy, 0.0)
    mean, half = 0.5 * (x2 + y2), np.sqrt((0.5 * (x2 - y2)) ** 2 + xy**2)
    a = np.sqrt(mean + half)
    b = np.sqrt(np.clip(mean - half, 1.0 / 12.0, None))
    theta = 0.5 * np.arctan2(2.0 * xy, x2 - y2)
    return a, b, theta


def _kron_flux(seg: _Segments, det: np.ndarray, ref: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """SExtractor ``FLUX_AUTO`` of the reference band (``PHOT_AUTOPARAMS 2.5, 3.5``).

    The Kron radius ``k`` of the detection image within 6 ``a, b`` gives the ellipse
    ``max(2.5 k, 3.5) * (a, b)``; pixels of other segments are masked (sep scales the sum up
    by the masked fraction of the aperture).
    """
    a, b, theta = _shapes(seg.segmap, det, seg.x, seg.y)
    kron, _ = sep.kron_radius(det, seg.x, seg.y, a, b, theta, 6.0, segmap=seg.segmap, seg_id=ids)
    kron = np.where(np.isfinite(kron) & (kron > 0), kron, 0.0)
    scale = np.maximum(2.5 * kron, 3.5)
    flux, _, _ = sep.sum_ellipse(
        ref, seg.x, seg.y, a, b, theta, scale, segmap=seg.segmap, seg_id=ids, subpix=5
    )
    return np.asarray(flux, dtype=np.float64).reshape(-1)


def _measure(
    seg: _Segments,
    det: np.ndarray,
    ref: np.ndarray,
    noise: float,
    r50_psf: float,
    psf_fwhm_px: float,
    cfg: SourceFinderConfig,
) -> Table:
    n = int(seg.x.size)
    if n == 0:
        return empty_sources()
    ids = np.arange(1, n + 1, dtype=np.int32)
    flat = seg.segmap.ravel()
    npix = np.bincount(flat, minlength=n + 1)[1 : n + 1]
    det_sum = np.bincount(flat, weights=det.ravel().astype(np.float64), minlength=n + 1)
    det_sum = det_sum[1 : n + 1]
    box = np.full((n, 4), np.nan)
    for k, sl in enumerate(ndimage.find_objects(seg.segmap, max_label=n)):
        if sl is not None:
            box[k] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    flux = _kron_flux(seg, det, ref, ids)
    rmax = np.full(n, cfg.r50_rmax_fwhm * psf_fwhm_px)
    r50, _ = sep.flux_radius(det, seg.x, seg.y, rmax, 0.5, segmap=seg.segmap, seg_id=ids, subpix=5)
    r50 = np.asarray(r50, dtype=np.float64).reshape(-1)
    r50[~(np.isfinite(r50) & (r50 > 0))] = np.nan
    with np.errstate(invalid="ignore"):
        star = r50 < cfg.star_r50_factor * r50_psf
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = det_sum / (noise * np.sqrt(npix))
    mag = np.asarray(flux_to_mag(flux), dtype=np.float64).reshape(-1)
    rows = np.flatnonzero(npix > 0)
    rows = rows[np.argsort(-snr[rows], kind="stable")]
    return schema_table(
        _SOURCE_SCHEMA,
        SOURCE_COLUMNS,
        x=seg.x[rows] + 0.5,
        y=seg.y[rows] + 0.5,
        x1=box[rows, 0],
        y1=box[rows, 1],
        x2=box[rows, 2],
        y2=box[rows, 3],
        label=np.where(star, 1, 2)[rows],
        score=snr[rows],
        mag=mag[rows],
        flux=flux[rows],
        r50=r50[rows],
        npix=npix[rows],
    )


def find_sources(
    image: np.ndarray,
    *,
    noise_sigma: Mapping[str, float] | Sequence[float] | float | None,
    psf_fwhm_px: float,
    bands: Sequence[str] | None,
    config: SourceFinderConfig | None = None,
) -> Table:
    """Detect, deblend, measure and classify the sources of one image.

    Parameters
    ----------
    image : ndarray, shape (C, H, W) or (H, W)
        Sky-subtracted image in nanomaggies per pixel (or raw frames with
        ``config.background="sep"``). Non-finite pixels are masked (module docstring, step 1).
    noise_sigma : mapping of str to float, sequence of float, float, or None
        Per-pixel sky sigma of each band, nanomaggies: a ``{band: sigma}`` mapping (needs
        ``bands``), one value per plane, or one value for all planes. None estimates it from
        the image (MAD of the background-subtracted pixels).
    psf_fwhm_px : float
        PSF FWHM of the reference band, pixels (sets the filter, ``r50_psf`` and the ``r50``
        aperture).
    bands : sequence of str or None
        Band name of each plane (a single string for a 2-D image is accepted); needed to find
        the reference band of a multi-band image and to read a mapping ``noise_sigma``.
    config : SourceFinderConfig, optional
        Parameters (defaults if omitted).

    Returns
    -------
    astropy.table.Table
        One row per source, sorted by decreasing score, with the columns of
        :data:`SOURCE_COLUMNS` (units in ``table[name].unit``): ``x, y`` (centroid,
        corner-origin pixels), ``x1, y1, x2, y2`` (segment bounding box, xyxy pixels, ``x2``
        and ``y2`` exclusive), ``label`` (1 star, 2 galaxy), ``score`` (isophotal S/N in the
        detection image), ``mag`` (reference-band AB magnitude from ``flux``, NaN when the flux
        is not positive), ``flux`` (reference-band Kron flux ``FLUX_AUTO``, nanomaggies),
        ``r50`` (half-light radius of the detection image, pixels, NaN if unmeasurable) and
        ``npix`` (segment area, pixels). Empty (same columns) when nothing is found or the
        image has no noise.

    Raises
    ------
    InputError
        Bad image shape, band names or noise values; reference band missing; no finite pixel.
    ClumpdetError
        sep's pixel buffer or sub-object limit overflowed even at the raised limits.
    ConfigError
        Invalid config values.
    """
    cfg = config if config is not None else SourceFinderConfig()
    cube = _as_cube(image)
    n_planes = cube.shape[0]
    names = _band_names(bands, n_planes)
    sigma = _noise_per_band(noise_sigma, names, n_planes)
    ref_idx = _reference_index(names, n_planes, cfg.reference_band)
    try:
        fwhm = float(psf_fwhm_px)
    except (TypeError, ValueError):
        fwhm = math.nan
    if not (math.isfinite(fwhm) and fwhm > 0):
        raise InputError(None, f"psf_fwhm_px must be a positive number, got {psf_fwhm_px!r}")

    bad = ~np.isfinite(cube).all(axis=0)
    if bad.all():
        raise InputError(None, "image has no pixel that is finite in every band")
    cube[:, bad] = 0.0
    if cfg.background == "sep":
        _subtract_background(cube, bad, cfg)
    if sigma is None:
        sigma = np.array([mad_sigma(p, ignore_zeros=True) for p in cube])
        if not np.all(np.isfinite(sigma) & (sigma > 0)):
            return empty_sources()  # constant (e.g. all-zero) planes: nothing to detect

    ivar = 1.0 / sigma**2
    weights = (ivar / ivar.sum()).astype(np.float32)
    det = np.ascontiguousarray(np.tensordot(weights, cube, axes=1), dtype=np.float32)
    det[bad] = 0.0
    noise_det = float(1.0 / math.sqrt(ivar.sum()))
    ref = np.ascontiguousarray(cube[ref_idx])

    kernel = gaussian_kernel(cfg.filter_fwhm_factor * fwhm)
    unit_noise = noise_det if cfg.thresh_units == "pixel" else filtered_rms(noise_det, kernel)
    if cfg.method == "sep":
        seg = _segments_sep(det, bad, unit_noise, kernel, cfg)
    else:
        seg = _segments_photutils(det, bad, cfg.thresh * unit_noise, kernel, cfg)
    r50_ref = psf_r50(
        fwhm,
        profile=cfg.psf_profile,
        moffat_beta=cfg.psf_moffat_beta,
        rmax_fwhm=cfg.r50_rmax_fwhm,
    )
    return _measure(seg, det, ref, noise_det, r50_ref, fwhm, cfg)


# --------------------------------------------------------------------------- image sets


class _Job(NamedTuple):
    image_id: int
    path: Path
    bands: tuple[str, ...] | None
    noise_sigma: dict[str, float] | None
    psf_fwhm_px: float | None


def _estimate_one(job: _Job, *, cfg: SourceFinderConfig) -> float | JobFailure:
    """PSF FWHM of one image measured from its stars (NaN when none can be measured)."""
    from clumpdet.baselines.common import estimate_psf_fwhm
    from clumpdet.data.images import read_image

    try:
        im = read_image(job.path, bands=job.bands, nan_policy="keep")
    except InputError as exc:
        return JobFailure(str(job.path), exc.problem, input_error=True)
    kw = {"profile": cfg.psf_profile, "moffat_beta": cfg.psf_moffat_beta}
    # strict (>= 3 bright isolated stars), then relaxed (the most compact source at S/N >= 10)
    for extra in ({}, {"min_snr": 10.0, "min_stars": 1, "isolation": 0.0}):
        try:
            return estimate_psf_fwhm(im.data, **kw, **extra)  # type: ignore[arg-type]
        except InputError as exc:
            if "cannot measure the PSF" not in exc.problem:
                return JobFailure(str(job.path), exc.problem, input_error=True)
    return math.nan


def _process_one(job: _Job, *, cfg: SourceFinderConfig) -> Table | JobFailure:
    from clumpdet.data.images import read_image

    try:
        im = read_image(job.path, bands=job.bands, nan_policy="keep")  # find_sources masks
        table = find_sources(
            im.data, noise_sigma=job.noise_sigma, psf_fwhm_px=float(job.psf_fwhm_px),
            bands=im.bands, config=cfg,
        )  # fmt: skip
    except InputError as exc:
        return JobFailure(str(job.path), exc.problem, input_error=True)
    except ClumpdetError as exc:
        return JobFailure(str(job.path), str(exc), input_error=False)
    ids = schema_table(_SOURCE_SCHEMA, ["image_id"], image_id=np.full(len(table), job.image_id))
    table.add_column(ids["image_id"], index=0)
    return table


def _jobs_from_coco(truth: Path, *, from_truth: bool = False) -> list[_Job]:
    from clumpdet.data.coco import load_coco
    from clumpdet.evaluation.deblending import psf_fwhm_by_image

    doc = load_coco(truth)
    fwhm = psf_fwhm_by_image(truth) if from_truth else {}
    root = Path(doc.get("_root", truth.parent))
    jobs = []
    for rec in doc["images"]:
        iid = int(rec["id"])
        bands = rec.get("bands")
        noise = rec.get("noise_sigma") if from_truth else None
        jobs.append(
            _Job(
                image_id=iid,
                path=root / str(rec["file_name"]),
                bands=tuple(str(b) for b in bands) if bands else None,
                noise_sigma={str(k): float(v) for k, v in noise.items()} if noise else None,
                psf_fwhm_px=fwhm.get(iid),
            )
        )
    return jobs


def run_source_baseline(
    truth: str | Path,
    *,
    method: SourceMethod | None = None,
    config: SourceFinderConfig | None = None,
    workers: int = 1,
    progress: bool = True,
    calibration: Literal["image", "truth"] = "image",
) -> Table:
    """Run :func:`find_sources` on every image of a COCO set (the blended-field benchmark).

    Each image record supplies ``file_name`` (relative to the COCO file's folder) and
    ``bands``. With ``calibration="image"`` (default, as the detector must) the per-band noise
    is estimated from each image (MAD) and the PSF FWHM is measured from its stars
    (:func:`clumpdet.baselines.common.estimate_psf_fwhm`; an image with too few stars takes
    the median of the set's measurements). ``calibration="truth"`` reads the true
    ``noise_sigma`` and ``psf_fwhm_px`` (or ``psf_fwhm`` / ``pixel_scale``) from the records,
    for a diagnostic upper bound only.

    Parameters
    ----------
    truth : str or Path
        COCO ``annotations.json`` of the set.
    method : {"sep", "photutils"}, optional
        Engine; overrides ``config.method`` when given.
    config : SourceFinderConfig, optional
        Parameters (defaults if omitted).
    workers : int
        Processes (spawn, :func:`clumpdet.parallel.parallel_map`); 1 runs in this process.
    progress : bool
        Show a tqdm progress bar.
    calibration : {"image", "truth"}
        Where noise and PSF come from (see above).

    Returns
    -------
    astropy.table.Table
        Predictions of all images: ``image_id`` (int64) then the columns of
        :func:`find_sources`; images in the COCO file's order, each by decreasing score.
        :func:`clumpdet.evaluation.deblending.evaluate_sources` takes it as it is.

    Raises
    ------
    InputError
        Unreadable COCO file, a missing or unreadable image, a record without a PSF FWHM.
    ConfigError
        Bad method, config or ``workers``.
    ClumpdetError
        sep overflowed on an image (the message names it).

    Warns
    -----
    NoDetectionsWarning
        Nothing was found in any image.
    """
    cfg = config if config is not None else SourceFinderConfig()
    if method is not None:
        if method not in _METHODS:
            raise ConfigError(f"method {method!r} is not one of {list(_METHODS)}")
        cfg = dataclasses.replace(cfg, method=method)
    if int(workers) < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if calibration not in ("image", "truth"):
        raise ConfigError(f"calibration {calibration!r} is not one of ['image', 'truth']")
    truth = Path(truth)
    jobs = _jobs_from_coco(truth, from_truth=calibration == "truth")
    for j in jobs:
        if not j.path.is_file():
            raise InputError(j.path, "image file not found")
    if calibration == "image":
        est = np.asarray(
            map_images(
                functools.partial(_estimate_one, cfg=cfg),
                jobs,
                workers=min(int(workers), max(1, len(jobs))),
                desc="PSF from stars",
                progress=False,
            ),
            dtype=np.float64,
        )
        if jobs and not np.isfinite(est).any():
            raise InputError(truth, "cannot measure the PSF: too few bright isolated stars")
        fill = float(np.nanmedian(est)) if jobs else math.nan
        jobs = [
            j._replace(psf_fwhm_px=float(e) if np.isfinite(e) else fill) for j, e in zip(jobs, est)
        ]
    tables = map_images(
        functools.partial(_process_one, cfg=cfg),
        jobs,
        workers=min(int(workers), max(1, len(jobs))),
        desc=f"sources {cfg.method}",
        progress=progress,
    )
    tables = [t for t in tables if len(t)]
    if not tables:
        warnings.warn(
            f"source baseline ({cfg.method}) found no sources in {len(jobs)} image(s)",
            NoDetectionsWarning,
            stacklevel=2,
        )
        return empty_sources(with_image_id=True)
    return vstack(tables, join_type="exact", metadata_conflicts="silent")
