"""Clump and host photometry for clump catalogues (forced, host-subtracted, with errors).

What is measured, per image and per band (every band at the same positions: forced photometry)
--------------------------------------------------------------------------------------------
Clump flux (``flux_<band>``)
    Total flux of the clump with the local host light removed. A circular aperture of radius
    ``aperture_fwhm * FWHM_eff`` sits at the box centre; the host light under it comes from an
    annulus (``annulus_fwhm`` x FWHM_eff, other clumps masked): a sigma-clipped quadratic surface
    fitted to the annulus pixels, integrated over the aperture (``background="median"``: the
    sigma-clipped median instead). What the aperture keeps of a clump's light, less the part of
    its wings that the annulus fit absorbs, comes from a clump model: the PSF (Moffat,
    ``psf_beta``, by default the header's ``PSFBETA``, else 2.5; FWHM from the header or
    ``psf_fwhm``) convolved with a Gaussian of intrinsic FWHM ``sqrt(FWHM_eff^2 - FWHM_psf^2)``
    and the pixel. Crowded clumps are solved together: each aperture-minus-background sum is a
    linear function of every clump's flux (its own light and the neighbours' light in the
    aperture and the annulus, from the same model), and the fluxes solve that small linear
    system (``FLAG_BLENDED`` marks clumps whose neighbours contribute > 10 %). Isolated clumps
    reduce to the usual aperture correction.
    ``FWHM_eff`` (r-like reference band) is the box side over ``box_fwhm_multiple`` (3.4 for the
    simulator's truth-box rule, which detectors trained on it reproduce), never below the PSF.
    The flux is therefore the **PSF-convolved total flux** of the clump, the simulator's truth
    definition (``annotations.json`` ``flux``).
Host flux (``host_flux_<band>``)
    Total flux of the **whole galaxy, clumps included**: the host is the photutils segment
    (reference band, smoothed by ~1 PSF, ``host_nsigma`` x noise) that contains the galaxy centre
    (the frame centre of a cutout, or ``galaxy_centre``), deblended with
    :func:`photutils.segmentation.deblend_sources`; deblended pieces that hold the centre or a
    detection are the galaxy, the others are neighbours and are masked. The flux is the sum of
    mean surface brightness x full area over elliptical annuli (geometry from the segment's
    moments, :class:`photutils.segmentation.SourceCatalog`), so light the frame edge or a masked
    neighbour hides is filled in from the rest of the annulus, out to ``host_extent`` x the
    segment's semimajor sigma, plus an exponential tail fitted to the outer annuli. This matches
    a total (model-like) galaxy magnitude, as the published Clump Scout ratios use.
Flux ratio (``flux_ratio_<band>``)
    clump / host per band; ``flux_ratio`` is the reference band's, ``flux_ratio_cut`` the cut
    band's (``u`` where present, else the bluest band, i.e. the first), and
    ``flux_ratio_ge_<P>pct`` flags ``flux_ratio_cut >= P / 100`` for each cut (3 and 8 %, as
    Popp et al. 2024).
Errors (``*_err_<band>``)
    From a per-pixel variance map: sky noise (``NOISE_<B>`` header card, else the MAD of the
    pixels outside every segment) plus Poisson noise of the light when the gain (electrons per
    image unit, ``gain`` or a ``GAIN`` card) is known, plus, for clumps, the error of the annulus
    median. Without a gain the errors leave out the source shot noise.

Truth conventions of the simulator (``clumpdet simulate clumps``)
------------------------------------------------------------------
``flux`` per annotation is the clump's PSF-convolved total flux (nanomaggies); ``flux_ratio`` is
the clump's r flux over the host's disk + bulge r flux *excluding* the labelled objects. The
whole-galaxy flux that ``host_flux`` estimates is therefore ``flux_r / flux_ratio`` plus the sum
of every labelled object's flux in that image (tools/bench_photometry.py does exactly this).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from clumpdet.noise import mad_sigma

#: Bits of the ``phot_flag`` column.
FLAG_EDGE = 1  #: the clump aperture is cut by the frame edge
FLAG_ANNULUS = 2  #: fewer than 10 usable annulus pixels; local background set to 0
FLAG_NO_HOST = 4  #: no host segment at the galaxy centre; host columns NaN
FLAG_HOST_EDGE = 8  #: more than half of the host's outermost measured annulus is outside the frame
FLAG_BLENDED = 16  #: neighbouring clumps put > 10 % of this clump's light into its aperture/annulus


@dataclasses.dataclass(frozen=True)
class PhotometryConfig:
    """Settings of :func:`measure_photometry`.

    Attributes
    ----------
    aperture_fwhm : float
        Clump aperture radius, in units of FWHM_eff.
    faint_aperture_fwhm : float or None
        Aperture radius (units of FWHM_eff) of clumps whose reference-band S/N in the
        ``aperture_fwhm`` aperture is below ``faint_snr``: a smaller aperture has less sky and
        host noise and picks up fewer unlabelled knots, at the cost of a larger, more
        size-dependent aperture correction (which only bright clumps can afford to avoid).
        None: ``aperture_fwhm`` for all.
    faint_snr : float
        S/N below which ``faint_aperture_fwhm`` is used.
    size_scatter : float
        Log-scatter of the clump's true FWHM_eff about the box's (0.12: the simulator's box
        rule, ``box.scatter``); its effect on the aperture correction is added to the flux
        errors (0: left out).
    faint_weighting : {"aperture", "model"}
        Pixel weights of the faint clumps' measurement: a plain aperture, or the clump model
        over the pixel variance inside ``faint_aperture_fwhm`` (a matched filter, as PSF
        photometry: the least noisy linear estimate when the model is right).
    annulus_fwhm : (float, float)
        Inner and outer radius of the local-background annulus, units of FWHM_eff.
    box_fwhm_multiple : float
        Box side / FWHM_eff of the detector's boxes (3.4: the simulator's truth-box rule).
    psf_fwhm : float or None
        PSF FWHM in pixels for every band; default from the header (``PSFFWHM<B>`` or ``PSFFWHM``
        in arcsec, over ``PIXSCALE``), else the clump is treated as unresolved (FWHM_eff).
    psf_beta : float, None or "header"
        Moffat beta of the PSF model for the aperture correction; None: Gaussian PSF.
        ``"header"`` (default): the image's ``PSFBETA`` card (``PSFPROF`` = ``gaussian``: a
        Gaussian; ``kolmogorov``: beta 4.765, its Moffat equivalent), else
        :data:`DEFAULT_PSF_BETA` (2.5, the power-law wings of ground-based seeing, as SDSS).
        The wings matter: a clump model with beta 3.5 on a beta-2.5 PSF underestimates clump
        fluxes by ~10 % in a 1-FWHM aperture.
    gain : float or dict or None
        Electrons per image unit (per band with a dict); default a ``GAIN`` header card, else no
        Poisson term in the errors.
    ratio_cuts : tuple of float
        Flux-ratio cuts flagged (fractions; 0.03 and 0.08 as Popp et al. 2024).
    cut_band : str or None
        Band of the cut flags; default ``u`` if present, else the first (bluest) band.
    host_nsigma : float
        Host segmentation threshold, noise sigmas of the smoothed reference band.
    host_npixels : int
        Minimum pixels of a segment.
    host_smooth_fwhm : float
        FWHM (px) of the Gaussian smoothing before segmentation.
    deblend : bool
        Deblend the host segment to mask neighbours.
    deblend_contrast : float
        photutils ``contrast`` of the deblending (fraction of the segment flux a piece needs).
    deblend_nlevels : int
        photutils ``n_levels``.
    deblend_bin : int
        The deblending runs on the smoothed image binned ``deblend_bin`` x ``deblend_bin`` (fast;
        neighbours are extended), and its labels are mapped back to full resolution.
    host_extent : float
        Outer semimajor axis of the host integration, in units of the segment's semimajor sigma.
    neighbour_snr : float
        Other segments are masked as neighbours only when their flux S/N (reference band) is
        at least this; fainter ones are noise peaks on the host's outskirts and are kept.
    background : {"quadratic", "median"}
        Local host-light estimator from the annulus (:func:`_local_background`).
    host_model : {"ellipse", "none"}
        ``"ellipse"`` (default): before the clump photometry, subtract a smooth model of the host
        -- the median surface brightness in elliptical annuli of the host's geometry, per band
        (:func:`elliptical_host_model`) -- so that the annulus only has to remove what the model
        misses (arms, bars, a companion); it follows the steep inner profile, bulge and edge-on
        ridge that a quadratic surface over the annulus cannot. ``"none"``: the annulus alone.
    host_model_mask_fwhm : float
        Clump apertures of this radius (units of FWHM_eff) are left out of the host model.
    galaxy_centre : (float, float) or None
        Galaxy centre ``(x, y)`` in pixels (docs/conventions.md); default the frame centre.
    """

    aperture_fwhm: float = 1.0
    faint_aperture_fwhm: float | None = 0.7
    faint_snr: float = 20.0
    faint_weighting: str = "aperture"
    size_scatter: float = 0.12
    annulus_fwhm: tuple[float, float] = (2.0, 4.5)
    box_fwhm_multiple: float = 3.4
    psf_fwhm: float | None = None
    psf_beta: float | str | None = "header"
    gain: float | Mapping[str, float] | None = None
    ratio_cuts: tuple[float, ...] = (0.03, 0.08)
    cut_band: str | None = None
    host_nsigma: float = 2.0
    host_npixels: int = 30
    host_smooth_fwhm: float = 4.0
    deblend: bool = True
    deblend_contrast: float = 0.01
    deblend_nlevels: int = 16
    deblend_bin: int = 4
    host_extent: float = 8.0
    neighbour_snr: float = 10.0
    background: str = "quadratic"
    host_model: str = "ellipse"
    host_model_mask_fwhm: float = 1.5
    galaxy_centre: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        r_in, r_out = self.annulus_fwhm
        fa = self.faint_aperture_fwhm
        if fa is not None and not 0 < fa <= r_in:
            raise ValueError(f"need 0 < faint_aperture_fwhm <= annulus inner, got {fa}")
        if not 0 < self.aperture_fwhm <= r_in < r_out:
            raise ValueError(
                f"need 0 < aperture_fwhm <= annulus inner < outer, got {self.aperture_fwhm}, "
                f"{self.annulus_fwhm}"
            )
        if self.faint_weighting not in ("aperture", "model"):
            raise ValueError(
                f"faint_weighting must be 'aperture' or 'model', got {self.faint_weighting!r}"
            )
        if self.host_model not in ("ellipse", "none"):
            raise ValueError(f"host_model must be 'ellipse' or 'none', got {self.host_model!r}")
        if self.background not in ("quadratic", "plane", "median"):
            raise ValueError(
                f"background must be 'quadratic', 'plane' or 'median', got {self.background!r}"
            )
        if isinstance(self.psf_beta, str) and self.psf_beta != "header":
            raise ValueError(f"psf_beta must be a number, None or 'header', got {self.psf_beta!r}")
        if any(not 0 < c < 1 for c in self.ratio_cuts):
            raise ValueError(f"ratio_cuts must be fractions in (0, 1), got {self.ratio_cuts}")


def cut_column(cut: float) -> str:
    """Column name of a ratio-cut flag: ``flux_ratio_ge_3pct`` for 0.03, ``..._2p5pct``."""
    pct = f"{100 * cut:g}".replace(".", "p")
    return f"flux_ratio_ge_{pct}pct"


def cut_band_of(bands: Sequence[str], cut_band: str | None = None) -> str:
    """The band of the ratio-cut flags: ``cut_band``, else ``u`` if present, else the first."""
    if cut_band is not None:
        if cut_band not in bands:
            raise ValueError(f"cut band {cut_band!r} not in {list(bands)}")
        return cut_band
    return "u" if "u" in bands else bands[0]


def photometry_columns(bands: Sequence[str], config: PhotometryConfig) -> list[tuple[str, str]]:
    """``(name, dtype)`` of the photometry columns, in catalogue order (same for every image)."""
    cols = [("host_segment", "i8"), ("fwhm_eff", "f8"), ("aperture_radius", "f8")]
    for b in bands:
        cols += [
            (f"flux_{b}", "f8"),
            (f"flux_err_{b}", "f8"),
            (f"host_flux_{b}", "f8"),
            (f"host_flux_err_{b}", "f8"),
            (f"flux_ratio_{b}", "f8"),
            (f"flux_ratio_err_{b}", "f8"),
        ]
    cols += [("flux_ratio", "f8"), ("flux_ratio_cut", "f8")]
    cols += [(cut_column(c), "bool") for c in config.ratio_cuts]
    cols += [("phot_flag", "i8")]
    return cols


# ----------------------------------------------------------------------------- clump model


#: FWHM^2 (px^2) of the Gaussian that stands in for the pixel response (sigma^2 = 1/12 per axis).
_PIXEL_FWHM2 = 8 * math.log(2) / 12


@functools.lru_cache(maxsize=256)
def _model_unit(t: float, beta: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Unit-flux image of a PSF of FWHM 1 convolved with a Gaussian of FWHM ``t``.

    Returns ``(r, img, step)``: radius of each sample (units of the PSF FWHM), the sampled
    surface brightness per unit area, both flattened, and the sampling step.
    """
    step = 0.1  # samples per PSF FWHM: 10
    half = 6.0 * math.sqrt(1.0 + t * t) + 2.0
    n = 2 * math.ceil(half / step)
    ax = (np.arange(n) - n / 2 + 0.5) * step
    r2 = ax[None, :] ** 2 + ax[:, None] ** 2
    if beta is None:
        psf = np.exp(-0.5 * r2 / (1 / 2.3548) ** 2)
    else:
        alpha = 1.0 / (2 * math.sqrt(2 ** (1 / beta) - 1))
        psf = (1 + r2 / alpha**2) ** (-beta)
    f = np.fft.rfft2(np.fft.ifftshift(psf / psf.sum()))
    k1 = np.fft.fftfreq(n, d=step)
    k2 = np.fft.rfftfreq(n, d=step)
    s_int = t / 2.3548
    f *= np.exp(-2 * np.pi**2 * s_int**2 * (k1[:, None] ** 2 + k2[None, :] ** 2))
    img = np.fft.fftshift(np.fft.irfft2(f, s=(n, n)))
    img /= img.sum() * step**2
    return np.sqrt(r2).ravel(), img.ravel(), step


