"""GalSim scenes of clumpy disk galaxies with exact truth (in memory).

One scene is an SDSS-like ``g, r, i`` cutout (default 200 x 200 px at 0.396"/px, nanomaggies,
sky-subtracted) of a host galaxy -- an inclined exponential disk plus a truncated de Vaucouleurs
bulge -- carrying zero or more labelled objects:

* class 1, kind ``"clump"``: compact blue star-forming knots (Gaussian, intrinsic FWHM 0-1"),
  placed in the disk plane following the disk light and projected with the host's inclination;
* class 2 (odd clump), kind ``"star"`` (a foreground star: the PSF, stellar-locus colours) or
  ``"background_galaxy"`` (a small, redder Sersic galaxy), projected onto the host the same way.

Everything is drawn by a pure function of ``(config, seed)``: parameters come from a NumPy
``Generator`` and the noise from GalSim's own RNG, both seeded from two independent sub-streams of
``numpy.random.SeedSequence(seed)``.

Truth definitions
-----------------
Box rule
    A square box centred on the object's true centroid ``(x, y)`` (pixel convention of
    docs/conventions.md: the centre of pixel ``[j, i]`` is ``(i + 0.5, j + 0.5)``) with side
    ``clip(k * FWHM_eff * s, min_side, max_side)`` pixels, where
    ``FWHM_eff = sqrt(FWHM_psf,r^2 + (2 * hlr)^2) / pixel_scale`` (``hlr`` the intrinsic
    half-light radius; ``2 * hlr`` is exactly the FWHM of a Gaussian clump, 0 for a star),
    ``k = box.fwhm_multiple`` and ``s ~ LogNormal(0, box.scatter)`` mimics the scatter of
    volunteer-drawn boxes. The box is then clipped to the image. Objects whose centre would fall
    outside the image (or closer than ``scene.min_separation`` PSF FWHMs to another object) are
    re-drawn, and dropped after ``scene.max_tries`` attempts.
S/N
    The matched-filter (profile-weighted) signal-to-noise of the object's own noiseless r-band
    light ``m``: ``snr = sqrt(sum(m**2 / var))`` over the object's pixels, where ``var`` is the
    per-pixel noise variance actually used for the image (sky and read noise, plus the shot noise
    of all sources when ``noise.poisson`` is on). It is the S/N an optimal detector that knew the
    object's profile, and nothing about the host, could reach; crowding by the host is not in it.
Flux ratio
    The object's total r-band flux over the host's total r-band flux (disk plus bulge).
Flux
    The object's total flux per band in nanomaggies (including any light falling outside the
    frame).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import galsim
import numpy as np
from astropy.wcs import WCS
from scipy.signal import fftconvolve

from clumpdet.data.fits import make_wcs
from clumpdet.sim.clumps.config import SIM_BANDS, ClumpSimConfig, validate_sim_config
from clumpdet.sim.common import (
    GSPARAMS,
    add_gaussian_noise,
    as_seed_sequence,
    draw_unit,
    galsim_seed,
    loguniform,
    psf_kernel,
    psf_profile,
    single_threaded_galsim,
    stamp_slices,
    substream,
)
from clumpdet.units import ZERO_POINT

#: Label (COCO category id) of each object kind.
KIND_LABELS: dict[str, int] = {"clump": 1, "star": 2, "background_galaxy": 2, "odd_clump": 2}

#: Half-light radius of an exponential profile in units of its scale length.
_EXP_HLR = 1.678346990016661

# Inverse CDF of the exponential disk's light in radius, r/h ~ Gamma(2): F(x) = 1 - (1 + x) e^-x.
_GAMMA2_X = np.linspace(0.0, 30.0, 6001)
_GAMMA2_CDF = 1.0 - (1.0 + _GAMMA2_X) * np.exp(-_GAMMA2_X)

#: Object stamps and PSF kernels extend this many FWHM from the centre (Moffat 3.5: >99.9% flux).
_STAMP_FWHM = 5.0

_GSPARAMS = GSPARAMS


@dataclass(frozen=True)
class SimObject:
    """Truth of one labelled object (a box).

    Attributes
    ----------
    kind : str
        ``"clump"``, ``"star"`` or ``"background_galaxy"``.
    label : int
        1 (clump) or 2 (odd clump).
    x, y : float
        True centroid, pixels (docs/conventions.md).
    flux : dict of str to float
        Total flux per output band, nanomaggies.
    flux_ratio : float
        Object / host total flux in r.
    snr : float
        Matched-filter S/N in r (module docstring).
    hlr : float
        Intrinsic half-light radius, arcsec (0 for stars).
    fwhm_eff : float
        Effective (PSF-convolved) r-band FWHM used by the box rule, pixels.
    box_side : float
        Box side before clipping to the image, pixels.
    gr, ri : float
        Colours g-r and r-i, magnitudes.
    sersic_n : float or None
        Sersic index of a background galaxy, else None.
    """

    kind: str
    label: int
    x: float
    y: float
    flux: dict[str, float]
    flux_ratio: float
    snr: float
    hlr: float
    fwhm_eff: float
    box_side: float
    gr: float
    ri: float
    sersic_n: float | None = None


@dataclass(frozen=True)
class HostTruth:
    """Parameters of the host galaxy.

    Attributes
    ----------
    x, y : float
        Centre, pixels (docs/conventions.md).
    mag_r : float
        Total r-band magnitude (22.5 - 2.5 log10 flux).
    flux : dict of str to float
        Total flux per output band, nanomaggies.
    hlr : float
        Disk half-light radius (face-on), arcsec.
    mu_e : float
        r-band surface brightness parameter, mag/arcsec^2 (``config.HostConfig``).
    axis_ratio, position_angle : float
        Disk axis ratio (cos inclination) and position angle (degrees from +x towards +y).
    bulge_fraction, bulge_hlr, bulge_axis_ratio : float
        r-band bulge-to-total ratio, bulge half-light radius (arcsec), bulge axis ratio.
    disk_gr, disk_ri, bulge_gr, bulge_ri : float
        Colours, magnitudes.
    morphology, r90, n_knots, n_neighbours, n_stars : optional
        Realistic population only: host type (``HOST_TYPES``), Petrosian R90 (arcsec), number
        of unlabelled knots, field galaxies and stars on the canvas.
    """

    x: float
    y: float
    mag_r: float
    flux: dict[str, float]
    hlr: float
    mu_e: float
    axis_ratio: float
    position_angle: float
    bulge_fraction: float
    bulge_hlr: float
    bulge_axis_ratio: float
    disk_gr: float
    disk_ri: float
    bulge_gr: float
    bulge_ri: float
    morphology: str | None = None
    r90: float | None = None
    n_knots: int | None = None
    n_neighbours: int | None = None
    n_stars: int | None = None


@dataclass
class ClumpScene:
    """One simulated image with its truth.

    Attributes
    ----------
    image : ndarray, shape (C, H, W), float32
        Sky-subtracted image with noise, nanomaggies per pixel.
    bands : tuple of str
        Band of each plane.
    boxes : ndarray, shape (N, 4), float32
        Truth boxes ``xyxy`` in pixels, clipped to the image; row ``k`` belongs to ``objects[k]``.
    labels : ndarray, shape (N,), int64
        1 clump, 2 odd clump.
    objects : tuple of SimObject
        Per-box truth (kind, centre, flux, flux ratio, S/N, sizes).
    host : HostTruth
        Host galaxy parameters.
    psf_fwhm : float
        r-band PSF FWHM, arcsec.
    psf_fwhm_bands : dict of str to float
        PSF FWHM per output band, arcsec.
    noise_sigma : dict of str to float
        Sky(+read)-noise sigma per pixel per output band, nanomaggies (the background level;
        shot noise of the sources comes on top when ``noise.poisson`` is on).
    pixel_scale : float
        Arcsec per pixel.
    wcs : astropy.wcs.WCS
        Celestial TAN WCS of the image.
    image_id : int
        Identifier carried into COCO files.
    components : ndarray, shape (N, C, H, W), float32, or None
        Noiseless image of each object (``return_components=True`` only).
    host_model : ndarray, shape (C, H, W), float32, or None
        Noiseless host image (``return_components=True`` only; in the realistic population it
        includes the unlabelled knots and neighbours).
    canvas : namespace or None
        Realistic population only: the whole simulated canvas the FITS frame is the central crop
        of, for the colour writer: ``cube`` (3, S, S) float32 noisy g, r, i in nanomaggies,
        ``origin`` (x, y) of the FITS frame in it, ``sigma`` (3,) sky sigma, ``host_xy`` host
        centre (canvas px), ``r90`` host Petrosian R90 (arcsec).
    """

    image: np.ndarray
    bands: tuple[str, ...]
    boxes: np.ndarray
    labels: np.ndarray
    objects: tuple[SimObject, ...]
    host: HostTruth
    psf_fwhm: float
    psf_fwhm_bands: dict[str, float]
    noise_sigma: dict[str, float]
    pixel_scale: float
    wcs: WCS
    image_id: int = 0
    components: np.ndarray | None = None
    host_model: np.ndarray | None = None
    canvas: Any = None

    @property
    def is_empty(self) -> bool:
        """True when the image has no labelled objects."""
        return len(self.objects) == 0


# --------------------------------------------------------------------------------------------
# parameter draws (NumPy only)


def _band_fluxes(flux_r: float, gr: float, ri: float) -> dict[str, float]:
    return {
        "g": flux_r * 10 ** (-0.4 * gr),
        "r": flux_r,
        "i": flux_r * 10 ** (0.4 * ri),
    }


@dataclass
class _Params:
    fwhm: dict[str, float]  # PSF FWHM per band (all SIM_BANDS), arcsec
    host: dict[str, Any]
    objects: list[dict[str, Any]]
    ra: float
    dec: float


def _draw_host(cfg: ClumpSimConfig, rng: np.random.Generator) -> dict[str, Any]:
    hc, im = cfg.host, cfg.image
    hlr = hc.hlr_median * math.exp(hc.hlr_sigma * rng.standard_normal())
    hlr = float(np.clip(hlr, hc.hlr_min, hc.hlr_max))
    mu_e = float(rng.uniform(hc.mu_e_min, hc.mu_e_max))
    mag_r = mu_e - 2.5 * math.log10(2.0 * math.pi * hlr**2)
    q = float(rng.uniform(hc.axis_ratio_min, 1.0))
    pa = float(rng.uniform(0.0, math.pi))
    bf = float(rng.uniform(hc.bulge_fraction_min, hc.bulge_fraction_max))
    bulge_hlr = hlr * float(rng.uniform(hc.bulge_hlr_ratio_min, hc.bulge_hlr_ratio_max))
    bulge_q = float(rng.uniform(hc.bulge_axis_ratio_min, 1.0))
    dx, dy = rng.normal(0.0, hc.offset_sd, size=2) / im.pixel_scale
    disk_gr = float(rng.uniform(hc.disk_gr_min, hc.disk_gr_max))
    disk_ri = float(rng.uniform(hc.disk_ri_min, hc.disk_ri_max))
    bulge_gr = float(rng.uniform(hc.bulge_gr_min, hc.bulge_gr_max))
    bulge_ri = float(rng.uniform(hc.bulge_ri_min, hc.bulge_ri_max))
    flux_r = 10 ** (-0.4 * (mag_r - ZERO_POINT))
    disk = _band_fluxes((1.0 - bf) * flux_r, disk_gr, disk_ri)
    bulge = _band_fluxes(bf * flux_r, bulge_gr, bulge_ri)
    return {
        "x": im.width / 2.0 + float(dx),
        "y": im.height / 2.0 + float(dy),
        "mag_r": mag_r,
        "flux_r": flux_r,
        "disk_flux": disk,
        "bulge_flux": bulge,
        "hlr": hlr,
        "mu_e": mu_e,
        "q": q,
        "pa": pa,
        "bf": bf,
        "bulge_hlr": bulge_hlr,
        "bulge_q": bulge_q,
        "disk_gr": disk_gr,
        "disk_ri": disk_ri,
        "bulge_gr": bulge_gr,
        "bulge_ri": bulge_ri,
    }


def _draw_object(
    cfg: ClumpSimConfig, rng: np.random.Generator, kind: str, host: dict[str, Any], fwhm_r: float
) -> dict[str, Any]:
    """Photometric and size parameters of one object (position is drawn separately)."""
    sersic_n = None
    shape_q, shape_beta = 1.0, 0.0
    if kind in ("clump", "odd_clump"):
        c = cfg.clumps
        ratio = loguniform(rng, c.flux_ratio_min, c.flux_ratio_max)
        hlr = 0.5 * float(rng.uniform(c.fwhm_min, c.fwhm_max))
        gr = float(rng.uniform(c.gr_min, c.gr_max))
        ri = float(rng.uniform(c.ri_min, c.ri_max))
    elif kind == "star":
        o = cfg.odd_clumps
        ratio = loguniform(rng, o.star_flux_ratio_min, o.star_flux_ratio_max)
        hlr = 0.0
        gr = float(rng.uniform(o.star_gr_min, o.star_gr_max))
        ri = o.star_ri_slope * gr + o.star_ri_offset + o.star_ri_scatter * rng.standard_normal()
        ri = float(ri)
    else:
        o = cfg.odd_clumps
        ratio = loguniform(rng, o.galaxy_flux_ratio_min, o.galaxy_flux_ratio_max)
        hlr = float(rng.uniform(o.galaxy_hlr_min, o.galaxy_hlr_max))
        sersic_n = float(o.galaxy_sersic_n[int(rng.integers(len(o.galaxy_sersic_n)))])
        shape_q = float(rng.uniform(o.galaxy_axis_ratio_min, 1.0))
        shape_beta = float(rng.uniform(0.0, math.pi))
        gr = float(rng.uniform(o.galaxy_gr_min, o.galaxy_gr_max))
        ri = float(rng.uniform(o.galaxy_ri_min, o.galaxy_ri_max))
    b = cfg.box
    fwhm_eff = math.hypot(fwhm_r, 2.0 * hlr) / cfg.image.pixel_scale
    side = b.fwhm_multiple * fwhm_eff * math.exp(b.scatter * rng.standard_normal())
    side = float(np.clip(side, b.min_side, b.max_side))
    return {
        "kind": kind,
        "label": KIND_LABELS[kind],
        "flux_ratio": ratio,
        "flux": _band_fluxes(ratio * host["flux_r"], gr, ri),
        "hlr": hlr,
        "sersic_n": sersic_n,
        "shape_q": shape_q,
        "shape_beta": shape_beta,
        "gr": gr,
        "ri": ri,
        "fwhm_eff": fwhm_eff,
        "box_side": side,
    }


def _place(
    cfg: ClumpSimConfig,
    rng: np.random.Generator,
    host: dict[str, Any],
    placed: list[tuple[float, float]],
    min_sep: float,
) -> tuple[float, float] | None:
    """Draw a position on the disk; None if no valid one was found in ``scene.max_tries``."""
    c, im = cfg.clumps, cfg.image
    h = host["hlr"] / im.pixel_scale / _EXP_HLR  # disk scale length, pixels
    lo, hi = np.interp([c.r_min * _EXP_HLR, c.r_max * _EXP_HLR], _GAMMA2_X, _GAMMA2_CDF)
    cos_pa, sin_pa = math.cos(host["pa"]), math.sin(host["pa"])
    for _ in range(cfg.scene.max_tries):
        r = h * float(np.interp(rng.uniform(lo, hi), _GAMMA2_CDF, _GAMMA2_X))
        phi = float(rng.uniform(0.0, 2.0 * math.pi))
        xd, yd = r * math.cos(phi), r * math.sin(phi) * host["q"]
        x = host["x"] + xd * cos_pa - yd * sin_pa
        y = host["y"] + xd * sin_pa + yd * cos_pa
        if not (0.0 <= x < im.width and 0.0 <= y < im.height):
            continue
        if any(math.hypot(x - px, y - py) < min_sep for px, py in placed):
            continue
        return x, y
    return None


def _draw_parameters(cfg: ClumpSimConfig, rng: np.random.Generator) -> _Params:
    p = cfg.psf
    fwhm_r = float(np.clip(rng.normal(p.fwhm_mean, p.fwhm_sd), p.fwhm_min, p.fwhm_max))
    fwhm = {b: fwhm_r * p.band_factor[b] for b in SIM_BANDS}
    host = _draw_host(cfg, rng)
    ra = float(rng.uniform(*cfg.image.ra_range))
    dec = float(rng.uniform(*cfg.image.dec_range))
    objects: list[dict[str, Any]] = []
    sc = cfg.scene
    if rng.random() >= sc.empty_fraction:
        w = np.asarray(sc.count_weights, dtype=float)
        n = int(rng.choice(len(w), p=w / w.sum())) + 1
        placed: list[tuple[float, float]] = []
        min_sep = sc.min_separation * fwhm_r / cfg.image.pixel_scale
        for _ in range(n):
            if rng.random() < sc.odd_fraction:
                star = rng.random() < cfg.odd_clumps.star_fraction
                kind = "star" if star else "background_galaxy"
            else:
                kind = "clump"
            obj = _draw_object(cfg, rng, kind, host, fwhm_r)
            pos = _place(cfg, rng, host, placed, min_sep)
            if pos is None:
                continue
            placed.append(pos)
            obj["x"], obj["y"] = pos
            objects.append(obj)
    return _Params(fwhm=fwhm, host=host, objects=objects, ra=ra, dec=dec)


# --------------------------------------------------------------------------------------------
# rendering (GalSim)


def _psf(cfg: ClumpSimConfig, fwhm: float) -> galsim.GSObject:
    return psf_profile(cfg.psf.profile, fwhm, moffat_beta=cfg.psf.moffat_beta)


def simulate_clump_scene(
    *,
    config: ClumpSimConfig,
    seed: int | np.random.SeedSequence,
    image_id: int = 0,
    return_components: bool = False,
) -> ClumpScene:
    """Simulate one clumpy (or clump-free) galaxy image with exact truth, in memory.

    Parameters
    ----------
    config : ClumpSimConfig
        Simulation config (validated here).
    seed : int or numpy.random.SeedSequence
        The image is a pure function of ``(config, seed)``. :func:`simulate_clumps` passes
        ``image_seed(run_seed, i)`` for image ``i``.
    image_id : int
        Carried into the scene (COCO image id).
    return_components : bool
        Also return the noiseless image of every object and of the host (for tests and
        diagnostics; costs ``N x C x H x W`` floats).

    Returns
    -------
    ClumpScene
        Image ``(C, H, W)`` float32 in nanomaggies, boxes ``(N, 4)`` xyxy pixels, labels ``(N,)``
        and per-object truth (see the module docstring for the box rule and the S/N definition).
    """
    cfg = validate_sim_config(config)
    ss = as_seed_sequence(seed)
    with single_threaded_galsim():
        if cfg.population.model == "realistic":
            from clumpdet.sim.hosts import simulate_realistic

            return simulate_realistic(cfg, ss, int(image_id), return_components)
        return _simulate(cfg, ss, int(image_id), return_components)


def _simulate(
    cfg: ClumpSimConfig, ss: np.random.SeedSequence, image_id: int, return_components: bool
) -> ClumpScene:
    rng = np.random.default_rng(substream(ss, 0))
    noise_seed = galsim_seed(ss, 1)
    params = _draw_parameters(cfg, rng)

    im = cfg.image
    w, h, scale = im.width, im.height, im.pixel_scale
    hp = params.host
    fwhm = params.fwhm

    # -- host: disk drawn unconvolved on a padded frame and convolved with each band's pixelated
    #    PSF kernel (fast for the large disk); the small, cuspy bulge is drawn by GalSim directly.
    psfs = {b: _psf(cfg, fwhm[b]) for b in SIM_BANDS}
    kernels = {
        b: psf_kernel(psfs[b], fwhm=fwhm[b], scale=scale, radius_fwhm=_STAMP_FWHM)
        for b in SIM_BANDS
    }
    pad = max(k.shape[0] for k in kernels.values()) // 2
    shear = galsim.Shear(q=hp["q"], beta=hp["pa"] * galsim.radians)
    disk = galsim.Exponential(half_light_radius=hp["hlr"], gsparams=_GSPARAMS).shear(shear)
    disk_pad = galsim.ImageF(w + 2 * pad, h + 2 * pad, scale=scale)
    disk.drawImage(
        image=disk_pad,
        center=galsim.PositionD(hp["x"] + pad + 0.5, hp["y"] + pad + 0.5),
        method="no_pixel",
    )
    disk_arr = disk_pad.array.astype(np.float64)
    model = {}
    for b in SIM_BANDS:
        kern = kernels[b]
        off = pad - kern.shape[0] // 2
        src = disk_arr[off : off + h + kern.shape[0] - 1, off : off + w + kern.shape[1] - 1]
        model[b] = hp["disk_flux"][b] * fftconvolve(src, kern, mode="valid")
    if hp["bf"] > 0:
        bulge = galsim.DeVaucouleurs(
            half_light_radius=hp["bulge_hlr"],
            trunc=cfg.host.bulge_trunc * hp["bulge_hlr"],
            gsparams=_GSPARAMS,
        ).shear(q=hp["bulge_q"], beta=hp["pa"] * galsim.radians)
        for b in SIM_BANDS:
            radius = (cfg.host.bulge_trunc * hp["bulge_hlr"] + _STAMP_FWHM * fwhm[b]) / scale
            prof = galsim.Convolve(bulge, psfs[b], gsparams=_GSPARAMS)
            drawn = draw_unit(prof, hp["x"], hp["y"], radius, w, h, scale)
            if drawn is not None:
                model[b][stamp_slices(drawn[0])] += hp["bulge_flux"][b] * drawn[1]
    host_model = {b: model[b].copy() for b in SIM_BANDS} if return_components else None

    # -- labelled objects, each drawn into its own stamp
    stamps: list[dict[str, tuple[galsim.BoundsI, np.ndarray] | None]] = []
    for obj in params.objects:
        if obj["kind"] == "clump":
            intrinsic = (
                galsim.Gaussian(half_light_radius=obj["hlr"], gsparams=_GSPARAMS)
                if obj["hlr"] > 1e-4
                else None
            )
        elif obj["kind"] == "star":
            intrinsic = None
        else:
            intrinsic = galsim.Sersic(
                n=obj["sersic_n"], half_light_radius=obj["hlr"], gsparams=_GSPARAMS
            ).shear(q=obj["shape_q"], beta=obj["shape_beta"] * galsim.radians)
        per_band = {}
        for b in SIM_BANDS:
            prof = (
                psfs[b]
                if intrinsic is None
                else galsim.Convolve(intrinsic, psfs[b], gsparams=_GSPARAMS)
            )
            radius = (_STAMP_FWHM * math.hypot(fwhm[b], 2 * obj["hlr"]) + 4 * obj["hlr"]) / scale
            drawn = draw_unit(prof, obj["x"], obj["y"], radius, w, h, scale)
            per_band[b] = drawn
            if drawn is not None:
                model[b][stamp_slices(drawn[0])] += obj["flux"][b] * drawn[1]
        stamps.append(per_band)

    # -- noise (GalSim RNG), per-pixel variance, S/N
    nz = cfg.noise
    gains, sky_sb = nz.gain, nz.sky_sb
    gauss = galsim.GaussianDeviate(galsim.BaseDeviate(noise_seed))
    image = {}
    sky_sigma = {}
    var_r = None
    for b in SIM_BANDS:
        sky = 10 ** (-0.4 * (sky_sb[b] - ZERO_POINT)) * scale**2
        base_var = sky / gains[b] + (nz.read_noise / gains[b]) ** 2
        sky_sigma[b] = math.sqrt(base_var)
        image[b], var = add_gaussian_noise(
            model[b], base_var=base_var, gain=gains[b], poisson=nz.poisson, deviate=gauss
        )
        if b == "r":
            var_r = var

    bands = tuple(im.bands)
    objects, boxes = truth_objects(
        params.objects, stamps, var_r, bands=bands, offset=(0.0, 0.0), shape=(h, w)
    )

    components = None
    if return_components:
        components = np.zeros((len(objects), len(bands), h, w), dtype=np.float32)
        for k, (obj, st) in enumerate(zip(params.objects, stamps)):
            for c, b in enumerate(bands):
                if st[b] is not None:
                    components[k, c][stamp_slices(st[b][0])] = obj["flux"][b] * st[b][1]

    host_flux = {b: float(hp["disk_flux"][b] + hp["bulge_flux"][b]) for b in bands}
    host = HostTruth(
        x=hp["x"],
        y=hp["y"],
        mag_r=hp["mag_r"],
        flux=host_flux,
        hlr=hp["hlr"],
        mu_e=hp["mu_e"],
        axis_ratio=hp["q"],
        position_angle=math.degrees(hp["pa"]),
        bulge_fraction=hp["bf"],
        bulge_hlr=hp["bulge_hlr"],
        bulge_axis_ratio=hp["bulge_q"],
        disk_gr=hp["disk_gr"],
        disk_ri=hp["disk_ri"],
        bulge_gr=hp["bulge_gr"],
        bulge_ri=hp["bulge_ri"],
    )
    return ClumpScene(
        image=np.stack([image[b] for b in bands]).astype(np.float32),
        bands=bands,
        boxes=boxes,
        labels=np.array([o.label for o in objects], dtype=np.int64),
        objects=tuple(objects),
        host=host,
        psf_fwhm=fwhm["r"],
        psf_fwhm_bands={b: fwhm[b] for b in bands},
        noise_sigma={b: sky_sigma[b] for b in bands},
        pixel_scale=scale,
        wcs=make_wcs(shape=(h, w), ra=params.ra, dec=params.dec, pixel_scale=scale),
        image_id=int(image_id),
        components=components,
        host_model=(
            np.stack([host_model[b] for b in bands]).astype(np.float32)
            if host_model is not None
            else None
        ),
    )


def truth_objects(
    objs: list[dict[str, Any]],
    stamps: list[dict[str, Any]],
    var_r: np.ndarray,
    *,
    bands: tuple[str, ...],
    offset: tuple[float, float],
    shape: tuple[int, int],
) -> tuple[list[SimObject], np.ndarray]:
    """Truth records and boxes of the labelled objects of one scene.

    Parameters
    ----------
    objs : list of dict
        Drawn objects (``kind, label, x, y, flux, flux_ratio, hlr, fwhm_eff, box_side, gr, ri,
        sersic_n``), positions in the canvas' pixels.
    stamps : list of dict
        Per object and band, ``(bounds, unit-flux stamp)`` or None when off the canvas.
    var_r : ndarray, shape (H_canvas, W_canvas)
        Per-pixel noise variance of the r band, for the matched-filter S/N.
    bands : tuple of str
        Bands written.
    offset : (float, float)
        ``(ox, oy)``: canvas pixel of the written image's origin (0 when canvas = image).
    shape : (int, int)
        ``(H, W)`` of the written image: boxes are clipped to it.

    Returns
    -------
    objects : list of SimObject
    boxes : ndarray of float32, shape (N, 4)
        Square xyxy boxes (pixels of the written image) of side ``box_side``.
    """
    h, w = shape
    ox, oy = offset
    objects: list[SimObject] = []
    boxes = np.zeros((len(objs), 4), dtype=np.float32)
    for k, (obj, st) in enumerate(zip(objs, stamps)):
        snr = 0.0
        if st["r"] is not None:
            m = obj["flux"]["r"] * st["r"][1]
            snr = float(np.sqrt(np.sum(m**2 / var_r[stamp_slices(st["r"][0])])))
        x, y = obj["x"] - ox, obj["y"] - oy
        half = obj["box_side"] / 2.0
        boxes[k] = (
            max(x - half, 0.0),
            max(y - half, 0.0),
            min(x + half, float(w)),
            min(y + half, float(h)),
        )
        objects.append(
            SimObject(
                kind=obj["kind"],
                label=obj["label"],
                x=x,
                y=y,
                flux={b: float(obj["flux"][b]) for b in bands},
                flux_ratio=obj["flux_ratio"],
                snr=snr,
                hlr=obj["hlr"],
                fwhm_eff=obj["fwhm_eff"],
                box_side=obj["box_side"],
                gr=obj["gr"],
                ri=obj["ri"],
                sersic_n=obj["sersic_n"],
            )
        )
    return objects, boxes
