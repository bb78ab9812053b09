"""Classical clump finder built on ``sep`` (SExtractor) and ``photutils``.

This is the baseline every learned detector must beat. It needs no training: it models the
smooth host galaxy, subtracts it, and finds compact residual sources on the host.

Algorithm
---------
1. **Detection image.** The sum of the bands named in :attr:`ClassicalConfig.detect_bands`
   (default: all bands), non-finite pixels set to zero.
2. **Host model and residual.** ``method="residual"``: the smooth host is a running median
   (``host_model="median"``, window ``host_scale * psf_fwhm`` pixels, computed on the
   2x2-binned image for speed), a ``sep.Background`` mesh (``"sep"``, mesh ``host_scale *
   psf_fwhm``) or a Gaussian blur (``"gaussian"``, FWHM ``host_scale * psf_fwhm``); the
   residual is image minus host model. ``method="unsharp"``: the residual is image minus a
   Gaussian-blurred copy (FWHM ``unsharp_scale * psf_fwhm``).
3. **Noise.** The per-pixel noise ``rms`` of the residual is the robust MAD estimate of its
   non-zero pixels, :func:`clumpdet.noise.mad_sigma`.
4. **Sources.** ``residual``: ``sep.extract`` on the residual with a matched Gaussian filter of
   FWHM ``psf_fwhm``, ``min_area`` and deblending (``deblend_nthresh``, ``deblend_cont``).
   ``unsharp``: the residual is convolved with the same Gaussian, photutils ``detect_sources``
   finds the segments above threshold and photutils ``find_peaks`` splits them into one source
   per local maximum (``deblend_sources`` would need scikit-image); positions are flux-weighted
   centroids around each peak. In both cases ``threshold`` is in units of the noise of the
   *filtered* image, i.e. a matched-filter S/N (SExtractor and sep apply it to the unfiltered
   rms, which for a 3.5 px PSF is a ~5x higher S/N).
5. **On the host, not the nucleus.** The host is the photutils ``detect_sources`` segment of the
   detection image smoothed by a Gaussian of sigma ``psf_fwhm`` that contains the image centre
   (else the segment of largest flux), at ``host_threshold`` times the noise of that smoothed
   image. Only sources whose centre lies in the host segment are kept (``require_host``). The
   nucleus (bulge) is the flux-weighted centre of the host model, iterated in shrinking
   apertures (a bright clump or star can outshine a small bulge, so the brightest pixel is not
   used); sources within ``nucleus_radius * psf_fwhm`` of it are dropped.
6. **Photometry and S/N.** Circular-aperture flux (radius ``r = aperture_radius * psf_fwhm``)
   on the residual with ``sep.sum_circle``; ``snr = flux / (rms * sqrt(pi r^2))``. Sources with
   ``snr < min_snr`` are dropped.
7. **Score.** ``score = 1 - exp(-snr / score_snr_scale)``, a monotone map of S/N onto [0, 1),
   so a score sweep is a sweep of the finder's own S/N threshold (full precision-recall curves
   need the sweep form, :func:`clumpdet.baselines.tuning.sweep_config`). The evaluation
   threshold 0.3 sits at ``snr = 0.357 * score_snr_scale`` (7 with the default 20).
8. **Class.** 1 (clump) by default; 2 (odd clump) when the colour ``odd_colour[0] -
   odd_colour[1]`` (AB mag; aperture sums minus the mean of a local annulus ``colour_annulus *
   psf_fwhm``, which removes the host under the source) is redder than ``odd_colour_cut`` and
   ``snr >= odd_min_snr``: star-forming clumps are blue, foreground stars and background
   galaxies mostly red. Optionally (off by default: at SDSS resolution clumps are nearly
   unresolved too) a point-like source (``fwhm_eq < odd_pointlike * psf_fwhm``) brighter than
   ``odd_flux_ratio`` times the host is class 2. The colour rule needs band names.
9. **Box.** A square centred on the source with side ``box_scale * fwhm_eq`` (``box_rule="size"``;
   ``fwhm_eq = 2.355 * sigma`` from GalSim HSM adaptive moments of the residual around the
   source, for ``unsharp`` scaled up by the factor the mask shrinks a PSF-sized Gaussian;
   ``psf_fwhm`` where the moments fail) or ``box_scale * psf_fwhm`` (``box_rule="psf"``),
   clipped to ``[box_min, box_max] * psf_fwhm``. Boxes are ``xyxy`` in the COCO pixel
   convention (pixel centres at ``i + 0.5``; docs/conventions.md).

Tuning
------
Retune on *validation* data of the current simulator with
:func:`clumpdet.baselines.tuning.tune_classical` (box rule by AP50, the finder in its sweep
form: threshold down to 1.5 sigma, S/N score) -- ``tools/bench_detector.py`` does this before
every comparison, never on the test set. Noise is estimated from the image (MAD of the
residual) and the PSF FWHM is the survey's nominal value (``psf_fwhm``), never read from truth.
``box_scale = 3.4`` follows the simulator's box rule (3.4 x the PSF-convolved FWHM, scatter
0.12): on a validation set of the smooth simulator (``configs/sim/clumps_smooth.yaml``,
``--n 60 --seed 1``) AP50 is 0.96 at 3.4 against 0.71 at the old 4.0 (tuned for a 4.4x / 0.31
rule, boxes ~22 % too large). On the realistic default population (textured, crowded hosts,
clumps down to S/N ~ 5) the classical finders reach AP50 ~ 0.03-0.04 whatever the box rule:
host texture gives most of their detections (see the README's clump benchmark).
``odd_colour_cut = 0.4`` separates the smooth simulator's clumps (g-r <= 0.33) from stars
(mostly >= 0.4) and background galaxies (>= 0.9).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import sep
from astropy.table import Table
from scipy import ndimage

from clumpdet.baselines.common import (
    FWHM_PER_SIGMA,
    ColumnSpec,
    JobFailure,
    filtered_rms,
    gaussian_kernel,
    map_images,
    schema_table,
    to_coco_results,
)
from clumpdet.data.coco import write_predictions
from clumpdet.errors import ClumpdetError, ConfigError, InputError, NoDetectionsWarning
from clumpdet.noise import mad_sigma

Method = Literal["residual", "unsharp"]
_METHODS: tuple[str, ...] = ("residual", "unsharp")
_POSITIVE_FIELDS: tuple[str, ...] = (
    "psf_fwhm",
    "host_scale",
    "unsharp_scale",
    "threshold",
    "aperture_radius",
    "box_scale",
    "box_min",
    "box_max",
    "score_snr_scale",
)

#: Columns of the :func:`find_clumps` table: ``name -> (dtype, unit, description)``.
_CLUMP_SCHEMA: dict[str, ColumnSpec] = {
    "x": ColumnSpec(np.float64, "pix", "centre x (COCO pixel convention)"),
    "y": ColumnSpec(np.float64, "pix", "centre y (COCO pixel convention)"),
    "x1": ColumnSpec(np.float32, "pix", "box left"),
    "y1": ColumnSpec(np.float32, "pix", "box bottom"),
    "x2": ColumnSpec(np.float32, "pix", "box right"),
    "y2": ColumnSpec(np.float32, "pix", "box top"),
    "label": ColumnSpec(np.int64, None, "1 clump, 2 odd clump"),
    "score": ColumnSpec(np.float32, None, "1 - exp(-snr / score_snr_scale)"),
    "snr": ColumnSpec(np.float64, None, "aperture S/N on the residual"),
    "flux": ColumnSpec(np.float64, None, "aperture flux on the residual (image unit)"),
    "fwhm": ColumnSpec(np.float64, "pix", "adaptive-moment FWHM (psf_fwhm where unmeasured)"),
}
#: Column names of :func:`find_clumps` output, in order.
CLUMP_COLUMNS: tuple[str, ...] = tuple(_CLUMP_SCHEMA)


@dataclass
class ClassicalConfig:
    """Knobs of the classical clump finder (lengths in pixels unless stated).

    Defaults are tuned on simulated SDSS-like gri images (module docstring, "Tuning"). Load
    from YAML with ``clumpdet.config.load_config(ClassicalConfig, path)``; unknown keys are an
    error.

    Parameters
    ----------
    detect_bands : tuple of str
        Bands summed into the detection image; empty means all bands.
    psf_fwhm : float
        PSF FWHM in pixels (SDSS r: ~1.4" / 0.396"/px = 3.5 px). Most lengths below are in
        units of it.
    host_model : {"median", "sep", "gaussian"}
        Smooth host model for ``method="residual"``.
    host_scale : float
        Host-model scale in PSF FWHMs (median window side, sep mesh size, or Gaussian FWHM).
    unsharp_scale : float
        FWHM of the unsharp-mask blur in PSF FWHMs (``method="unsharp"``).
    threshold : float
        Detection threshold in units of the noise of the filtered residual (a matched-filter
        S/N when ``matched_filter``).
    min_area : int
        Minimum connected pixels above threshold.
    matched_filter : bool
        Filter with a Gaussian of FWHM ``psf_fwhm`` before thresholding.
    deblend_nthresh : int
        Number of deblending levels.
    deblend_cont : float
        Minimum flux fraction for a deblended branch (1.0 disables deblending).
    host_threshold : float
        Host isophote in units of the noise of the smoothed detection image.
    host_min_area : int
        Minimum pixels of the host segment.
    require_host : bool
        Keep only sources whose centre lies on the host segment.
    nucleus_radius : float
        Sources within this many PSF FWHMs of the host's centre are the nucleus, not clumps.
    aperture_radius : float
        Photometry aperture radius in PSF FWHMs.
    min_snr : float
        Drop sources with aperture S/N below this.
    box_rule : {"size", "psf"}
        Box side from the source's adaptive-moment FWHM or from the PSF alone.
    box_scale : float
        Box side = ``box_scale * fwhm_eq`` (or ``* psf_fwhm``).
    box_min, box_max : float
        Limits on the box side in PSF FWHMs.
    score_snr_scale : float
        ``score = 1 - exp(-snr / score_snr_scale)``; score 0.3 is ``snr = 0.357 * scale``.
    odd_colour : tuple of (str, str)
        Bands ``(blue, red)`` of the odd-clump colour rule.
    odd_colour_cut : float
        Sources redder than this colour (AB mag) are odd clumps (class 2).
    colour_annulus : tuple of (float, float)
        Inner and outer radius (PSF FWHMs) of the local-background annulus for colours.
    odd_min_snr : float
        Minimum S/N for the colour rule to apply.
    odd_pointlike : float
        A source with ``fwhm_eq < odd_pointlike * psf_fwhm`` is point-like (0 disables the
        point-like rule).
    odd_flux_ratio : float
        Point-like sources brighter than this fraction of the host flux are odd clumps.
    max_detections : int
        Keep at most this many (highest-score) detections per image.
    """

    detect_bands: tuple[str, ...] = ()
    psf_fwhm: float = 3.5
    host_model: Literal["median", "sep", "gaussian"] = "median"
    host_scale: float = 3.5
    unsharp_scale: float = 2.0
    threshold: float = 3.0
    min_area: int = 5
    matched_filter: bool = True
    deblend_nthresh: int = 32
    deblend_cont: float = 0.005
    host_threshold: float = 2.0
    host_min_area: int = 50
    require_host: bool = True
    nucleus_radius: float = 1.5
    aperture_radius: float = 1.0
    min_snr: float = 3.0
    box_rule: Literal["size", "psf"] = "size"
    box_scale: float = 3.4
    box_min: float = 2.0
    box_max: float = 8.0
    score_snr_scale: float = 20.0
    odd_colour: tuple[str, str] = ("g", "r")
    odd_colour_cut: float = 0.4
    colour_annulus: tuple[float, float] = (1.5, 3.0)
    odd_min_snr: float = 5.0
    odd_pointlike: float = 0.0
    odd_flux_ratio: float = 1.0
    max_detections: int = 50

    def __post_init__(self) -> None:
        for name in _POSITIVE_FIELDS:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(
                    f"ClassicalConfig.{name}: must be a positive number, got {value!r}"
                )
        if self.box_min > self.box_max:
            raise ConfigError(
                f"ClassicalConfig.box_min ({self.box_min}) exceeds box_max ({self.box_max})"
            )
        if self.min_area < 1 or self.host_min_area < 1 or self.max_detections < 1:
            raise ConfigError(
                "ClassicalConfig: min_area, host_min_area and max_detections must be >= 1"
            )
        if not 0.0 < self.deblend_cont <= 1.0 or self.deblend_nthresh < 1:
            raise ConfigError(
                "ClassicalConfig: deblend_cont must be in (0, 1] and deblend_nthresh >= 1"
            )
        if self.host_model not in ("median", "sep", "gaussian"):
            raise ConfigError(
                f"ClassicalConfig.host_model: {self.host_model!r} is not one of "
                "['median', 'sep', 'gaussian']"
            )
        if self.box_rule not in ("size", "psf"):
            raise ConfigError(
                f"ClassicalConfig.box_rule: {self.box_rule!r} is not one of ['size', 'psf']"
            )
        inner, outer = self.colour_annulus
        if not (self.aperture_radius <= inner < outer):
            raise ConfigError(
                "ClassicalConfig.colour_annulus: need aperture_radius <= inner < outer, got "
                f"{list(self.colour_annulus)} with aperture_radius {self.aperture_radius}"
            )
        if len(self.odd_colour) != 2:
            raise ConfigError(
                f"ClassicalConfig.odd_colour: expected 2 bands, got {list(self.odd_colour)}"
            )


class _Sources(NamedTuple):
    """Raw sources in 0-based pixel-centre coordinates (sep / photutils / astropy)."""

    x: np.ndarray
    y: np.ndarray


# --------------------------------------------------------------------------- helpers


def _host_model(img: np.ndarray, cfg: ClassicalConfig) -> np.ndarray:
    """Smooth host model of a 2-D image (same shape, float32)."""
    scale = cfg.host_scale * cfg.psf_fwhm
    if cfg.host_model == "median":
        return _binned_median(img, scale)
    if cfg.host_model == "gaussian":
        return ndimage.gaussian_filter(img, sigma=scale / FWHM_PER_SIGMA, mode="reflect")
    mesh = max(4, round(scale))
    bkg = sep.Background(np.ascontiguousarray(img), bw=mesh, bh=mesh, fw=3, fh=3)
    return bkg.back().astype(np.float32)


def _binned_median(img: np.ndarray, window: float) -> np.ndarray:
    """Running median over ``window`` pixels, computed on the 2x2-binned image and upsampled.

    Binning makes it ~5x faster than a full-resolution median with the same result on smooth
    hosts (windows under 6 px are done at full resolution).
    """
    if window < 6:
        return ndimage.median_filter(img, size=max(3, round(window) | 1), mode="reflect")
    h, w = img.shape
    hb, wb = h // 2, w // 2
    binned = img[: 2 * hb, : 2 * wb].reshape(hb, 2, wb, 2).mean(axis=(1, 3))
    med = ndimage.median_filter(binned, size=max(3, round(window / 2) | 1), mode="reflect")
    # binned pixel k covers full-resolution pixels 2k, 2k + 1: its centre is at 2k + 0.5
    yy = (np.arange(h, dtype=np.float64) - 0.5) / 2.0
    xx = (np.arange(w, dtype=np.float64) - 0.5) / 2.0
    coords = np.meshgrid(yy, xx, indexing="ij")
    return ndimage.map_coordinates(med, coords, order=1, mode="nearest").astype(np.float32)


def _residual(img: np.ndarray, method: str, cfg: ClassicalConfig) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(residual, host_model)`` of a 2-D image for the chosen method."""
    if method == "residual":
        host = _host_model(img, cfg)
    else:
        sigma = cfg.unsharp_scale * cfg.psf_fwhm / FWHM_PER_SIGMA
        host = ndimage.gaussian_filter(img, sigma=sigma, mode="reflect")
    res = np.ascontiguousarray(img - host, dtype=np.float32)
    return res, host


