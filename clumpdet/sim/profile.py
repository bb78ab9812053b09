"""Survey profiles: what a real frame looks like, measured, and a field simulation that matches it.

:func:`measure_profile` reads one real frame (any number of bands, one plane each) and measures,
per band:

- the **pixel scale** from the celestial WCS (``PIXSCALE``/``SECPIX`` cards, or the caller's
  value, else an assumed 0.263"/px recorded as ``pixel_scale_source: assumed``; only the PSF in
  pixels matters for detection, the arcsec scale only converts sizes);
- the **sky** level, its **gradient** (a plane fitted to ``sep.Background``) and the **noise**
  (MAD of the sky-subtracted pixels outside dilated source masks) with its **correlation** (the
  lag-1 noise autocorrelation along x and y, e.g. from resampling or stacking);
- the **PSF**: an elliptical Moffat fit to isolated, unsaturated, bright, compact sources (FWHM,
  beta, axis ratio; the median over the stellar locus);
- the **saturation** level (``SATURATE`` card, else a plateau of equal maximum pixels) and the
  gain (``GAIN`` card, else sky / noise^2 of a frame whose sky was not subtracted);
- **source counts** vs magnitude (sep, per 0.5 mag per arcmin^2) and the star share (sources
  whose half-light radius is within 15 % of the PSF's).

Magnitudes are instrumental: ``22.5 - 2.5 log10(flux in image units)``, i.e. the image units
are read as nanomaggies, so a simulation from the profile is written in the frame's own units and
the frame needs no calibration. :func:`profile_to_field_config` turns a profile into a
:class:`~clumpdet.sim.fields.config.FieldSimConfig`; :func:`save_profile` /
:func:`load_profile` keep it as YAML (``clumpdet simulate fields --like FRAME.fits`` writes
``profile.yaml``; ``--profile profile.yaml`` reuses it).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from clumpdet.errors import ConfigError, InputError
from clumpdet.units import ZERO_POINT

#: Pixel scale used when a frame has no celestial WCS and none is given (arcsec / px).
ASSUMED_PIXEL_SCALE = 0.263

#: Magnitude bin width of the source counts.
COUNT_BIN_MAG = 0.5


@dataclass
class BandProfile:
    """Measured properties of one band (units: the frame's pixels and image units).

    Attributes
    ----------
    band : str
        Band name.
    sky_level : float
        Median sky (0 for a sky-subtracted frame).
    sky_gradient : float
        Amplitude of the fitted sky plane across the frame (max - min), in noise sigmas.
    noise_sigma : float
        Per-pixel sky noise.
    noise_correlation : float
        Mean lag-1 autocorrelation of the noise along x and y (0 for white noise).
    psf_fwhm_px, psf_beta, psf_axis_ratio : float
        Elliptical Moffat PSF: FWHM (geometric mean of the axes, px), beta, minor/major.
    n_psf_stars : int
        Sources the PSF was measured on.
    saturation : float or None
        Saturation level above the sky (None: none seen).
    gain : float or None
        Counts (electrons) per image unit, when known or estimable.
    depth_5sigma : float
        5-sigma point-source magnitude (instrumental, see module docstring).
    """

    band: str
    sky_level: float
    sky_gradient: float
    noise_sigma: float
    noise_correlation: float
    psf_fwhm_px: float
    psf_beta: float
    psf_axis_ratio: float
    n_psf_stars: int
    saturation: float | None
    gain: float | None
    depth_5sigma: float


@dataclass
class SurveyProfile:
    """A frame's survey profile (see the module docstring).

    Attributes
    ----------
    source : str
        The frame it was measured on.
    width, height : int
        Frame size, px.
    pixel_scale : float
        Arcsec per pixel; ``pixel_scale_source`` says where it came from (wcs, header, given,
        assumed).
    bands : list of BandProfile
        One per plane.
    counts : dict
        ``mag`` (bin centres), ``n_per_arcmin2`` (per bin), ``n_stars_per_arcmin2``, over the
        reference (first) band; ``completeness_mag`` (the turnover), ``slope`` (of log10 N(m)
        below it), ``star_fraction``, ``brightest_mag``.
    galaxy_hlr_arcsec, galaxy_hlr_mag : float or None
        Median PSF-deconvolved half-light radius of the extended sources and their median mag.
    """

    source: str
    width: int
    height: int
    pixel_scale: float
    pixel_scale_source: str
    bands: list[BandProfile]
    counts: dict[str, Any] = field(default_factory=dict)
    galaxy_hlr_arcsec: float | None = None
    galaxy_hlr_mag: float | None = None

    @property
    def band_names(self) -> tuple[str, ...]:
        """Band of each plane."""
        return tuple(b.band for b in self.bands)


# --------------------------------------------------------------------------------------------
# measurements on one plane


def _mag(flux: np.ndarray | float) -> np.ndarray:
    f = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(f > 0, ZERO_POINT - 2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)


def sky_and_noise(plane: np.ndarray) -> dict[str, Any]:
    """Sky, gradient, noise and lag-1 noise correlation of one plane.

    Parameters
    ----------
    plane : ndarray, shape (H, W)
        One band, image units; non-finite pixels are ignored.

    Returns
    -------
    dict
        ``sub`` (sky-subtracted plane, float64), ``mask`` (source pixels, bool), ``sky_level``,
        ``sky_gradient`` (in sigmas), ``noise_sigma``, ``noise_correlation``.
    """
    import sep
    from scipy.ndimage import binary_dilation

    data = np.ascontiguousarray(plane, dtype=np.float64)
    bad = ~np.isfinite(data)
    if bad.all():
        raise InputError(None, "no finite pixel in the frame")
    if bad.any():
        data = np.where(bad, np.nanmedian(data), data)
    h, w = data.shape
    box = int(max(16, min(64, min(h, w) // 4)))
    bkg = sep.Background(data, mask=bad, bw=box, bh=box, fw=3, fh=3)
    back = bkg.back()
    sub = data - back
    rms0 = float(bkg.globalrms) or float(np.std(sub))
    objs, seg = sep.extract(sub, 2.0, err=rms0, minarea=3, segmentation_map=True, mask=bad)
    mask = binary_dilation(seg > 0, iterations=3) | bad
    good = sub[~mask]
    if good.size < 100:
        good = sub[~bad]
    med = float(np.median(good))
    sigma = float(1.4826 * np.median(np.abs(good - med)))
    r = np.where(mask, np.nan, sub - med)
    rho = []
    for a, b in ((r[:, 1:], r[:, :-1]), (r[1:, :], r[:-1, :])):
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() > 50:
            rho.append(float(np.mean(a[ok] * b[ok]) / np.mean(a[ok] ** 2)))
    yy, xx = np.mgrid[0:h, 0:w]
    design = np.stack([np.ones(h * w), xx.ravel() / w, yy.ravel() / h], axis=1)
    coef, *_ = np.linalg.lstsq(design, back.ravel(), rcond=None)
    grad = float(abs(coef[1]) + abs(coef[2]))
    return {
        "sub": sub,
        "mask": mask,
        "n_objects": len(objs),
        "sky_level": float(np.median(back)),
        "sky_gradient": grad / sigma if sigma > 0 else 0.0,
        "noise_sigma": sigma,
        "noise_correlation": float(np.clip(np.mean(rho), 0.0, 0.7)) if rho else 0.0,
    }


def _moffat(p: np.ndarray, xx: np.ndarray, yy: np.ndarray) -> np.ndarray:
    amp, x0, y0, fwhm, q, theta, beta, bg = p
    alpha = fwhm / (2 * math.sqrt(2 ** (1 / beta) - 1))
    c, s = math.cos(theta), math.sin(theta)
    u = (xx - x0) * c + (yy - y0) * s
    v = -(xx - x0) * s + (yy - y0) * c
    # axes: alpha / sqrt(q) along u and alpha * sqrt(q) along v (geometric mean alpha)
    r2 = (u**2 * q + v**2 / q) / alpha**2
    return amp * (1 + r2) ** (-beta) + bg


def fit_moffat(stamp: np.ndarray, *, guess_fwhm: float) -> tuple[float, float, float] | None:
    """Elliptical Moffat fit to one star stamp: ``(fwhm_px, beta, axis_ratio)`` or None."""
    from scipy.optimize import least_squares

    h, w = stamp.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    yy += 0.5
    xx += 0.5
    p0 = np.array([stamp.max(), w / 2, h / 2, guess_fwhm, 0.95, 0.1, 3.0, 0.0])
    lo = [0, w / 2 - 3, h / 2 - 3, 0.5, 0.3, -math.pi, 1.2, -np.inf]
    hi = [np.inf, w / 2 + 3, h / 2 + 3, max(h, w), 1.0, math.pi, 12.0, np.inf]
    try:
        res = least_squares(
            lambda p: (_moffat(p, xx, yy) - stamp).ravel(), p0, bounds=(lo, hi), x_scale="jac"
        )
    except (ValueError, np.linalg.LinAlgError):
        return None
    if not res.success:
        return None
    _, _, _, fwhm, q, _, beta, _ = res.x
    return float(fwhm), float(beta), float(q)


def measure_psf(
    sub: np.ndarray, *, noise_sigma: float, saturation: float | None = None, snr_min: float = 30.0
) -> dict[str, Any]:
    """PSF FWHM (px), Moffat beta and axis ratio from the isolated bright compact sources.

    Candidates: sep sources with S/N > ``snr_min``, flags 0, peak below 0.8 x ``saturation``,
    no other source within 4 first-guess FWHM, away from the edges. Each gets an elliptical
    Moffat fit; the stellar locus is the set of fits within 20 % of the 25th-percentile FWHM
    (galaxies are larger, never smaller), and the medians over it are returned, the FWHM with
    the pixel response (a box of 1 px) removed in quadrature.
    """
    import sep

    data = np.ascontiguousarray(sub, dtype=np.float64)
    objs = sep.extract(data, 5.0, err=noise_sigma, minarea=5)
    out = {"psf_fwhm_px": math.nan, "psf_beta": math.nan, "psf_axis_ratio": math.nan, "n": 0}
    if len(objs) == 0:
        return out
    guess = float(np.median(2.3548 * np.sqrt(objs["a"] * objs["b"])))
    guess = max(guess, 1.0)
    snr = objs["flux"] / (noise_sigma * np.sqrt(np.maximum(objs["npix"], 1)))
    xy = np.stack([objs["x"], objs["y"]], axis=1)
    d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
    np.fill_diagonal(d, np.inf)
    half = math.ceil(3 * guess) + 2
    h, w = data.shape
    ok = (snr > snr_min) & (objs["flag"] == 0) & (d.min(axis=1) > 4 * guess)
    ok &= (
        (xy[:, 0] > half)
        & (xy[:, 0] < w - half - 1)
        & (xy[:, 1] > half)
        & (xy[:, 1] < h - half - 1)
    )
    if saturation is not None:
        ok &= objs["peak"] < 0.8 * saturation
    idx = np.flatnonzero(ok)
    idx = idx[np.argsort(-snr[idx])][:60]
    fits = []
    for i in idx:
        cx, cy = round(float(objs["x"][i])), round(float(objs["y"][i]))
        stamp = data[cy - half : cy + half + 1, cx - half : cx + half + 1]
        f = fit_moffat(stamp, guess_fwhm=guess)
        if f is not None:
            fits.append(f)
    if not fits:
        return out
    arr = np.array(fits)
    ref = np.percentile(arr[:, 0], 25)
    loc = arr[np.abs(arr[:, 0] - ref) <= 0.2 * ref]
    if len(loc) == 0:
        loc = arr
    # the fit sees PSF x pixel: remove the pixel's (box, variance 1/12 px^2) Gaussian FWHM
    fit_fwhm = float(np.median(loc[:, 0]))
    pix = 2.3548 * math.sqrt(1.0 / 12.0)
    return {
        "psf_fwhm_px": math.sqrt(max(fit_fwhm**2 - pix**2, 0.25 * fit_fwhm**2)),
        "psf_beta": float(np.median(loc[:, 1])),
        "psf_axis_ratio": float(np.median(loc[:, 2])),
        "n": len(loc),
    }


def _saturation(plane: np.ndarray, header: Any, sky: float) -> float | None:
    if header is not None and "SATURATE" in header:
        try:
            return float(header["SATURATE"]) - sky
        except (TypeError, ValueError):
            pass
    finite = plane[np.isfinite(plane)]
    top = float(finite.max())
    n_at_top = int(np.sum(finite >= top - 1e-4 * abs(top)))
    return top - sky if n_at_top >= 4 else None


def _pixel_scale(header: Any, given: float | None) -> tuple[float, str]:
    if given is not None:
        if not (given > 0):
            raise ConfigError(f"pixel_scale must be > 0, got {given!r}")
        return float(given), "given"
    if header is not None:
        from astropy.wcs import WCS
        from astropy.wcs.utils import proj_plane_pixel_scales

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                wcs = WCS(header).celestial
                if wcs.has_celestial:
                    s = proj_plane_pixel_scales(wcs) * 3600.0
                    return float(np.sqrt(s[0] * s[1])), "wcs"
            except Exception:
                pass
        for key in ("PIXSCALE", "SECPIX", "PIXSCAL1"):
            if key in header:
                try:
                    return float(header[key]), "header"
                except (TypeError, ValueError):
                    pass
    return ASSUMED_PIXEL_SCALE, "assumed"


# --------------------------------------------------------------------------------------------
# the profile


def measure_profile(
    frame: str | Path,
    *,
    bands: tuple[str, ...] | list[str] | None = None,
    pixel_scale: float | None = None,
) -> SurveyProfile:
    """Measure a :class:`SurveyProfile` from a real frame.

    Parameters
    ----------
    frame : path
        FITS file: a 2-D image (one band) or a ``(C, H, W)`` cube.
    bands : sequence of str, optional
        Band of each plane (default: the ``FILTER`` card's first letter if it names one of
        g, r, i, z, else r for one plane; g, r, i, z order for several).
    pixel_scale : float, optional
        Arcsec per pixel; default from the WCS or header (else assumed, see module docstring).

    Raises
    ------
    InputError
        Unreadable file, wrong band count, no finite pixel.
    """
    from astropy.io import fits

    from clumpdet.data.images import read_image

    path = Path(frame)
    img = read_image(path, nan_policy="keep") if _read_ok(path) else None
    if img is None:
        raise InputError(path, "not a readable FITS image")
    cube = np.asarray(img.data, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = fits.getheader(path)
    names = _band_names(bands, cube.shape[0], header, path)
    scale, scale_src = _pixel_scale(header, pixel_scale)
    gain_card = header.get("GAIN") if header is not None else None
    band_profiles = []
    ref_sub = None
    ref_sigma = ref_fwhm = math.nan
    for k, b in enumerate(names):
        sn = sky_and_noise(cube[k])
        sat = _saturation(cube[k], header, sn["sky_level"])
        psf = measure_psf(sn["sub"], noise_sigma=sn["noise_sigma"], saturation=sat)
        fwhm = psf["psf_fwhm_px"]
        if not math.isfinite(fwhm):
            raise InputError(path, f"band {b}: no isolated bright compact source to measure a PSF")
        gain = None
        if gain_card is not None:
            try:
                gain = float(gain_card)
            except (TypeError, ValueError):
                gain = None
        if gain is None and sn["sky_level"] > 5 * sn["noise_sigma"]:
            # an unsubtracted, sky-limited frame: Poisson sky gives var = sky / gain
            gain = sn["sky_level"] / sn["noise_sigma"] ** 2
        n_eff = 4 * math.pi * (fwhm / 2.3548) ** 2
        depth = float(_mag(5 * sn["noise_sigma"] * math.sqrt(n_eff)))
        band_profiles.append(
            BandProfile(
                band=b,
                sky_level=sn["sky_level"],
                sky_gradient=sn["sky_gradient"],
                noise_sigma=sn["noise_sigma"],
                noise_correlation=sn["noise_correlation"],
                psf_fwhm_px=fwhm,
                psf_beta=psf["psf_beta"],
                psf_axis_ratio=psf["psf_axis_ratio"],
                n_psf_stars=int(psf["n"]),
                saturation=sat,
                gain=gain,
                depth_5sigma=depth,
            )
        )
        if k == 0:
            ref_sub, ref_sigma, ref_fwhm = sn["sub"], sn["noise_sigma"], fwhm
    h, w = cube.shape[1:]
    counts, hlr, hlr_mag = _source_counts(ref_sub, ref_sigma, ref_fwhm, scale, (h, w))
    return SurveyProfile(
        source=str(path),
        width=int(w),
        height=int(h),
        pixel_scale=scale,
        pixel_scale_source=scale_src,
        bands=band_profiles,
        counts=counts,
        galaxy_hlr_arcsec=hlr,
        galaxy_hlr_mag=hlr_mag,
    )


def _read_ok(path: Path) -> bool:
    if not path.is_file():
        raise InputError(path, "missing file")
    return True


def _band_names(bands: Any, n: int, header: Any, path: Path) -> tuple[str, ...]:
    from clumpdet.sim.fields.config import FIELD_BANDS

    if bands:
        names = tuple(str(b) for b in bands)
        if len(names) != n:
            raise InputError(path, f"{n} plane(s) but {len(names)} band name(s) {list(names)}")
    elif n == 1:
        filt = str(header.get("FILTER", "") if header is not None else "").strip().lower()
        names = (filt[0],) if filt[:1] in FIELD_BANDS else ("r",)
    elif n <= len(FIELD_BANDS):
        names = FIELD_BANDS[:n] if n < 3 else ("g", "r", "z", "i")[:n]
    else:
        raise InputError(path, f"{n} planes: name their bands (--bands)")
    bad = [b for b in names if b not in FIELD_BANDS]
    if bad or len(set(names)) != len(names):
        raise InputError(
            path, f"bands must be distinct names from {list(FIELD_BANDS)}, got {list(names)}"
        )
    return names


def _source_counts(
    sub: np.ndarray, sigma: float, fwhm: float, scale: float, shape: tuple[int, int]
) -> tuple[dict[str, Any], float | None, float | None]:
    import sep

    data = np.ascontiguousarray(sub, dtype=np.float64)
    objs = sep.extract(data, 1.5, err=sigma, minarea=5, filter_kernel=None)
    area = shape[0] * shape[1] * scale**2 / 3600.0
    if len(objs) == 0:
        return {"mag": [], "n_per_arcmin2": [], "n_stars_per_arcmin2": []}, None, None
    flux, _, _ = sep.sum_circle(data, objs["x"], objs["y"], 2.0 * fwhm, err=sigma)
    r50, _ = sep.flux_radius(data, objs["x"], objs["y"], np.full(len(objs), 4.0 * fwhm), 0.5)
    snr = flux / (sigma * math.sqrt(math.pi) * 2.0 * fwhm)
    keep = (flux > 0) & (snr >= 5)
    mag = _mag(flux[keep])
    r50 = r50[keep]
    psf_r50 = 0.5 * fwhm * 1.02  # a Moffat(3.5) star: r50 ~ 0.51 FWHM
    star = np.abs(r50 - psf_r50) < 0.15 * psf_r50
    if mag.size == 0:
        return {"mag": [], "n_per_arcmin2": [], "n_stars_per_arcmin2": []}, None, None
    edges = np.arange(np.floor(mag.min() * 2) / 2, np.ceil(mag.max() * 2) / 2 + 0.5, COUNT_BIN_MAG)
    n_all, _ = np.histogram(mag, edges)
    n_star, _ = np.histogram(mag[star], edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    peak = int(np.argmax(n_all))
    comp = float(centres[peak])
    slope = math.nan
    sel = (n_all > 0) & (np.arange(len(n_all)) <= peak)
    if sel.sum() >= 3:
        slope = float(np.polyfit(centres[sel], np.log10(n_all[sel]), 1)[0])
    counts = {
        "bin_mag": COUNT_BIN_MAG,
        "mag": [round(float(c), 3) for c in centres],
        "n_per_arcmin2": [round(float(v) / area, 4) for v in n_all],
        "n_stars_per_arcmin2": [round(float(v) / area, 4) for v in n_star],
        "completeness_mag": comp,
        "slope": slope,
        "n_sources": int(mag.size),
        "star_fraction": float(star[mag <= comp].mean()) if np.any(mag <= comp) else 0.0,
        "brightest_mag": float(np.nanmin(mag)),
        "area_arcmin2": area,
    }
    ext = ~star & (mag <= comp) & np.isfinite(r50)
    hlr = hlr_mag = None
    if ext.sum() >= 5:
        r = np.sqrt(np.maximum(r50[ext] ** 2 - psf_r50**2, (0.3 * psf_r50) ** 2))
        hlr, hlr_mag = float(np.median(r) * scale), float(np.median(mag[ext]))
    return counts, hlr, hlr_mag


# --------------------------------------------------------------------------------------------
# profile -> simulation config


def profile_to_field_config(
    profile: SurveyProfile,
    *,
    tile: int = 128,
    artefacts: bool = True,
    base: Any = None,
) -> Any:
    """A :class:`~clumpdet.sim.fields.config.FieldSimConfig` that simulates tiles like the frame.

    Taken from the profile: pixel scale, bands, PSF (Moffat FWHM with a 10 % scatter, beta,
    chromatic factors), noise (depth from the measured sigma, the noise correlation, the gain),
    galaxy and star densities and count slopes (extrapolated from the measured counts over the
    simulated magnitude range, which reaches 1.5 mag below the 5-sigma depth), galaxy sizes and,
    when ``artefacts``, the saturation level with bleed trails, the sky gradient and a few cosmic
    rays and bad columns (their rates are not measurable from one frame: generic small values).
    Everything else comes from ``base`` (default ``FieldSimConfig()``).
    """
    from clumpdet.sim.fields.config import FieldSimConfig, validate_field_config

    cfg = base if base is not None else FieldSimConfig()
    ref = profile.bands[0]
    scale = profile.pixel_scale
    fwhm = ref.psf_fwhm_px * scale
    beta = float(np.clip(ref.psf_beta if math.isfinite(ref.psf_beta) else 3.5, 1.5, 10.0))
    band_factor = dict(cfg.psf.band_factor)
    for b in profile.bands:
        band_factor[b.band] = b.psf_fwhm_px / ref.psf_fwhm_px
    depth = dict(cfg.noise.depth_5sigma)
    for b in profile.bands:
        # depth at the config's fwhm_mean in that band: sigma = f5 / (5 sqrt(n_eff(fwhm_mean)))
        n_eff = 4 * math.pi * (ref.psf_fwhm_px / 2.3548) ** 2
        depth[b.band] = float(_mag(5 * b.noise_sigma * math.sqrt(n_eff)))
    gains = [b.gain for b in profile.bands if b.gain]
    gain = float(np.clip(np.median(gains), 0.05, 1e6)) if gains else cfg.noise.gain
    psf = replace(
        cfg.psf,
        profile="moffat",
        moffat_beta=beta,
        fwhm_mean=fwhm,
        fwhm_sd=0.1 * fwhm,
        fwhm_min=0.75 * fwhm,
        fwhm_max=1.3 * fwhm,
        band_factor=band_factor,
    )
    d_ref = depth[ref.band]
    c = profile.counts
    gal_max = d_ref + 1.5
    bright = float(c.get("brightest_mag", d_ref - 8))
    comp = float(c.get("completeness_mag", d_ref))
    g_slope = cfg.galaxies.count_slope
    s_slope = cfg.stars.count_slope
    star_frac = float(c.get("star_fraction", 0.2))
    n_obs = 0.0
    if c.get("mag"):
        m = np.asarray(c["mag"])
        n = np.asarray(c["n_per_arcmin2"])  # per arcmin^2 in each bin
        n_obs = float(n[m <= comp].sum())
    gal_min = min(bright, d_ref - 6.0)
    star_min = gal_min - 1.5

    def extrapolate(n_seen: float, slope: float, lo: float, hi: float) -> float:
        seen = 10 ** (slope * comp) - 10 ** (slope * (bright - 0.25))
        want = 10 ** (slope * hi) - 10 ** (slope * lo)
        return n_seen * want / seen if seen > 0 else 0.0

    g_density = extrapolate(n_obs * (1 - star_frac), g_slope, gal_min, gal_max)
    s_density = extrapolate(n_obs * star_frac, s_slope, star_min, d_ref + 1.0)
    # one small frame gives noisy counts: keep within a factor 3 of generic deep-field values
    g_density = float(np.clip(g_density, 10.0, 150.0))
    s_density = float(np.clip(s_density, 2.0, 60.0))
    hlr22 = cfg.galaxies.hlr_at_22
    if profile.galaxy_hlr_arcsec and profile.galaxy_hlr_mag is not None:
        # the measured median size at the median magnitude (clipped to 0.3 - 3 PSF FWHM, one
        # small frame is noisy), carried to the config's reference magnitude 22
        hlr_med = float(np.clip(profile.galaxy_hlr_arcsec, 0.3 * fwhm, 3.0 * fwhm))
        hlr22 = hlr_med * 10 ** (cfg.galaxies.hlr_mag_slope * (profile.galaxy_hlr_mag - 22.0))
    bands = profile.band_names
    image = replace(cfg.image, width=int(tile), height=int(tile), pixel_scale=scale, bands=bands)
    noise = replace(
        cfg.noise,
        depth_5sigma=depth,
        gain=gain,
        correlation=float(np.clip(ref.noise_correlation, 0.0, 0.6)),
    )
    galaxies = replace(
        cfg.galaxies,
        density=g_density,
        mag_min=gal_min,
        mag_max=gal_max,
        hlr_at_22=hlr22,
        hlr_min=min(cfg.galaxies.hlr_min, 0.2 * fwhm),
        hlr_max=float(min(cfg.galaxies.hlr_max, 6.0 * fwhm)),
    )
    stars = replace(
        cfg.stars, density=s_density, mag_min=star_min, mag_max=d_ref + 1.0, count_slope=s_slope
    )
    truth = replace(cfg.truth, reference_band=ref.band)
    arte = cfg.artefacts
    if artefacts:
        arte = replace(
            arte,
            cosmic_rays_per_mpix=20.0,
            bad_columns_per_kpix=0.5,
            saturation=float(ref.saturation) if ref.saturation else 0.0,
            gradient_sigma=float(np.clip(max(ref.sky_gradient, 0.5), 0.0, 20.0)),
        )
    out = replace(
        cfg,
        image=image,
        psf=psf,
        noise=noise,
        galaxies=galaxies,
        stars=stars,
        truth=truth,
        artefacts=arte,
    )
    return validate_field_config(out, where=f"profile of {profile.source}")


# --------------------------------------------------------------------------------------------
# YAML


def save_profile(profile: SurveyProfile, path: str | Path) -> Path:
    """Write ``profile`` as YAML (atomically)."""
    import yaml

    from clumpdet.utils import atomic_write

    d = asdict(profile)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        fh.write(
            "# clumpdet survey profile (clumpdet.sim.profile); magnitudes: 22.5 - 2.5 log10(flux)\n"
        )
        yaml.safe_dump(_plain(d), fh, sort_keys=False)
    return path


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else round(float(v), 6)
    if isinstance(v, np.integer):
        return int(v)
    return v


def load_profile(path: str | Path) -> SurveyProfile:
    """Read a profile written by :func:`save_profile`.

    Raises
    ------
    InputError
        Missing file, not YAML, or missing/unknown keys.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "missing profile file")
    try:
        d = yaml.safe_load(path.read_text())
        bands = [BandProfile(**b) for b in d.pop("bands")]
        return SurveyProfile(bands=bands, **d)
    except (yaml.YAMLError, TypeError, KeyError, AttributeError) as exc:
        raise InputError(path, f"not a clumpdet survey profile ({exc})") from None


def with_overrides(cfg: Any, overrides: Any) -> Any:
    """``cfg`` with ``key=value`` overrides applied and validated (as ``--set``)."""
    import tempfile

    if not overrides:
        return cfg

    from clumpdet.config import save_config, to_dict
    from clumpdet.sim.fields.config import load_field_config

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "cfg.yaml"
        save_config(to_dict(cfg), p)
        return load_field_config(p, overrides)