@functools.lru_cache(maxsize=1024)
def _encircled_unit(t: float, beta: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Encircled energy of a PSF of FWHM 1 convolved with a Gaussian of FWHM ``t``.

    Returns ``(radii, ee)`` with radii in units of the PSF FWHM.
    """
    r, img, step = _model_unit(t, beta)
    dr = step / 2
    idx = (r / dr).astype(np.int64)
    ee = np.cumsum(np.bincount(idx, weights=img))
    return (np.arange(ee.size) + 1) * dr, ee / ee[-1]


@functools.lru_cache(maxsize=1024)
def _sb_unit(t: float, beta: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Radial surface-brightness profile of the unit-flux model of :func:`_model_unit`.

    Returns ``(radii, sb)``: the mean radius and the mean sample of each ring one sampling step
    wide (radii in units of the PSF FWHM, surface brightness per unit area in those units).
    """
    r, img, step = _model_unit(t, beta)
    idx = (r / step).astype(np.int64)
    cnt = np.bincount(idx)
    good = cnt > 0
    rm = np.bincount(idx, weights=r)[good] / cnt[good]
    sb = np.bincount(idx, weights=img)[good] / cnt[good]
    return np.concatenate([[0.0], rm]), np.concatenate([[img.max()], sb])


def _bracket(table, psf_fwhm: float, int_fwhm: float, beta: float | None):
    """The cached tables of ``table`` (``_encircled_unit`` or ``_sb_unit``) on either side of a
    clump's size (steps of 0.05 PSF FWHM), with their linear weights: ``[((grid, val), w)]``."""
    t = math.sqrt(int_fwhm**2 + _PIXEL_FWHM2) / psf_fwhm
    lo = math.floor(t / 0.05) * 0.05
    w = (t - lo) / 0.05
    b = None if beta is None else round(float(beta), 2)
    return [(table(round(tt, 2), b), ww) for tt, ww in ((lo, 1 - w), (lo + 0.05, w)) if ww > 0]


def _profile(table, r, psf_fwhm: float, int_fwhm: float, beta: float | None, right=None):
    """A radial table of the unit clump model (``_encircled_unit`` or ``_sb_unit``) at radii
    ``r`` (px), interpolated linearly between the cached sizes (steps of 0.05 PSF FWHM)."""
    x = np.asarray(r) / psf_fwhm
    return sum(
        ww * np.interp(x, g, v, right=right)
        for (g, v), ww in _bracket(table, psf_fwhm, int_fwhm, beta)
    )


def _ee(r: np.ndarray, psf_fwhm: float, int_fwhm: float, beta: float | None) -> np.ndarray:
    """Encircled energy at radii ``r`` (px) of the clump model, pixel response included."""
    return _profile(_encircled_unit, r, psf_fwhm, int_fwhm, beta)


def _sb(r: np.ndarray, psf_fwhm: float, int_fwhm: float, beta: float | None) -> np.ndarray:
    """Surface brightness per pixel at radii ``r`` (px) of the unit-flux clump model (pixel
    response included, so the value at a pixel centre is that pixel's share of the light)."""
    return _profile(_sb_unit, r, psf_fwhm, int_fwhm, beta, right=0.0) / psf_fwhm**2


def _sb_table(psf_fwhm: float, int_fwhm: float, beta: float | None):
    """``(radii, sb)`` in pixels of :func:`_sb` for one clump: ``np.interp(r, radii, sb,
    right=0)`` gives the same values (both are linear between the union of the two cached
    tables' radii) with one interpolation per call, for a clump evaluated at many pixel sets."""
    parts = _bracket(_sb_unit, psf_fwhm, int_fwhm, beta)
    grid = parts[0][0][0] if len(parts) == 1 else np.union1d(parts[0][0][0], parts[1][0][0])
    val = sum(ww * np.interp(grid, g, v, right=0.0) for (g, v), ww in parts)
    return grid * psf_fwhm, val / psf_fwhm**2


def clump_fractions(
    *,
    psf_fwhm: float,
    fwhm_eff: float,
    r_ap: float,
    r_in: float,
    r_out: float,
    beta: float | None = 3.5,
) -> tuple[float, float]:
    """Fraction of a clump's light in the aperture, and its mean unit surface brightness in the
    annulus (per pixel), for the PSF x Gaussian (x pixel) clump model.

    Parameters
    ----------
    psf_fwhm, fwhm_eff : float
        PSF FWHM and the clump's effective (PSF-convolved) FWHM, pixels.
    r_ap, r_in, r_out : float
        Aperture radius and annulus radii, pixels.
    beta : float or None
        Moffat beta of the PSF (None: Gaussian).
    """
    psf = max(float(psf_fwhm), 0.5)
    intr = math.sqrt(max(fwhm_eff**2 - psf_fwhm**2, 0.0))
    f_ap, e_in, e_out = _ee(np.array([r_ap, r_in, r_out]), psf, intr, beta)
    return float(f_ap), float((e_out - e_in) / (np.pi * (r_out**2 - r_in**2)))


# ----------------------------------------------------------------------------- header info


def header_psf_fwhm(header, bands: Sequence[str]) -> dict[str, float] | None:
    """Per-band PSF FWHM in pixels from ``PSFFWHM<B>``/``PSFFWHM`` (arcsec) and ``PIXSCALE``."""
    if header is None or "PIXSCALE" not in header:
        return None
    try:
        scale = float(header["PIXSCALE"])
        out = {}
        for b in bands:
            key = f"PSFFWHM{b.upper()}"[:8]
            v = header.get(key, header.get("PSFFWHM"))
            if v is None:
                return None
            out[b] = float(v) / scale
        return out
    except (TypeError, ValueError):
        return None


#: Moffat beta of the clump model when neither the config nor the header gives the PSF shape.
DEFAULT_PSF_BETA = 2.5


def header_psf_beta(header) -> float | None:
    """Moffat beta of the image's PSF from ``PSFPROF`` / ``PSFBETA`` cards (written by the
    simulators), else :data:`DEFAULT_PSF_BETA`; None for a Gaussian PSF."""
    prof = str(header.get("PSFPROF", "moffat")).strip().lower() if header is not None else ""
    if prof == "gaussian":
        return None
    if prof == "kolmogorov":
        return 4.765  # the Moffat that best matches a Kolmogorov profile (Trujillo et al. 2001)
    beta = _header_float(header, "PSFBETA")
    return beta if beta is not None and beta > 1.1 else DEFAULT_PSF_BETA


def _header_float(header, key: str) -> float | None:
    try:
        v = header.get(key) if header is not None else None
        return float(v) if v is not None and float(v) > 0 else None
    except (TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- host


def segment_hosts(
    band: np.ndarray,
    *,
    nsigma: float = 2.0,
    npixels: int = 30,
    smooth_fwhm: float = 4.0,
    sigma: float | None = None,
):
    """Segment extended sources of one band (background-subtracted pixels).

    Returns ``(segm, smooth)``: a photutils ``SegmentationImage`` (or None when nothing is
    above the threshold) and the smoothed image it was detected on.
    """
    from photutils.segmentation import detect_sources
    from scipy.ndimage import gaussian_filter

    data = np.nan_to_num(np.asarray(band, dtype=np.float64))
    if sigma is None or not np.isfinite(sigma) or sigma <= 0:
        sigma = float(mad_sigma(data)) or float(np.std(data)) or 1.0
    s = smooth_fwhm / 2.3548
    smooth = gaussian_filter(data, s, mode="nearest") if s > 0 else data
    # noise of the smoothed image: a Gaussian filter of width s lowers white noise by 2 sqrt(pi) s
    sm_sigma = sigma / (2 * math.sqrt(math.pi) * s) if s > 0.5 else sigma
    segm = detect_sources(smooth, nsigma * sm_sigma, npixels)
    return segm, smooth


def _host_mask(segm, smooth, centre, clump_xy, config, ref=None, sigma=None):
    """Label map id of the host, boolean mask of the galaxy, boolean mask of neighbours."""
    h, w = segm.data.shape
    cx = min(w - 1, max(0, int(centre[0])))
    cy = min(h - 1, max(0, int(centre[1])))
    lab = int(segm.data[cy, cx])
    if lab == 0:
        yy, xx = np.nonzero(segm.data)
        if yy.size == 0:
            return 0, None, None
        k = np.argmin((xx - cx) ** 2 + (yy - cy) ** 2)
        lab = int(segm.data[yy[k], xx[k]])
        cx, cy = int(xx[k]), int(yy[k])
    host = segm.data == lab
    # only significant segments are neighbours: masking the many faint noise-peak segments on a
    # low-surface-brightness disk would remove positive fluctuations of the host's own light
    other = (segm.data > 0) & ~host
    if ref is not None and sigma:
        labels = segm.data.ravel()
        sums = np.bincount(labels, weights=ref.ravel())
        npx = np.bincount(labels)
        snr = sums / (sigma * np.sqrt(np.maximum(npx, 1)))
        weak = np.nonzero(snr < config.neighbour_snr)[0]
        other &= ~np.isin(segm.data, weak)
    neighbours = other
    if config.deblend and host.sum() >= 2 * config.host_npixels:
        from photutils.segmentation import SegmentationImage, deblend_sources

        f = max(1, int(config.deblend_bin))
        hb, wb = h // f, w // f
        small = smooth[: hb * f, : wb * f].reshape(hb, f, wb, f).mean(axis=(1, 3))
        hsmall = host[: hb * f, : wb * f].reshape(hb, f, wb, f).mean(axis=(1, 3)) >= 0.5
        npix_small = max(2, config.host_npixels // (f * f))
        deb = None
        if hsmall.sum() >= 2 * npix_small:
            try:
                deb = deblend_sources(
                    small,
                    SegmentationImage(hsmall.astype(np.int32)),
                    npix_small,
                    n_levels=config.deblend_nlevels,
                    contrast=config.deblend_contrast,
                    progress_bar=False,
                )
            except Exception:  # deblending is optional: keep the whole segment
                deb = None
        if deb is not None and deb.n_labels > 1:
            # labels back to full resolution; rows/columns past the last whole block copy it
            big = np.repeat(np.repeat(deb.data, f, axis=0), f, axis=1)
            full = np.zeros((h, w), np.int32)
            full[: big.shape[0], : big.shape[1]] = big
            full[big.shape[0] :, :] = full[big.shape[0] - 1 : big.shape[0], :]
            full[:, big.shape[1] :] = full[:, big.shape[1] - 1 : big.shape[1]]
            deb_data = np.where(host, full, 0)  # host pixels on unlabelled blocks stay galaxy
            keep = {int(deb_data[cy, cx]), 0}
            for x, y in clump_xy:
                xi, yi = min(w - 1, max(0, int(x))), min(h - 1, max(0, int(y)))
                keep.add(int(deb_data[yi, xi]))
            galaxy = host & np.isin(deb_data, list(keep))
            neighbours |= host & ~galaxy
            host = galaxy
    return lab, host, neighbours


def _host_geometry(host: np.ndarray, ref: np.ndarray):
    """Centroid (0-based), semimajor sigma, axis ratio, orientation (rad) of the host.

    The flux-weighted second moments of the segment (positive pixels), as
    :class:`photutils.segmentation.SourceCatalog` defines them, computed directly for speed.
    """
    yy, xx = np.nonzero(host)
    wt = np.maximum(ref[yy, xx], 0.0)
    tot = wt.sum()
    if yy.size < 3 or tot <= 0:
        return None
    x0, y0 = float((wt * xx).sum() / tot), float((wt * yy).sum() / tot)
    dx, dy = xx - x0, yy - y0
    cxx, cyy, cxy = (
        (wt * dx * dx).sum() / tot,
        (wt * dy * dy).sum() / tot,
        (wt * dx * dy).sum() / tot,
    )
    common = math.sqrt(max(((cxx - cyy) / 2) ** 2 + cxy**2, 0.0))
    lam1, lam2 = (cxx + cyy) / 2 + common, (cxx + cyy) / 2 - common
    if lam1 <= 0:
        return None
    a = math.sqrt(lam1)
    q = math.sqrt(max(lam2, 0.0)) / a
    theta = 0.5 * math.atan2(2 * cxy, cxx - cyy)
    return x0, y0, a, max(q, 0.1), theta


def elliptical_host_model(
    data: np.ndarray,
    geometry,
    mask: np.ndarray,
    *,
    extent: float,
    centre_data: np.ndarray | None = None,
    region: np.ndarray | None = None,
) -> np.ndarray:
    """Smooth host model: the median surface brightness in elliptical annuli, per band.

    Every pixel is assigned its elliptical radius ``a`` (semimajor axis of the ellipse of the
    host's axis ratio and orientation through it); the model of a band is the median of the
    unmasked pixels in narrow bins of ``a`` (1 px wide out to 8 px, then 8 % wide), linearly
    interpolated in ``a``, and zero beyond ``extent`` x the semimajor sigma. Medians ignore the
    compact sources (clumps, HII knots, stars) that fill a small part of an annulus, so what is
    left after subtraction is those sources plus the host's non-elliptical structure (arms,
    bar, companion), which the clump annuli then remove locally. It is the cheap, one-geometry
    form of isophote modelling (:mod:`photutils.isophote`, about 100x slower).

    Parameters
    ----------
    data : ndarray, shape (C, H, W)
        Sky-subtracted pixels.
    geometry : tuple
        ``(x0, y0, a_sigma, q, theta)`` of the host (0-based pixel centre, px, rad).
    mask : ndarray of bool, shape (H, W)
        Pixels left out of the medians (neighbours, clump apertures, NaNs).
    extent : float
        Outer semimajor axis of the model, units of ``a_sigma``.
    centre_data : ndarray, shape (H, W), optional
        Band whose light-weighted peak within ``a_sigma`` of the moment centre re-centres the
        ellipses (moments of a lopsided or interacting host are off its nucleus).
    region : ndarray of bool, shape (H, W), optional
        Only these pixels are modelled (zero elsewhere), and only the annuli that cross them
        are measured: the clump apertures and annuli, a small part of the frame (fast).

    Returns
    -------
    ndarray, shape (C, H, W)
        The model, in the units of ``data``.
    """
    c, h, w = data.shape
    x0, y0, a_sig, q, theta = geometry
    if centre_data is not None:
        # unmasked: a masked clump aperture next to the nucleus would pull the centroid away
        x0, y0 = recentre(centre_data, x0, y0, max(3.0, a_sig))
    yy, xx = np.mgrid[0:h, 0:w]
    dx, dy = xx - x0, yy - y0
    ct, st = math.cos(theta), math.sin(theta)
    u = dx * ct + dy * st
    v = -dx * st + dy * ct
    rad = np.sqrt(u**2 + (v / q) ** 2)
    a_max = max(extent * a_sig, 4.0)
    inner = np.arange(1.0, 8.0, 1.0)
    n_out = max(2, math.ceil(math.log(a_max / 8.0) / math.log(1.08)) + 2)
    edges = np.concatenate([inner, 8.0 * 1.08 ** np.arange(n_out)])
    inside = rad < a_max
    if region is not None:
        inside &= region
        if not inside.any():
            return np.zeros_like(data)
        r_need = rad[inside]
        k0 = max(0, int(np.searchsorted(edges, r_need.min(), side="right")) - 2)
        k1 = min(edges.size - 1, int(np.searchsorted(edges, r_need.max(), side="right")) + 1)
        lo_r = edges[k0 - 1] if k0 > 0 else 0.0
        use = (~mask) & (rad >= lo_r) & (rad < min(edges[k1], a_max))
    else:
        use = (~mask) & inside
    r_use = rad[use]
    lab = np.searchsorted(edges, r_use, side="right")  # bin k: edges[k-1] <= rad < edges[k]
    npx = np.bincount(lab, minlength=edges.size + 1)
    has = npx >= 3
    if not has.any():
        return np.zeros_like(data)
    r_mean = (np.bincount(lab, weights=r_use, minlength=edges.size + 1) / np.maximum(npx, 1))[has]
    start = np.concatenate([[0], np.cumsum(npx)[:-1]])[has]
    cnt = npx[has]
    lo, hi = start + (cnt - 1) // 2, start + cnt // 2  # the middle one or two of each bin
    model = np.zeros_like(data)
    lab_sorted = np.sort(lab)
    for bi in range(c):
        # one sort by (bin, value): each bin's values are then contiguous and ordered. The key
        # bin + value scaled into [0, 0.5] sorts as (bin, value) 4x faster than a lexsort; the
        # values come back from it to ~1e-14 of their range
        vals = data[bi][use]
        vmin = float(vals.min())
        span = float(vals.max()) - vmin
        if span > 0:
            scale = 0.5 / span
            srt = vmin + (np.sort(lab + (vals - vmin) * scale) - lab_sorted) / scale
        else:
            srt = np.full(vals.shape, vmin)
        prof = 0.5 * (srt[lo] + srt[hi])
        model[bi][inside] = np.interp(rad[inside], r_mean, prof)
    return model


def recentre(img: np.ndarray, x0: float, y0: float, radius: float) -> tuple[float, float]:
    """The nucleus near ``(x0, y0)``.

    Start at the brightest pixel of ``img`` smoothed by a 1 px Gaussian within ``radius`` of
    ``(x0, y0)``, then iterate a Gaussian-windowed centroid (sigma 2 px, as SExtractor's XWIN).

    Parameters
    ----------
    img : ndarray, shape (H, W)
        Sky-subtracted pixels (any unit; positive where the galaxy is).
    x0, y0 : float
        0-based pixel position to start from.
    radius : float
        Search radius, pixels.

    Returns
    -------
    (x, y) : tuple of float
        0-based pixel position; ``(x0, y0)`` unchanged when nothing positive is within
        ``radius`` or the centroid leaves it.
    """
    from scipy.ndimage import gaussian_filter

    h, w = img.shape
    i0, i1 = max(0, int(y0 - radius)), min(h, int(y0 + radius) + 1)
    j0, j1 = max(0, int(x0 - radius)), min(w, int(x0 + radius) + 1)
    if i1 - i0 < 3 or j1 - j0 < 3:
        return x0, y0
    cut = gaussian_filter(img[i0:i1, j0:j1], 1.0)
    yy, xx = np.mgrid[i0:i1, j0:j1]
    cut = np.where((xx - x0) ** 2 + (yy - y0) ** 2 <= radius**2, cut, -np.inf)
    k = np.unravel_index(int(np.argmax(cut)), cut.shape)
    if not np.isfinite(cut[k]) or cut[k] <= 0:
        return x0, y0
    cx, cy = float(k[1] + j0), float(k[0] + i0)
    r = 6
    for _ in range(10):
        a0, a1 = max(0, int(cy) - r), min(h, int(cy) + r + 1)
        b0, b1 = max(0, int(cx) - r), min(w, int(cx) + r + 1)
        gy, gx = np.mgrid[a0:a1, b0:b1]
        wt = np.maximum(img[a0:a1, b0:b1], 0.0)
        wt = wt * np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * 2.0**2))
        if wt.sum() <= 0:
            break
        nx, ny = float((wt * gx).sum() / wt.sum()), float((wt * gy).sum() / wt.sum())
        done = abs(nx - cx) + abs(ny - cy) < 1e-3
        cx, cy = nx, ny
        if done:
            break
    if (cx - x0) ** 2 + (cy - y0) ** 2 > radius**2:
        return x0, y0
    return cx, cy


def host_fluxes(
    data: np.ndarray, var: np.ndarray, geometry, mask: np.ndarray, *, extent: float
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Whole-galaxy flux per band by integrating elliptical annuli (see the module docstring).

    Parameters
    ----------
    data, var : ndarray, shape (C, H, W)
        Pixels and their variances.
    geometry : tuple
        ``(x0, y0, a_sigma, q, theta)`` of the host (0-based centre, px, rad).
    mask : ndarray of bool, shape (H, W)
        Pixels to leave out (neighbours, NaNs).
    extent : float
        Outer semimajor axis in units of ``a_sigma``.

    Returns
    -------
    flux, err : ndarray, shape (C,)
    clipped : bool
        The outermost measured annulus has less than half of its area in the frame.
    """
    c, h, w = data.shape
    x0, y0, a_sig, q, theta = geometry
    # 2 x 2 block sums: the profile needs no finer sampling and this is 4 x faster
    f = 2 if min(h, w) >= 64 else 1
    hb, wb = h // f, w // f
    good_px = (~mask) & np.all(np.isfinite(data), axis=0)
    dat = np.where(good_px, data, 0.0)[:, : hb * f, : wb * f].reshape(c, hb, f, wb, f).sum((2, 4))
    vv = np.where(good_px, var, 0.0)[:, : hb * f, : wb * f].reshape(c, hb, f, wb, f).sum((2, 4))
    frac = good_px[: hb * f, : wb * f].reshape(hb, f, wb, f).mean(axis=(1, 3))
    ok = frac >= 0.5
    data = np.where(ok, dat / np.maximum(frac, 1e-9), 0.0)  # per-block flux, masked part filled
    var = np.where(ok, vv / np.maximum(frac, 1e-9) ** 2, 0.0)
    mask = ~ok
    yy, xx = np.mgrid[0:hb, 0:wb]
    dx, dy = f * xx + (f - 1) / 2 - x0, f * yy + (f - 1) / 2 - y0
    ct, st = math.cos(theta), math.sin(theta)
    u = dx * ct + dy * st
    v = -dx * st + dy * ct
    rad = np.sqrt(u**2 + (v / q) ** 2)  # elliptical semimajor radius of each block, px
    a_max = extent * a_sig
    nbin = 40
    a_max = max(a_max, 2.0)
    edges = np.concatenate([[0.0], np.geomspace(1.0, a_max, nbin)])
    dlog = math.log(a_max) / (nbin - 1)
    with np.errstate(divide="ignore"):
        # bin k: edges[k] <= rad < edges[k+1] (bin 0: rad < 1)
        idx = np.where(rad < 1.0, 0, np.floor(np.log(np.maximum(rad, 1.0)) / dlog).astype(int) + 1)
    good = (~mask) & (idx < nbin)
    ii = idx[good]
    npix = np.bincount(ii, minlength=nbin).astype(np.float64)
    area = np.pi * q * (edges[1:] ** 2 - edges[:-1] ** 2) / f**2  # full annulus areas, blocks
    has = npix > 0
    flux = np.zeros(c)
    err2 = np.zeros(c)
    outer = int(np.nonzero(has)[0].max()) if has.any() else -1
    clipped = outer >= 0 and npix[outer] < 0.5 * area[outer]
    for bi in range(c):
        s = np.bincount(ii, weights=data[bi][good], minlength=nbin)
        sv = np.bincount(ii, weights=var[bi][good], minlength=nbin)
        mean = np.where(has, s / np.maximum(npix, 1), 0.0)
        # empty inner/middle annuli (all masked): interpolate from the neighbouring ones
        if has.any() and not has.all():
            centres = 0.5 * (edges[1:] + edges[:-1])
            mean = np.interp(centres, centres[has], mean[has])
            mean[centres > centres[has].max()] = 0.0
        scale = np.where(has, area / np.maximum(npix, 1), 0.0)
        flux[bi] = float(np.sum(mean * area))
        err2[bi] = float(np.sum(scale**2 * sv))
        # exponential tail beyond the last annulus, fitted to the outer third of the profile
        last = outer if outer >= 0 else nbin - 1
        sel = np.arange(nbin) >= max(0, int(0.6 * last))
        sel &= has & (mean > 0) & (np.arange(nbin) <= last)
        if sel.sum() >= 3:
            rc = 0.5 * (edges[1:] + edges[:-1])[sel]
            slope = np.polyfit(rc, np.log(mean[sel]), 1)[0]
            if slope < 0:
                hs = -1.0 / slope
                a_end = edges[last + 1]
                i_end = float(np.exp(np.polyval(np.polyfit(rc, np.log(mean[sel]), 1), a_end)))
                flux[bi] += 2 * np.pi * q * hs * (a_end + hs) * i_end / f**2
    return flux, np.sqrt(err2), bool(clipped)


# ----------------------------------------------------------------------------- main


def measure_photometry(
    data: np.ndarray,
    boxes: np.ndarray,
    *,
    bands: Sequence[str],
    reference_band: str,
    header=None,
    config: PhotometryConfig | None = None,
) -> dict[str, np.ndarray]:
    """Forced clump photometry, whole-galaxy host photometry and flux ratios of one image.

    Parameters
    ----------
    data : ndarray, shape (C, H, W)
        Sky-subtracted pixels in physical units (e.g. nanomaggies).
    boxes : ndarray, shape (N, 4)
        Clump boxes, xyxy pixels (docs/conventions.md); ``N`` may be 0.
    bands : sequence of str
        One name per plane, in wavelength order.
    reference_band : str
        Band of the segmentation and of ``flux_ratio``.
    header : astropy.io.fits.Header, optional
        For ``PSFFWHM*``, ``PIXSCALE``, ``NOISE_<B>``, ``GAIN``.
    config : PhotometryConfig, optional

    Returns
    -------
    dict of str to ndarray
        One array of length ``N`` per column of :func:`photometry_columns`.
    """
    cfg = config or PhotometryConfig()
    if cfg.psf_beta == "header":
        cfg = dataclasses.replace(cfg, psf_beta=header_psf_beta(header))
    bands = list(bands)
    _, h, w = data.shape
    n = len(boxes)
    ref_i = bands.index(reference_band)
    cut_b = cut_band_of(bands, cfg.cut_band)
    cols = dict(photometry_columns(bands, cfg))
    out = {
        k: (
            np.zeros(n, bool)
            if t == "bool"
            else np.zeros(n, np.int64)
            if t == "i8"
            else np.full(n, np.nan)
        )
        for k, t in cols.items()
    }
    if n == 0:
        return out
    data = np.asarray(data, dtype=np.float64)
    finite = np.isfinite(data)
    clean = np.where(finite, data, 0.0)

    # -- noise and variance maps
    psf = (
        {b: float(cfg.psf_fwhm) for b in bands}
        if cfg.psf_fwhm is not None
        else header_psf_fwhm(header, bands)
    )
    gains = _gains(cfg.gain, header, bands)
    sky = {b: _header_float(header, f"NOISE_{b.upper()}"[:8]) for b in bands}
    segm, smooth = segment_hosts(
        clean[ref_i],
        nsigma=cfg.host_nsigma,
        npixels=cfg.host_npixels,
        smooth_fwhm=cfg.host_smooth_fwhm,
        sigma=sky[reference_band],
    )
    objmask = segm.data > 0 if segm is not None else np.zeros((h, w), bool)
    var = np.empty_like(clean)
    for bi, b in enumerate(bands):
        s = sky[b]
        if s is None:
            sky_px = clean[bi][~objmask & finite[bi]]
            s = float(mad_sigma(sky_px)) if sky_px.size > 100 else float(mad_sigma(clean[bi]))
        var[bi] = s**2
        if gains.get(b):
            var[bi] += np.maximum(clean[bi], 0.0) / gains[b]

    # -- clump geometry (reference band), shared by every band
    x = 0.5 * (boxes[:, 0] + boxes[:, 2])
    y = 0.5 * (boxes[:, 1] + boxes[:, 3])
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    psf_ref = psf[reference_band] if psf else None
    fwhm_eff = side / cfg.box_fwhm_multiple
    if psf_ref is not None:
        fwhm_eff = np.maximum(fwhm_eff, psf_ref)
    # no PSF known: every clump is treated as unresolved (its PSF is FWHM_eff)
    fwhm_int = np.sqrt(np.maximum(fwhm_eff**2 - (psf_ref or fwhm_eff) ** 2, 0.0))
    r_ap = cfg.aperture_fwhm * fwhm_eff
    r_in = cfg.annulus_fwhm[0] * fwhm_eff
    r_out = np.maximum(cfg.annulus_fwhm[1] * fwhm_eff, r_in + 3.0)
    out["fwhm_eff"][:] = fwhm_eff
    out["aperture_radius"][:] = r_ap
    flag = np.zeros(n, np.int64)

    # -- host: segment at the galaxy centre, deblended; its geometry and whole-galaxy flux
    centre = cfg.galaxy_centre or (w / 2.0, h / 2.0)
    host_f = host_e = None
    geom = None
    bad = None
    if segm is not None:
        sig_ref = float(np.sqrt(np.median(var[ref_i][~objmask]))) if (~objmask).any() else None
        lab, host, neighbours = _host_mask(
            segm, smooth, centre, list(zip(x, y)), cfg, ref=clean[ref_i], sigma=sig_ref
        )
        if host is not None and host.any():
            out["host_segment"][:] = lab
            geom = _host_geometry(host, clean[ref_i])
            if geom is not None:
                bad = neighbours | ~np.all(finite, axis=0)
                host_f, host_e, clipped = host_fluxes(clean, var, geom, bad, extent=cfg.host_extent)
                if clipped:
                    flag |= FLAG_HOST_EDGE
    if host_f is None:
        flag |= FLAG_NO_HOST

    # -- clumps, on the image minus the smooth host model (when there is a host)
    phot_data = clean
    if cfg.host_model == "ellipse" and geom is not None:
        yy, xx = np.ogrid[0:h, 0:w]
        keep_out = bad.copy()  # left out of the model: neighbours, NaNs, clump apertures
        region = np.zeros((h, w), bool)  # modelled: the clumps' annuli
        for j in range(n):
            rm = cfg.host_model_mask_fwhm * fwhm_eff[j]
            keep_out |= (xx + 0.5 - x[j]) ** 2 + (yy + 0.5 - y[j]) ** 2 <= rm**2
            ro = r_out[j] + 1.0
            j0, j1 = max(0, int(y[j] - ro)), min(h, int(y[j] + ro) + 1)
            i0, i1 = max(0, int(x[j] - ro)), min(w, int(x[j] + ro) + 1)
            region[j0:j1, i0:i1] = True
        phot_data = clean - elliptical_host_model(
            clean, geom, keep_out, extent=cfg.host_extent, centre_data=clean[ref_i], region=region
        )
    two = cfg.faint_aperture_fwhm is not None and (
        cfg.faint_aperture_fwhm != cfg.aperture_fwhm or cfg.faint_weighting != "aperture"
    )
    r_small = cfg.faint_aperture_fwhm * fwhm_eff if two else None
    sets = _clump_photometry(
        phot_data, var, finite, x - 0.5, y - 0.5, [r_ap] + ([r_small] if two else []),
        r_in, r_out, fwhm_eff, fwhm_int, psf, bands, cfg,
        weightings=["aperture"] + ([cfg.faint_weighting] if two else []),
    )  # fmt: skip
    flux, err, clump_flag = next(sets)
    with np.errstate(divide="ignore", invalid="ignore"):
        faint = ~(flux[ref_i] / err[ref_i] >= cfg.faint_snr)
    if two and faint.any():  # clumps below faint_snr in the first aperture take the smaller one
        f2, e2, fl2 = next(sets)
        flux, err = np.where(faint, f2, flux), np.where(faint, e2, err)
        clump_flag = np.where(faint, fl2, clump_flag)
        out["aperture_radius"][:] = np.where(faint, r_small, r_ap)
    flag |= clump_flag
    if cfg.size_scatter > 0:  # the clump's size is only known to the box rule's scatter
        rel = _size_error(out["aperture_radius"], fwhm_eff, psf, bands, cfg)
        err = np.hypot(err, np.abs(flux) * rel)

    for bi, b in enumerate(bands):
        f, e = flux[bi], err[bi]
        out[f"flux_{b}"][:] = f
        out[f"flux_err_{b}"][:] = e
        if host_f is not None and host_f[bi] > 0:
            hf, he = host_f[bi], host_e[bi]
            out[f"host_flux_{b}"][:] = hf
            out[f"host_flux_err_{b}"][:] = he
            ratio = f / hf
            out[f"flux_ratio_{b}"][:] = ratio
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = np.sqrt((e / np.abs(f)) ** 2 + (he / hf) ** 2)
            out[f"flux_ratio_err_{b}"][:] = np.abs(ratio) * rel
    out["flux_ratio"][:] = out[f"flux_ratio_{reference_band}"]
    out["flux_ratio_cut"][:] = out[f"flux_ratio_{cut_b}"]
    for cut in cfg.ratio_cuts:
        out[cut_column(cut)][:] = np.nan_to_num(out["flux_ratio_cut"], nan=-1.0) >= cut
    out["phot_flag"][:] = flag
    return out


def _size_error(r_ap, fwhm_eff, psf, bands, cfg) -> np.ndarray:
    """Relative flux error ``(C, N)`` of the aperture correction from the clump-size scatter.

    The aperture keeps ``EE(r_ap)`` of a clump whose FWHM_eff is known from its box to a
    log-scatter ``cfg.size_scatter``; half the spread of ``EE`` between FWHM_eff x exp(-+s),
    over ``EE``.
    """
    s = cfg.size_scatter
    out = np.zeros((len(bands), len(r_ap)))
    for bi, b in enumerate(bands):
        for j, (r, fe) in enumerate(zip(r_ap, fwhm_eff)):
            p = psf[b] if psf else float(fe)
            ee = [
                float(
                    _ee(np.array([r]), p, math.sqrt(max((fe * k) ** 2 - p * p, 0.0)), cfg.psf_beta)[
                        0
                    ]
                )
                for k in (math.exp(-s), 1.0, math.exp(s))
            ]
            out[bi, j] = 0.5 * abs(ee[0] - ee[2]) / max(ee[1], 1e-12)
    return out


def _gains(gain, header, bands) -> dict[str, float]:
    if isinstance(gain, Mapping):
        return {b: float(gain[b]) for b in bands if b in gain}
    if gain is not None:
        return {b: float(gain) for b in bands}
    g = _header_float(header, "GAIN")
    return {b: g for b in bands} if g else {}


def _masked_median(a: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Median of each row of ``a`` over its ``keep`` entries (rows with none: NaN)."""
    k = keep.sum(axis=1)
    s = np.sort(np.where(keep, a, np.inf), axis=1)
    rows = np.arange(a.shape[0])
    lo, hi = np.maximum((k - 1) // 2, 0), np.maximum(k // 2, 0)
    with np.errstate(invalid="ignore"):
        med = 0.5 * (s[rows, lo] + s[rows, hi])
    return np.where(k > 0, med, np.nan)


def _basis(dx: np.ndarray, dy: np.ndarray, kind: str) -> np.ndarray:
    """Design matrix ``(n, P)`` of the annulus surface: constant (median), plane or quadratic."""
    one = np.ones_like(dx, dtype=np.float64)
    if kind == "median":
        return one[:, None]
    if kind == "plane":
        return np.stack([one, dx, dy], axis=1)
    return np.stack([one, dx, dy, dx * dx, dy * dy, dx * dy], axis=1)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``a x = b``: ``(C, P, P)``, ``(C, P, 1)`` -> ``(C, P)``; lstsq if singular."""
    try:
        return np.linalg.solve(a, b)[..., 0]
    except np.linalg.LinAlgError:
        return np.stack([np.linalg.lstsq(ai, bi, rcond=None)[0][:, 0] for ai, bi in zip(a, b)])


@dataclasses.dataclass
class _AnnulusFit:
    """The local host-light surface fitted to one clump's annulus, every band at once.

    Given its clipping mask the fit is linear in the annulus pixels, so the same operator applied
    to a clump model says how much of that clump's light the background estimate absorbs.

    Attributes
    ----------
    kind : {"median", "plane", "quadratic"}
    coef : ndarray, shape (C, P)
        Surface coefficients per band, in pixel offsets from the clump centre.
    keep : ndarray of bool, shape (C, n)
        Annulus pixels kept by the sigma clipping, per band.
    design : ndarray, shape (n, P)
    sigma : ndarray, shape (C,)
        Scatter of the kept pixels about the surface.
    """

    kind: str
    coef: np.ndarray
    keep: np.ndarray
    design: np.ndarray
    sigma: np.ndarray
    _cache: tuple[np.ndarray, np.ndarray] | None = dataclasses.field(default=None, repr=False)

    def _normal(self) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            dk = self.design[None] * self.keep[..., None]  # (C, n, P): left-out pixels zeroed
            self._cache = (dk, dk.transpose(0, 2, 1) @ self.design)
        return self._cache

    def response(self, vals: np.ndarray) -> np.ndarray:
        """Coefficients ``(C, P)`` this fit gives for annulus values ``vals``, shape (C, n)."""
        if self.kind == "median":  # a median's response to a smooth addition: about its mean
            nk = np.maximum(self.keep.sum(axis=1), 1)
            return ((vals * self.keep).sum(axis=1) / nk)[:, None]
        dk, a = self._normal()
        return _solve(a, dk.transpose(0, 2, 1) @ vals[..., None])

    def mean_variance(self, phi: np.ndarray) -> np.ndarray:
        """Variance ``(C,)`` of ``phi . coef`` for weights ``phi`` (C, P) on the surface terms."""
        nk = np.maximum(self.keep.sum(axis=1), 1)
        if self.kind == "median":  # error of a median: 1.2533 sigma / sqrt(n)
            return (phi[:, 0] * 1.2533 * self.sigma) ** 2 / nk
        _, a = self._normal()
        q = np.einsum("cp,cp->c", phi, _solve(a, phi[..., None]))
        return self.sigma**2 * q


def _local_background(vals, dx, dy, cfg) -> _AnnulusFit:
    """Fit of the host light in one annulus, every band at once.

    ``background="median"``: the sigma-clipped median (photutils' LocalBackground habit), right
    for a flat or linear host; ``"plane"``: a clipped least-squares plane; ``"quadratic"``
    (default): a clipped least-squares quadratic surface, which follows the curvature of an
    exponential disk that biases a median by tens of percent of the host light when the disk
    scale length is not much larger than the annulus. Fewer than 30 pixels: the median.

    Parameters
    ----------
    vals : ndarray, shape (C, n)
        Annulus pixel values per band.
    dx, dy : ndarray, shape (n,)
        Pixel offsets from the clump centre.
    cfg : PhotometryConfig

    Returns
    -------
    _AnnulusFit
    """
    c, n = vals.shape
    kind = "median" if cfg.background == "median" or n < 30 else cfg.background
    design = _basis(dx, dy, kind)
    if kind == "median":
        from astropy.stats import sigma_clip

        clipped = sigma_clip(vals, sigma=3.0, maxiters=5, axis=1)
        keep = ~np.ma.getmaskarray(clipped)
        med = _masked_median(vals, keep)
        std = np.array([np.std(vals[i, keep[i]]) if keep[i].any() else 0.0 for i in range(c)])
        return _AnnulusFit(kind, med[:, None], keep, design, std)
    keep = np.ones((c, n), bool)
    active = np.ones(c, bool)  # bands whose clipping has not converged
    for _ in range(3):
        # weighted normal equations of the few-parameter surface, all bands in one solve
        dk = design[None] * keep[..., None]
        coef = _solve(dk.transpose(0, 2, 1) @ design, dk.transpose(0, 2, 1) @ vals[..., None])
        resid = vals - coef @ design.T
        med = _masked_median(resid, keep)
        sig = 1.4826 * _masked_median(np.abs(resid - med[:, None]), keep)
        new = np.abs(resid) <= 3 * np.maximum(sig, 1e-30)[:, None]
        change = active & (new.sum(axis=1) >= 30) & np.any(new != keep, axis=1)
        if not change.any():
            break
        keep[change] = new[change]
        active = change
    sig = np.array([np.std(resid[i, keep[i]]) for i in range(c)])
    return _AnnulusFit(kind, coef, keep, design, sig)


def _clump_photometry(
    data,
    var,
    finite,
    x0,
    y0,
    r_aps,
    r_in,
    r_out,
    fwhm_eff,
    fwhm_int,
    psf,
    bands,
    cfg,
    weightings=None,
):
    """Aperture minus local-background fluxes of every clump, solved together, every band.

    Each clump's aperture sum minus its fitted annulus background is a linear function of every
    clump's flux: its own light in the aperture less the part its annulus absorbs, and, for
    crowded clumps, the neighbours' light that falls in the aperture or the annulus. With the
    clump model (PSF x Gaussian, see :func:`clump_fractions`) evaluated at the pixels, these
    coefficients form a matrix ``M`` (N x N per band) and the fluxes solve ``M F = y``. Isolated
    clumps reduce to the usual aperture correction; blended ones are deblended by the model
    (neighbours closer than half an FWHM_eff are taken as one clump and not split).

    The annulus of each clump (other clumps' first apertures ``r_aps[0]`` masked) is fitted
    once; each aperture-radius set of ``r_aps`` is then solved against that fit.

    Parameters
    ----------
    data, var : ndarray, shape (C, H, W)
    finite : ndarray of bool, shape (C, H, W)
    x0, y0 : ndarray, shape (N,)
        Clump centres, photutils pixel convention (pixel centres at integers).
    r_aps : sequence of ndarray, shape (N,) each
        Aperture radii (px): one measurement per set.
    r_in, r_out, fwhm_eff, fwhm_int : ndarray, shape (N,)
    psf : dict or None
        PSF FWHM per band (px).
    bands : sequence of str
    cfg : PhotometryConfig
    weightings : sequence of {"aperture", "model"}, optional
        Pixel weights of each set: the aperture (default), or the clump model over the pixel
        variance inside it (matched filter: the least noisy flux for faint clumps).

    Yields
    ------
    (flux, err, flag)
        Per set of ``r_aps``, computed when asked for: flux and error arrays, shape (C, N),
        and the ``phot_flag`` bits (FLAG_EDGE, FLAG_ANNULUS, FLAG_BLENDED), shape (N,).
    """
    from photutils.aperture import CircularAnnulus, CircularAperture

    c, h, w = data.shape
    n = len(x0)
    o_r = r_aps[0]
    beta = cfg.psf_beta
    # per clump and band: the PSF FWHM (px) of its model
    psf_cb = np.array(
        [[psf[b] if psf else float(fwhm_eff[j]) for j in range(n)] for b in bands], float
    )
    same_psf = bool(np.all(psf_cb == psf_cb[:1]))
    # a clump's light counts in another's aperture and annulus out to 3 FWHM_eff from its
    # centre (beyond it, < 2.5 % of a beta-2.5 Moffat's light, spread thin)
    reach = 3.0 * fwhm_eff

    # per clump: its radial profile table per band (one shared when the PSF is)
    tables = [
        [_sb_table(psf_cb[bi, k], float(fwhm_int[k]), beta) for bi in range(1 if same_psf else c)]
        for k in range(n)
    ]

    def model(k: int, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Clump ``k``'s unit-flux surface brightness (per pixel) at pixels ``px, py`` (C, n)."""
        r = np.hypot(px - x0[k], py - y0[k])
        sb = [np.interp(r, g, v, right=0.0) for g, v in tables[k]]
        return np.broadcast_to(sb[0], (c, r.size)) if same_psf else np.stack(sb)

    fin_all = finite.all(axis=0)
    d = np.hypot(x0[:, None] - x0[None], y0[:, None] - y0[None])
    same = d < 0.5 * np.maximum(fwhm_eff[:, None], fwhm_eff[None])  # not split: one clump
    # clumps whose light reaches clump j's annulus or aperture (j itself first)
    near = [
        [j] + [k for k in np.nonzero(d[j] < r_out[j] + reach)[0] if k != j and not same[j, k]]
        for j in range(n)
    ]
    resp: dict[tuple[int, int], np.ndarray] = {}  # (j, k): j's annulus fit of k's model light
    # annulus of each clump: pixels, fit
    # per clump: its annulus fit and the annulus pixels (x, y), or None without a usable annulus
    annuli: list[tuple[_AnnulusFit, np.ndarray, np.ndarray] | None] = []
    tex_var = np.zeros((c, n))
    # texture is correlated over about a PSF: the correlation area of a PSF-smoothed field
    # (2 x the PSF's variance per axis), 4 pi sigma_psf^2 = 2.27 FWHM^2 (px^2)
    beam = 2.27 * psf_cb**2
    ann_flag = np.zeros(n, np.int64)
    for j in range(n):
        pos = (float(x0[j]), float(y0[j]))
        anm = CircularAnnulus(pos, r_in=float(r_in[j]), r_out=float(r_out[j])).to_mask(
            method="center"
        )
        big, small = anm.get_overlap_slices((h, w))
        if big is None:  # annulus entirely off the frame
            ann_flag[j] |= FLAG_ANNULUS | FLAG_EDGE
            annuli.append(None)
            continue
        ys, xs = np.arange(big[0].start, big[0].stop), np.arange(big[1].start, big[1].stop)
        ok = (anm.data[small] > 0) & fin_all[big]
        # other clumps' apertures are left out of this clump's annulus
        for k in np.nonzero((d[j] < r_out[j] + o_r) & (d[j] > 1e-6))[0]:
            ok &= (xs[None, :] - x0[k]) ** 2 + (ys[:, None] - y0[k]) ** 2 > o_r[k] ** 2
        iy, ix = np.nonzero(ok)
        if iy.size < 10:
            ann_flag[j] |= FLAG_ANNULUS
            annuli.append(None)
            continue
        px, py = xs[ix].astype(float), ys[iy].astype(float)
        ann = data[:, big[0], big[1]][:, iy, ix]
        fit = _local_background(ann, px - pos[0], py - pos[1], cfg)
        # host texture: annulus scatter about the surface beyond the pixel noise (arms, knots)
        sky_var = var[:, big[0], big[1]][:, iy, ix].mean(axis=1)
        tex_var[:, j] = np.maximum(fit.sigma**2 - sky_var, 0.0)
        annuli.append((fit, px, py))

    for r_ap, weighting in zip(r_aps, weightings or ["aperture"] * len(r_aps)):
        flux, err = np.full((c, n), np.nan), np.full((c, n), np.nan)
        fl = ann_flag.copy()
        m = np.zeros((c, n, n))
        yv = np.zeros((c, n))
        vy = np.zeros((c, n))
        ok_rows = np.zeros(n, bool)
        for j in range(n):
            pos = (float(x0[j]), float(y0[j]))
            ap = CircularAperture(pos, r=float(r_ap[j]))
            apm = ap.to_mask(method="exact")
            abig, asmall = apm.get_overlap_slices((h, w))
            if abig is None:
                fl[j] |= FLAG_EDGE
                continue
            wts = apm.data[asmall]
            if float(wts.sum()) < 0.999 * ap.area:
                fl[j] |= FLAG_EDGE
            iy, ix = np.nonzero(wts > 0)
            px = (ix + abig[1].start).astype(float)
            py = (iy + abig[0].start).astype(float)
            pv = var[:, abig[0], abig[1]][:, iy, ix]
            # pixel weights per band: the aperture, or the clump model over the variance
            # (the matched filter, PSF photometry's optimal weights) inside it
            wv = np.tile(wts[iy, ix], (c, 1))
            if weighting == "model":
                wv = wv * model(j, px, py) / np.maximum(pv, 1e-30)
            yv[:, j] = np.einsum("cn,cn->c", data[:, abig[0], abig[1]][:, iy, ix], wv)
            vy[:, j] = np.einsum("cn,cn->c", pv, wv * wv)
            fit = annuli[j][0] if annuli[j] is not None else None
            if fit is not None:
                phi = wv @ _basis(px - pos[0], py - pos[1], fit.kind)
                yv[:, j] -= np.einsum("cp,cp->c", phi, fit.coef)
                vy[:, j] += fit.mean_variance(phi)
            vy[:, j] += tex_var[:, j] * beam[:, j] * np.einsum("cn,cn->c", wv, wv)
            # the model coefficients of every clump whose light reaches this aperture/annulus
            for k in near[j]:
                mk = np.einsum("cn,cn->c", model(k, px, py), wv)
                if fit is not None:
                    if (j, k) not in resp:
                        resp[j, k] = fit.response(model(k, *annuli[j][1:]))
                    mk -= np.einsum("cp,cp->c", phi, resp[j, k])
                m[:, j, k] = mk
            ok_rows[j] = True
        # flag blends, then solve the rows that were measured (others stay NaN)
        idx = np.nonzero(ok_rows)[0]
        if idx.size:
            sub = m[:, idx][:, :, idx]
            diag = np.abs(np.einsum("cii->ci", sub))
            off = np.abs(sub).sum(axis=2) - diag
            fl[idx] |= np.where(np.any(off > 0.1 * diag, axis=0), FLAG_BLENDED, 0)
            for bi in range(c):
                try:
                    inv = np.linalg.inv(sub[bi])
                except np.linalg.LinAlgError:  # degenerate: each clump on its own
                    inv = np.diag(1.0 / np.where(diag[bi] != 0, np.diag(sub[bi]), np.nan))
                flux[bi, idx] = inv @ yv[bi, idx]
                err[bi, idx] = np.sqrt((inv * inv) @ vy[bi, idx])
        yield flux, err, fl


# ----------------------------------------------------------------------------- truth comparison


def truth_photometry_table(
    root,
    *,
    config: PhotometryConfig | None = None,
    limit: int | None = None,
    reference_band: str = "r",
):
    """Measure a simulated clump set at its TRUE boxes and pair every object with its truth.

    Parameters
    ----------
    root : path
        Output of ``clumpdet simulate clumps`` (``annotations.json`` + ``images/``).
    config : PhotometryConfig, optional
    limit : int, optional
        Only the first ``limit`` images.
    reference_band : str
        Band of the ratio comparison (the simulator's ``flux_ratio`` is r-band).

    Returns
    -------
    astropy.table.Table
        One row per annotation: ``image_id, kind, snr, flux_true_<b>, flux_<b>, flux_err_<b>``,
        ``ratio_true, ratio`` (reference band; true ratio = clump / whole galaxy, i.e. disk +
        bulge + every labelled object) and ``host_true, host_flux``, plus ``seconds`` per image
        in ``meta["SECONDS"]``.
    """
    import json
    import time
    from pathlib import Path

    from astropy.table import Table

    from clumpdet.data.images import read_image

    root = Path(root)
    coco = json.loads((root / "annotations.json").read_text())
    by_img: dict[int, list] = {}
    for a in coco["annotations"]:
        by_img.setdefault(int(a["image_id"]), []).append(a)
    images = coco["images"][:limit] if limit else coco["images"]
    rows = []
    seconds = []
    for im in images:
        anns = by_img.get(int(im["id"]), [])
        if not anns:
            continue
        img = read_image(root / im["file_name"])
        boxes = np.array(
            [
                [
                    a["bbox"][0],
                    a["bbox"][1],
                    a["bbox"][0] + a["bbox"][2],
                    a["bbox"][1] + a["bbox"][3],
                ]
                for a in anns
            ],
            dtype=np.float64,
        )
        t0 = time.perf_counter()
        ph = measure_photometry(
            img.data,
            boxes,
            bands=img.bands,
            reference_band=reference_band,
            header=img.header,
            config=config,
        )
        seconds.append(time.perf_counter() - t0)
        host_dbulge = anns[0]["flux"][reference_band] / anns[0]["flux_ratio"]
        whole = host_dbulge + sum(a["flux"][reference_band] for a in anns)
        for j, a in enumerate(anns):
            row = {"image_id": int(im["id"]), "kind": a["kind"], "snr": float(a["snr"])}
            for b in img.bands:
                row[f"flux_true_{b}"] = float(a["flux"][b])
                row[f"flux_{b}"] = float(ph[f"flux_{b}"][j])
                row[f"flux_err_{b}"] = float(ph[f"flux_err_{b}"][j])
            row["host_true"] = whole
            row["host_flux"] = float(ph[f"host_flux_{reference_band}"][j])
            row["ratio_true"] = a["flux"][reference_band] / whole
            row["ratio"] = float(ph[f"flux_ratio_{reference_band}"][j])
            row["phot_flag"] = int(ph["phot_flag"][j])
            rows.append(row)
    t = Table(rows=rows)
    t.meta["SECONDS"] = float(np.median(seconds)) if seconds else float("nan")
    t.meta["REFBAND"] = reference_band
    return t