def _as_cube(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] < 8 or arr.shape[2] < 8:
        raise InputError(
            None, f"expected an image of shape (C, H, W) with H, W >= 8, got {arr.shape}"
        )
    arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.ascontiguousarray(arr)


def _detection_image(
    cube: np.ndarray, bands: tuple[str, ...] | None, cfg: ClassicalConfig
) -> np.ndarray:
    if not cfg.detect_bands:
        return np.ascontiguousarray(cube.sum(axis=0, dtype=np.float32))
    if bands is None:
        if cube.shape[0] == 1:
            return np.ascontiguousarray(cube[0])
        raise ConfigError(
            f"ClassicalConfig.detect_bands={list(cfg.detect_bands)} needs band names; "
            "pass bands= (or leave detect_bands empty to sum all bands)"
        )
    missing = [b for b in cfg.detect_bands if b not in bands]
    if missing:
        raise ConfigError(
            f"ClassicalConfig.detect_bands: band(s) {missing} not in the image bands {list(bands)}"
        )
    idx = [bands.index(b) for b in cfg.detect_bands]
    return np.ascontiguousarray(cube[idx].sum(axis=0, dtype=np.float32))


def _host_segment(det: np.ndarray, rms: float, cfg: ClassicalConfig) -> np.ndarray | None:
    """Boolean mask of the host galaxy (the central segment of the smoothed image), or None."""
    from photutils.segmentation import detect_sources

    sigma = cfg.psf_fwhm
    smooth = ndimage.gaussian_filter(det, sigma=sigma, mode="reflect")
    # white-noise rms of an image smoothed by a normalised Gaussian of width sigma
    noise = rms / (2.0 * math.sqrt(math.pi) * sigma)
    segm = detect_sources(smooth, cfg.host_threshold * noise, n_pixels=cfg.host_min_area)
    if segm is None:
        return None
    data = segm.data
    h, w = data.shape
    label = int(data[h // 2, w // 2])
    if label == 0:
        sums = ndimage.sum_labels(smooth, data, index=segm.labels)
        label = int(segm.labels[int(np.argmax(sums))])
    return data == label


def _host_centre(host: np.ndarray, mask: np.ndarray, cfg: ClassicalConfig) -> tuple[float, float]:
    """Centre of the host (its nucleus), 0-based pixel coordinates.

    Flux-weighted centroid of the (positive) host model over the host segment, iterated in
    apertures shrinking from 16 to 2 PSF FWHM. Bright clumps and stars can be brighter than a
    small bulge, so the brightest pixel is not a reliable nucleus; the centroid of the smooth
    model is (on simulated SDSS-like hosts: median error 0.2 px, max ~3 px).
    """
    h, w = host.shape
    yy, xx = np.mgrid[0:h, 0:w]
    wgt = np.where(mask, np.clip(host, 0.0, None), 0.0)
    tot = wgt.sum()
    if not tot > 0:
        return (w - 1) / 2.0, (h - 1) / 2.0
    cx, cy = float((wgt * xx).sum() / tot), float((wgt * yy).sum() / tot)
    for radius in (16.0, 8.0, 4.0, 2.0):
        r = radius * cfg.psf_fwhm
        sel = np.where((xx - cx) ** 2 + (yy - cy) ** 2 <= r * r, wgt, 0.0)
        tot = sel.sum()
        if not tot > 0:
            break
        cx, cy = float((sel * xx).sum() / tot), float((sel * yy).sum() / tot)
    return cx, cy


def _extract_sep(res: np.ndarray, rms: float, cfg: ClassicalConfig) -> _Sources:
    kernel = gaussian_kernel(cfg.psf_fwhm) if cfg.matched_filter else None
    try:
        objs = sep.extract(
            res,
            cfg.threshold,
            err=filtered_rms(rms, kernel),
            minarea=cfg.min_area,
            filter_kernel=kernel,
            filter_type="matched",
            deblend_nthresh=cfg.deblend_nthresh,
            deblend_cont=cfg.deblend_cont,
        )
    except Exception as exc:  # sep raises plain Exception on pixel-stack overflow
        if "pixel buffer full" in str(exc) or "object deblending overflow" in str(exc):
            return _Sources(np.zeros(0), np.zeros(0))
        raise
    return _Sources(objs["x"].astype(np.float64), objs["y"].astype(np.float64))


def _extract_photutils(res: np.ndarray, rms: float, cfg: ClassicalConfig) -> _Sources:
    """Segments (photutils ``detect_sources``) split into one source per ``find_peaks`` peak.

    Peak-based splitting stands in for ``deblend_sources``, which needs scikit-image; with
    ``deblend_cont == 1`` each segment is one source at its brightest peak.
    """
    from photutils.detection import find_peaks
    from photutils.segmentation import detect_sources

    kernel = gaussian_kernel(cfg.psf_fwhm) if cfg.matched_filter else None
    conv = ndimage.convolve(res, kernel, mode="reflect") if kernel is not None else res
    thr = cfg.threshold * filtered_rms(rms, kernel)
    empty = _Sources(np.zeros(0), np.zeros(0))
    segm = detect_sources(conv, thr, n_pixels=cfg.min_area)
    if segm is None:
        return empty
    box = max(3, round(cfg.psf_fwhm) | 1)
    peaks = find_peaks(conv, thr, box_size=box, mask=segm.data == 0)
    if peaks is None or len(peaks) == 0:
        return empty
    cols = peaks.colnames
    px = np.asarray(peaks["x_peak" if "x_peak" in cols else cols[1]], dtype=int)
    py = np.asarray(peaks["y_peak" if "y_peak" in cols else cols[2]], dtype=int)
    lab = segm.data[py, px]
    order = np.argsort(-conv[py, px], kind="stable")
    if cfg.deblend_cont >= 1.0:  # no deblending: the brightest peak of each segment
        _, first = np.unique(lab[order], return_index=True)
        order = order[np.sort(first)]
    px, py = px[order], py[order]
    x, y = _local_centroid(conv, px, py, radius=cfg.psf_fwhm)
    return _Sources(x, y)


def _local_centroid(
    img: np.ndarray, px: np.ndarray, py: np.ndarray, *, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centroid of the positive flux within ``radius`` of each integer peak ``(px, py)``."""
    h, w = img.shape
    r = math.ceil(radius)
    xs, ys = px.astype(np.float64), py.astype(np.float64)
    for k, (x0, y0) in enumerate(zip(px.tolist(), py.tolist())):
        x1, x2, y1, y2 = max(0, x0 - r), min(w, x0 + r + 1), max(0, y0 - r), min(h, y0 + r + 1)
        yy, xx = np.mgrid[y1:y2, x1:x2]
        wgt = np.clip(img[y1:y2, x1:x2], 0.0, None).astype(np.float64)
        wgt[(xx - x0) ** 2 + (yy - y0) ** 2 > radius**2] = 0.0
        tot = wgt.sum()
        if tot > 0:
            xs[k], ys[k] = (wgt * xx).sum() / tot, (wgt * yy).sum() / tot
    return xs, ys


def _adaptive_fwhm(
    res: np.ndarray, x: np.ndarray, y: np.ndarray, cfg: ClassicalConfig
) -> np.ndarray:
    """Gaussian-equivalent FWHM (pixels) of each source from adaptive moments (GalSim HSM).

    Measured on a ``(2 r + 1)``-pixel stamp of the residual, ``r = 2.5 psf_fwhm``; NaN where
    the moments do not converge.
    """
    import galsim

    h, w = res.shape
    r = max(4, math.ceil(2.5 * cfg.psf_fwhm))
    guess = cfg.psf_fwhm / FWHM_PER_SIGMA
    out = np.full(x.size, np.nan)
    for k, (x0, y0) in enumerate(zip(x.tolist(), y.tolist())):
        xi, yi = round(x0), round(y0)
        stamp = res[max(0, yi - r) : min(h, yi + r + 1), max(0, xi - r) : min(w, xi + r + 1)]
        if min(stamp.shape) < 5:
            continue
        try:
            mom = galsim.hsm.FindAdaptiveMom(
                galsim.Image(np.ascontiguousarray(stamp, dtype=np.float64)),
                guess_sig=guess,
                strict=False,
            )
        except (galsim.GalSimError, RuntimeError, ValueError):
            continue
        if mom.moments_status == 0 and mom.moments_sigma > 0:
            out[k] = FWHM_PER_SIGMA * mom.moments_sigma
    return out


@functools.lru_cache(maxsize=32)
def _unsharp_shrinkage(psf_fwhm: float, unsharp_scale: float) -> float:
    """True / measured adaptive-moment FWHM of a Gaussian PSF source after the unsharp mask."""
    import galsim

    sigma = psf_fwhm / FWHM_PER_SIGMA
    half = math.ceil(6 * sigma * max(1.0, unsharp_scale))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    src = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2)
    masked = src - ndimage.gaussian_filter(src, sigma=unsharp_scale * sigma, mode="constant")
    try:
        mom = galsim.hsm.FindAdaptiveMom(galsim.Image(masked), guess_sig=sigma)
    except (galsim.GalSimError, RuntimeError):
        return 1.0
    return float(sigma / mom.moments_sigma)


def _aperture_flux(
    img: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    r: float,
    bkgann: tuple[float, float] | None = None,
) -> np.ndarray:
    """Circular-aperture sums at 0-based ``(x, y)``, optionally minus a local annulus mean."""
    flux, _, _ = sep.sum_circle(
        np.ascontiguousarray(img, dtype=np.float32), x, y, r, subpix=5, bkgann=bkgann
    )
    return np.asarray(flux, dtype=np.float64)


def _aperture_colour(
    blue: np.ndarray, red: np.ndarray, x: np.ndarray, y: np.ndarray, cfg: ClassicalConfig
) -> np.ndarray:
    """``blue - red`` colour (AB mag) of each source; NaN where the red flux is not positive.

    Fluxes are aperture sums (radius ``aperture_radius * psf_fwhm``) minus the mean of a local
    annulus (``colour_annulus * psf_fwhm``), which removes the host under the clump.
    """
    r_ap = cfg.aperture_radius * cfg.psf_fwhm
    ann = (cfg.colour_annulus[0] * cfg.psf_fwhm, cfg.colour_annulus[1] * cfg.psf_fwhm)
    fb = _aperture_flux(blue, x, y, r_ap, ann)
    fr = _aperture_flux(red, x, y, r_ap, ann)
    ratio = np.where(fb > 0, fb, 1e-30) / np.where(fr > 0, fr, np.nan)
    with np.errstate(invalid="ignore"):
        return -2.5 * np.log10(ratio)


# --------------------------------------------------------------------------- public API


def find_clumps(
    image: np.ndarray,
    *,
    method: Method = "residual",
    config: ClassicalConfig | None = None,
    bands: Sequence[str] | None = None,
) -> Table:
    """Find clumps in one galaxy image with the classical host-subtraction finder.

    Parameters
    ----------
    image : ndarray, shape (C, H, W) or (H, W)
        Image in physical units (e.g. nanomaggies per pixel); non-finite pixels count as 0.
    method : {"residual", "unsharp"}
        Host model: smooth-host subtraction + ``sep.extract``, or unsharp mask + photutils
        segmentation and deblending (see the module docstring).
    config : ClassicalConfig, optional
        Parameters; defaults are tuned on simulated SDSS-like gri images.
    bands : sequence of str, optional
        Band name of each plane (needed by ``detect_bands`` and the colour rule).

    Returns
    -------
    astropy.table.Table
        One row per clump (at most ``max_detections``), sorted by decreasing score, with the
        columns of :data:`CLUMP_COLUMNS`: ``x, y`` (float64, pix; centre, COCO pixel
        convention), ``x1, y1, x2, y2`` (float32, pix; box xyxy, clipped to the image),
        ``label`` (int64; 1 clump, 2 odd clump), ``score`` (float32 in [0, 1)), ``snr``
        (float64; aperture S/N on the residual), ``flux`` (float64; aperture flux on the
        residual, in the unit of ``image``) and ``fwhm`` (float64, pix; adaptive-moment FWHM,
        ``psf_fwhm`` where unmeasured). Zero rows (same columns) when nothing is found.
        :func:`~clumpdet.baselines.common.to_coco_results` turns it into COCO results.

    Raises
    ------
    ConfigError
        Unknown method, or ``detect_bands`` not available in ``bands``.
    InputError
        ``image`` is not 2-D or 3-D, or ``bands`` does not match its number of planes.
    """
    cfg = config if config is not None else ClassicalConfig()
    if method not in _METHODS:
        raise ConfigError(f"method {method!r} is not one of {list(_METHODS)}")
    cube = _as_cube(image)
    band_names: tuple[str, ...] | None = None
    if bands is not None:
        band_names = tuple(str(b) for b in bands)
        if len(band_names) != cube.shape[0]:
            raise InputError(
                None, f"{len(band_names)} band names for an image with {cube.shape[0]} planes"
            )
    det = _detection_image(cube, band_names, cfg)
    res, host = _residual(det, method, cfg)
    rms = mad_sigma(res, ignore_zeros=True)
    if not rms > 0:
        return schema_table(_CLUMP_SCHEMA)
    src = _extract_sep(res, rms, cfg) if method == "residual" else _extract_photutils(res, rms, cfg)
    if src.x.size == 0:
        return schema_table(_CLUMP_SCHEMA)
    h, w = det.shape
    keep = np.ones(src.x.size, dtype=bool)
    xi = np.clip(np.rint(src.x).astype(int), 0, w - 1)
    yi = np.clip(np.rint(src.y).astype(int), 0, h - 1)
    host_mask = _host_segment(det, rms, cfg)
    host_flux = float("nan")
    if host_mask is not None:
        host_flux = float(det[host_mask].sum())
        if cfg.require_host:
            keep &= host_mask[yi, xi]
        nx, ny = _host_centre(host, host_mask, cfg)
        dist = np.hypot(src.x - nx, src.y - ny)
        keep &= dist > cfg.nucleus_radius * cfg.psf_fwhm
    elif cfg.require_host:
        return schema_table(_CLUMP_SCHEMA)
    x, y = src.x[keep], src.y[keep]
    if x.size == 0:
        return schema_table(_CLUMP_SCHEMA)

    r_ap = cfg.aperture_radius * cfg.psf_fwhm
    flux = _aperture_flux(res, x, y, r_ap)
    snr = flux / (rms * math.sqrt(math.pi) * r_ap)
    ok = snr >= cfg.min_snr
    x, y, flux, snr = x[ok], y[ok], flux[ok], snr[ok]
    fwhm = _adaptive_fwhm(res, x, y, cfg)
    if method == "unsharp":  # the mask removes the wings: undo the shrinkage of a PSF source
        fwhm = fwhm * _unsharp_shrinkage(cfg.psf_fwhm, cfg.unsharp_scale)
    fwhm = np.where(np.isfinite(fwhm), fwhm, cfg.psf_fwhm)

    labels = np.ones(x.size, dtype=np.int64)
    blue, red = cfg.odd_colour
    if band_names is not None and blue in band_names and red in band_names and x.size:
        colour = _aperture_colour(
            cube[band_names.index(blue)], cube[band_names.index(red)], x, y, cfg
        )
        with np.errstate(invalid="ignore"):
            labels[(colour > cfg.odd_colour_cut) & (snr >= cfg.odd_min_snr)] = 2
    if math.isfinite(host_flux) and host_flux > 0:
        bright = (fwhm < cfg.odd_pointlike * cfg.psf_fwhm) & (flux > cfg.odd_flux_ratio * host_flux)
        labels[bright] = 2

    size = cfg.box_scale * (fwhm if cfg.box_rule == "size" else np.full_like(x, cfg.psf_fwhm))
    side = np.clip(size, cfg.box_min * cfg.psf_fwhm, cfg.box_max * cfg.psf_fwhm)
    cx, cy = x + 0.5, y + 0.5  # sep/photutils pixel centres -> COCO convention
    boxes = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, float(w))
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, float(h))
    scores = 1.0 - np.exp(-np.clip(snr, 0.0, None) / cfg.score_snr_scale)
    order = np.argsort(-scores, kind="stable")[: cfg.max_detections]
    return schema_table(
        _CLUMP_SCHEMA,
        x=cx[order],
        y=cy[order],
        x1=boxes[order, 0],
        y1=boxes[order, 1],
        x2=boxes[order, 2],
        y2=boxes[order, 3],
        label=labels[order],
        score=scores[order],
        snr=snr[order],
        flux=flux[order],
        fwhm=fwhm[order],
    )


# --------------------------------------------------------------------------- image sets


def _read_image(path: Path) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Read ``(C, H, W)`` float32 pixels and band names (None when the file names none)."""
    from clumpdet.data.images import read_image

    try:
        im = read_image(path, nan_policy="zero")
    except ClumpdetError:
        raise
    except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise InputError(path, f"not a readable image ({type(exc).__name__}: {exc})") from None
    bands = tuple(str(b) for b in im.bands) if im.band_names_known else None
    return np.ascontiguousarray(im.data, dtype=np.float32), bands


def _jobs_from_truth(truth: Path) -> list[tuple[int, Path]]:
    from clumpdet.data.coco import load_coco

    doc = load_coco(truth)
    root = Path(doc.get("_root", truth.parent))
    return [(int(rec["id"]), root / str(rec["file_name"])) for rec in doc["images"]]


def _process_one(
    job: tuple[int, Path], *, method: str, cfg: ClassicalConfig
) -> list[dict[str, Any]] | JobFailure:
    """COCO results of one image; every project error is reported as an input error."""
    image_id, path = job
    try:
        data, bands = _read_image(path)
        table = find_clumps(data, method=method, config=cfg, bands=bands)  # type: ignore[arg-type]
    except InputError as exc:
        return JobFailure(str(path), exc.problem, input_error=True)
    except ClumpdetError as exc:
        return JobFailure(str(path), str(exc), input_error=True)
    return to_coco_results(table, image_id=image_id)


def run_classical_baseline(
    *,
    truth: str | Path | None = None,
    images: Sequence[str | Path] | None = None,
    out: str | Path,
    method: Method = "residual",
    config: ClassicalConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Run :func:`find_clumps` over an image set and write COCO results JSON.

    Parameters
    ----------
    truth : str or Path, optional
        COCO annotations file listing the images (``file_name`` relative to its directory);
        image ids come from the file.
    images : sequence of str or Path, optional
        Image files instead of ``truth``; their image ids are ``0 .. n-1`` in order.
    out : str or Path
        Output COCO results JSON: a list of ``{image_id, category_id, bbox [x, y, w, h],
        score}`` (pixels, :func:`~clumpdet.baselines.common.to_coco_results`), written
        atomically by :func:`clumpdet.data.coco.write_predictions`.
    method : {"residual", "unsharp"}
        See :func:`find_clumps`.
    config : ClassicalConfig, optional
        Finder parameters (defaults if omitted).
    workers : int, optional
        Worker processes (spawn, :func:`clumpdet.parallel.parallel_map`); default all cores
        (capped by the number of images). 1 runs serially.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ConfigError
        Not exactly one of ``truth`` / ``images`` given, or a bad method / config.
    InputError
        A missing or unreadable image or annotations file (nothing is written).

    Warns
    -----
    NoDetectionsWarning
        Nothing was found in any image.
    """
    if (truth is None) == (images is None):
        raise ConfigError(
            "give exactly one of truth (a COCO annotations file) or images (image files)"
        )
    if method not in _METHODS:
        raise ConfigError(f"method {method!r} is not one of {list(_METHODS)}")
    cfg = config if config is not None else ClassicalConfig()
    if truth is not None:
        jobs = _jobs_from_truth(Path(truth))
    else:
        jobs = [(i, Path(p)) for i, p in enumerate(images or [])]
        if not jobs:
            raise ConfigError("images: no image files given")
    for _, p in jobs:
        if not p.is_file():
            raise InputError(p, "image file not found")

    n_workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if n_workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    per_image = map_images(
        functools.partial(_process_one, method=method, cfg=cfg),
        jobs,
        workers=min(n_workers, len(jobs)),
        desc=f"classical {method}",
        progress=progress,
    )
    results = [r for rows in per_image for r in rows]
    if not results:
        warnings.warn(
            f"classical baseline ({method}) found no clumps in {len(jobs)} image(s)",
            NoDetectionsWarning,
            stacklevel=2,
        )
    return write_predictions(out, results)
