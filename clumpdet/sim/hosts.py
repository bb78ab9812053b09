"""Realistic host population for the clump simulator (``population.model: realistic``).

A scene is an SDSS-like field around one Galaxy-Zoo-2-like host (r < 17.0): an elliptical, a
lenticular, a face-on to inclined spiral (arms, some barred), an edge-on disk with a dust lane, an
irregular or an interacting pair. Star-forming disks carry **unlabelled** HII-region knots
(positions from GalSim ``RandomKnots`` on the disk profile, thinned along the spiral arms); the
field holds unlabelled neighbour galaxies and foreground stars from number counts over the whole
canvas (some cut by the edge). Only some hosts (``population.clumpy_probability`` per type,
~12 % overall) carry labelled objects: giant clumps (class 1) and odd clumps (class 2: foreground
stars, background galaxies and clump-like knots flagged odd), whose positions are drawn from the
host's own disk light weighted outwards (``clumps.radial_weight``), so they sit in the visible
disk, and may crowd down
to ``scene.min_separation`` (1) PSF FWHM.

Rendering: analytic components (:mod:`clumpdet.sim.galaxies.render`) are evaluated on the
sub-pixel grid of a square *canvas* (large enough for the host's Galaxy Zoo 2 colour frame, at most
``render.canvas_max`` px), binned, convolved with each band's PSF; labelled objects are GalSim
stamps (as in the smooth simulator, so S/N, flux ratio and the box rule are defined identically);
noise covers the whole canvas. The FITS image is the central ``image.width x image.height`` crop of
the canvas; the colour writer (:mod:`clumpdet.sim.colour`) frames the canvas per galaxy.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import galsim
import numpy as np
from scipy.signal import fftconvolve

from clumpdet.data.fits import make_wcs
from clumpdet.sim.clumps.config import HOST_TYPES, SIM_BANDS, ClumpSimConfig
from clumpdet.sim.common import (
    GSPARAMS,
    add_gaussian_noise,
    draw_unit,
    galsim_seed,
    psf_kernel,
    psf_profile,
    stamp_slices,
    substream,
)
from clumpdet.sim.galaxies.render import Grid, blobs, sersic_image
from clumpdet.units import ZERO_POINT

#: Petrosian R90 / R50 of an exponential disk and of a de Vaucouleurs spheroid (approximate;
#: a composite interpolates linearly in its bulge-to-total ratio).
R90_R50_DISK, R90_R50_SPHEROID = 2.3, 3.0

#: Sersic index of spheroids and bulges.
_N_SPHEROID = 4.0

#: PSF kernels reach this many FWHM from their centre.
_KERNEL_FWHM = 4.0


def _band_flux(flux_r: float, gr: float, ri: float) -> np.ndarray:
    """(g, r, i) fluxes of an r flux with colours g-r, r-i."""
    return np.array([flux_r * 10 ** (-0.4 * gr), flux_r, flux_r * 10 ** (0.4 * ri)])


def _mag_draw(rng: np.random.Generator, lo: float, hi: float, slope: float) -> float:
    """Magnitude with ``p(m) ~ 10 ** (slope * m)`` on ``[lo, hi]`` (inverse CDF)."""
    if slope == 0:
        return float(rng.uniform(lo, hi))
    a = slope * math.log(10.0)
    u = rng.random()
    return float(lo + math.log1p(u * math.expm1(a * (hi - lo))) / a)


def petrosian_radii(
    image: np.ndarray, cx: float, cy: float, *, eta: float = 0.2, aperture: float = 2.0
) -> tuple[float, float]:
    """SDSS Petrosian R50 and R90 of a (noiseless) image, in pixels.

    As the SDSS photometric pipeline (Blanton et al. 2001; Strauss et al. 2002): circular
    apertures about ``(cx, cy)``; the Petrosian radius ``R_P`` is where the surface brightness in
    the annulus ``[0.8 r, 1.25 r]`` falls to ``eta`` (0.2) times the mean inside ``r``; the
    Petrosian flux is the flux inside ``aperture * R_P`` (2); R50 / R90 contain 50 / 90 % of it.
    Measured on the PSF-convolved light, as SDSS measures the observed image, so a small galaxy's
    R90 includes the seeing and a de Vaucouleurs profile's is ~2.2 R_e rather than its true ~5.5.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Surface brightness per pixel (any linear unit), pixel ``(j, i)`` centred at
        ``(i + 0.5, j + 0.5)``.
    cx, cy : float
        Centre, pixels (corner origin).

    Returns
    -------
    (float, float)
        R50, R90 in pixels; where ``R_P`` is not reached inside the image, the largest
        inscribed radius stands in for it.
    """
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w]
    rr = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy).ravel()
    r_max = float(min(cx, cy, w - cx, h - cy))
    edges = np.arange(0.0, r_max + 0.25, 0.25)
    if edges.size < 8:
        return math.nan, math.nan
    flux = np.concatenate(
        [[0.0], np.cumsum(np.histogram(rr, bins=edges, weights=image.ravel())[0])]
    )
    area = np.concatenate([[0.0], np.cumsum(np.histogram(rr, bins=edges)[0])]).astype(float)

    def cum(a: np.ndarray, r: np.ndarray) -> np.ndarray:
        return np.interp(r, edges, a)

    r = edges[edges >= 1.0]
    r = r[1.25 * r <= r_max]
    ann_area = np.maximum(cum(area, 1.25 * r) - cum(area, 0.8 * r), 1e-9)
    sb_ann = (cum(flux, 1.25 * r) - cum(flux, 0.8 * r)) / ann_area
    sb_in = cum(flux, r) / np.maximum(cum(area, r), 1e-9)
    below = np.nonzero(sb_ann < eta * sb_in)[0]
    r_p = float(r[below[0]]) if below.size else r_max / aperture
    f_p = float(cum(flux, min(aperture * r_p, r_max)))
    if not f_p > 0:
        return math.nan, math.nan
    mono = np.maximum.accumulate(flux)
    r50 = float(np.interp(0.5 * f_p, mono, edges))
    r90 = float(np.interp(0.9 * f_p, mono, edges))
    return r50, r90


class _Window:
    """A rectangular piece of a :class:`Grid` (same attributes), for compact sources."""

    def __init__(self, grid: Grid, x: float, y: float, radius: float) -> None:
        ix = np.searchsorted(grid.x, [x - radius, x + radius])
        iy = np.searchsorted(grid.y, [y - radius, y + radius])
        o = grid.os
        self.i0, self.i1 = (int(ix[0]) // o) * o, min(-(-int(ix[1]) // o) * o, grid.x.size)
        self.j0, self.j1 = (int(iy[0]) // o) * o, min(-(-int(iy[1]) // o) * o, grid.y.size)
        self.x, self.y = grid.x[self.i0 : self.i1], grid.y[self.j0 : self.j1]
        self.area, self.soft, self.scale = grid.area, grid.soft, grid.scale

    @property
    def empty(self) -> bool:
        return self.x.size == 0 or self.y.size == 0


class _Canvas:
    """Sub-pixel accumulation of the pre-PSF light per band (g, r, i) plus a star-forming map."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.light = np.zeros((3, *grid.shape))
        self.disk = np.zeros(grid.shape)  # r-band light clumps are drawn from
        self.host_flux = np.zeros(3)  # (g, r, i) flux of the host's components
        self.tracking_host = True
        self.primary: np.ndarray | None = None  # r-band light of the primary (a pair's first)

    def add(self, unit: np.ndarray, flux: np.ndarray, win: _Window | None = None, disk=False):
        sl = (
            (slice(None), slice(None))
            if win is None
            else (slice(win.j0, win.j1), slice(win.i0, win.i1))
        )
        for k in range(3):
            self.light[k][sl] += flux[k] * unit
        if self.tracking_host:
            self.host_flux += flux
        if disk:
            self.disk[sl] += flux[1] * unit


def _colour(rng: np.random.Generator, gr: float, ri: float, scatter: float) -> tuple[float, float]:
    return (
        float(gr + scatter * rng.standard_normal()),
        float(ri + scatter * rng.standard_normal()),
    )


def _disk_geom(x: float, y: float, hlr: float, q: float, pa: float, **kw: Any) -> dict[str, Any]:
    return {"x": x, "y": y, "n": 1.0, "hlr": hlr, "q": q, "pa": pa, **kw}


def _arm_factor(p: dict[str, Any], xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Relative arm modulation (0..1) of points (arcsec, face-on disk plane)."""
    if not p.get("arms"):
        return np.ones(xs.shape)
    m, pitch, amp, phase = p["arms"]
    r = np.hypot(xs, ys) + 1e-6
    phi = np.arctan2(ys, xs)
    wave = np.cos(m * (phi - np.log(r / p["hlr"]) / math.tan(pitch)) - phase)
    return (1.0 + amp * wave) / (1.0 + amp)


def _add_knots(
    cv: _Canvas,
    rng: np.random.Generator,
    p: dict[str, Any],
    flux_r: float,
    colour,
    n: int,
    sigma: float,
    seed: int,
) -> int:
    """Unlabelled HII-region knots on disk ``p``: ``RandomKnots`` positions on its exponential
    profile, kept with the arm modulation, lognormal luminosities summing to ``flux_r``."""
    if n <= 0 or flux_r <= 0:
        return 0
    pts = galsim.RandomKnots(
        3 * n, profile=galsim.Exponential(half_light_radius=p["hlr"]), rng=galsim.BaseDeviate(seed)
    ).points
    keep = rng.random(len(pts)) < _arm_factor(p, pts[:, 0], pts[:, 1])
    pts = pts[keep][:n]
    if len(pts) == 0:
        return 0
    c, s = math.cos(p["pa"]), math.sin(p["pa"])
    xd, yd = pts[:, 0], pts[:, 1] * p["q"]
    xs = p["x"] + xd * c - yd * s
    ys = p["y"] + xd * s + yd * c
    w = np.exp(0.7 * rng.standard_normal(len(pts)))
    w = w / w.sum()
    sig = np.full(len(pts), sigma)
    cv.add(blobs(cv.grid, xs, ys, sig, w), _band_flux(flux_r, *colour), disk=True)
    return len(pts)


def _host_components(
    cfg: ClumpSimConfig, rng: np.random.Generator, cv: _Canvas, hx: float, hy: float, seed: int
) -> dict[str, Any]:
    """Draw and accumulate the host; returns its truth summary."""
    pop = cfg.population
    types = list(HOST_TYPES)
    w = np.array([pop.type_weights[t] for t in types], dtype=float)
    kind = types[int(rng.choice(len(types), p=w / w.sum()))]
    mag = _mag_draw(rng, pop.mag_min, pop.mag_max, pop.mag_slope)
    flux = 10 ** (-0.4 * (mag - ZERO_POINT))
    r50 = pop.r50_ref * 10 ** (pop.r50_mag_slope * (mag - 16.0) + pop.r50_scatter * rng.normal())
    if kind == "elliptical":
        r50 *= pop.spheroid_size_factor
    r50 = float(np.clip(r50, pop.r50_min, pop.r50_max))
    pa = float(rng.uniform(0.0, math.pi))
    sc = pop.colour_scatter
    red = _colour(rng, pop.red_gr, pop.red_ri, sc)
    disk_c = _colour(rng, pop.disk_gr, pop.disk_ri, sc)
    young = _colour(rng, pop.young_gr, pop.young_ri, sc)
    knot_frac = float(rng.uniform(pop.knot_fraction_min, pop.knot_fraction_max))
    n_knots = int(rng.integers(pop.knot_count_min, pop.knot_count_max + 1))
    lop = {}
    if pop.lopsided_max > 0 and kind in ("spiral", "lenticular", "edge_on", "pair"):
        lop = {
            "lopsided": float(rng.uniform(0.0, pop.lopsided_max)),
            "lopsided_angle": float(rng.uniform(0.0, 2.0 * math.pi)),
        }
    out: dict[str, Any] = {"type": kind, "mag_r": mag, "flux_r": flux, "r50": r50, "pa": pa}
    out["n_knots"] = 0
    bt, q = 0.0, 1.0

    def spheroid(x, y, f, hlr, qq, colour, **kw):
        p = {"x": x, "y": y, "n": _N_SPHEROID, "hlr": hlr, "q": qq, "pa": pa, **kw}
        cv.add(sersic_image(cv.grid, p), _band_flux(f, *colour), disk=kind == "elliptical")

    def disk(x, y, f, hlr, qq, colour, knots=0.0, nk=0, **kw):
        p = _disk_geom(x, y, hlr, qq, pa, **kw)
        f_k = knots * f
        cv.add(sersic_image(cv.grid, p), _band_flux(f - f_k, *colour), disk=True)
        out["n_knots"] += _add_knots(cv, rng, p, f_k, young, nk, pop.knot_sigma, seed)
        return p

    def spiral(x, y, f, hlr, shear=(0.0, 0.0)):
        nonlocal bt, q
        qq = float(rng.uniform(pop.disk_q_min, 1.0))
        b = float(rng.uniform(0.0, pop.spiral_bulge_max))
        m = int(rng.choice(len(pop.arm_count_weights), p=_norm(pop.arm_count_weights))) + 1
        arms = (
            m,
            math.radians(float(rng.uniform(pop.arm_pitch_min, pop.arm_pitch_max))),
            float(rng.uniform(pop.arm_amplitude_min, pop.arm_amplitude_max)),
            float(rng.uniform(0.0, 2.0 * math.pi)),
        )
        kw = {"shear": shear[0], "shear_beta": shear[1]}
        f_bar = 0.0
        if rng.random() < pop.bar_probability:
            f_bar = float(rng.uniform(0.05, 0.15)) * f
            ang = float(rng.uniform(0.0, math.pi))
            bx, by = math.cos(ang), math.sin(ang) * qq
            bar = {
                "x": x,
                "y": y,
                "n": 0.5,
                "hlr": float(rng.uniform(0.5, 1.0)) * hlr * math.hypot(bx, by),
                "q": float(rng.uniform(0.25, 0.4)),
                "pa": pa + math.atan2(by, bx),
                **kw,
            }
            cv.add(sersic_image(cv.grid, bar), _band_flux(f_bar, *red), disk=True)
        if b > 0.01:
            spheroid(x, y, b * f, 0.2 * hlr, max(qq, 0.7), red, **kw)
        disk(
            x,
            y,
            (1 - b) * f - f_bar,
            hlr,
            qq,
            disk_c,
            knots=knot_frac,
            nk=n_knots,
            arms=arms,
            **kw,
            **lop,
        )
        bt, q = b, qq
        out["arms"] = m
        out["bar"] = f_bar > 0

    if kind == "elliptical":
        q = float(rng.uniform(0.5, 1.0))
        bt = 1.0
        spheroid(hx, hy, flux, r50, q, red)
    elif kind == "lenticular":
        q = float(rng.uniform(pop.disk_q_min, 1.0))
        bt = float(rng.uniform(pop.lenticular_bulge_min, pop.lenticular_bulge_max))
        spheroid(hx, hy, bt * flux, 0.3 * r50, max(q, 0.6), red)
        lent = (0.5 * (red[0] + disk_c[0]), 0.5 * (red[1] + disk_c[1]))
        disk(hx, hy, (1 - bt) * flux, r50, q, lent, **lop)
    elif kind == "spiral":
        spiral(hx, hy, flux, r50)
    elif kind == "edge_on":
        q = float(rng.uniform(pop.edge_on_q_min, pop.edge_on_q_max))
        bt = float(rng.uniform(0.0, 0.3))
        lane = float(rng.uniform(pop.dust_lane_min, pop.dust_lane_max))
        if bt > 0.01:
            spheroid(hx, hy, bt * flux, 0.25 * r50, 0.6, red, lane=0.6 * lane)
        disk(
            hx,
            hy,
            (1 - bt) * flux,
            r50,
            q,
            disk_c,
            knots=0.5 * knot_frac,
            nk=n_knots // 2,
            lane=lane,
            **lop,
        )
    elif kind == "irregular":
        q = float(rng.uniform(0.4, 1.0))
        disk(
            hx,
            hy,
            flux,
            r50,
            q,
            young,
            knots=min(2 * knot_frac, 0.5),
            nk=n_knots,
            lopsided=float(rng.uniform(0.3, 0.8)),
            lopsided_angle=float(rng.uniform(0, 6.283)),
        )
    else:  # interacting pair: two sheared spirals / spheroids
        ratio = float(rng.uniform(pop.pair_flux_ratio_min, pop.pair_flux_ratio_max))
        sep = float(rng.uniform(pop.pair_separation_min, pop.pair_separation_max)) * r50
        th = float(rng.uniform(0.0, 2.0 * math.pi))
        f1 = flux / (1.0 + ratio)
        g1, g2 = float(rng.uniform(0.0, pop.pair_shear_max)), float(rng.uniform(0, 0.3))
        x2, y2 = hx + sep * math.cos(th), hy + sep * math.sin(th)
        spiral(hx, hy, f1, r50, shear=(g1, th))
        cv.primary = cv.light[1].copy()  # SDSS deblends the pair: R90 is the primary's
        r50_2 = r50 * ratio**0.4
        if rng.random() < 0.5:
            disk(
                x2,
                y2,
                flux - f1,
                r50_2,
                float(rng.uniform(0.3, 1)),
                disk_c,
                knots=knot_frac,
                nk=n_knots // 3,
                shear=g2,
                shear_beta=th,
            )
        else:
            spheroid(
                x2,
                y2,
                flux - f1,
                0.7 * r50_2,
                float(rng.uniform(0.6, 1)),
                red,
                shear=g2,
                shear_beta=th,
            )
        out["companion"] = [x2, y2]
    out["bulge_fraction"], out["q"] = bt, q
    # provisional (model) R90; simulate_realistic replaces it by the measured Petrosian R90
    out["r90"] = r50 * (R90_R50_DISK + (R90_R50_SPHEROID - R90_R50_DISK) * bt)
    out["disk_gr"], out["disk_ri"] = disk_c
    out["bulge_gr"], out["bulge_ri"] = red
    return out


def _norm(w) -> np.ndarray:
    a = np.asarray(w, dtype=float)
    return a / a.sum()


def _neighbours(
    cfg: ClumpSimConfig,
    rng: np.random.Generator,
    cv: _Canvas,
    host: dict[str, Any],
    hx: float,
    hy: float,
    half: float,
) -> tuple[int, int]:
    """Unlabelled field galaxies and stars over the canvas (``half`` arcsec half-side)."""
    nb, pop = cfg.neighbours, cfg.population
    area = (2.0 * half / 60.0) ** 2
    n_gal = int(rng.poisson(nb.galaxy_density * area))
    n_star = int(rng.poisson(nb.star_density * area))
    excl = nb.exclusion * host["r50"]

    def position() -> tuple[float, float]:
        for _ in range(20):
            x, y = rng.uniform(-half - 2.0, half + 2.0, size=2)
            if math.hypot(x - hx, y - hy) >= excl:
                break
        return float(x), float(y)

    for _ in range(n_gal):
        m = _mag_draw(rng, nb.galaxy_mag_min, nb.galaxy_mag_max, nb.galaxy_mag_slope)
        r50 = pop.r50_ref * 10 ** (pop.r50_mag_slope * (m - 16.0) + 0.15 * rng.normal())
        r50 = float(np.clip(r50, 0.25, pop.r50_max))
        x, y = position()
        n = 1.0 if rng.random() < 0.6 else _N_SPHEROID
        p = {
            "x": x,
            "y": y,
            "n": n,
            "hlr": r50,
            "q": float(rng.uniform(0.25, 1.0)),
            "pa": float(rng.uniform(0.0, math.pi)),
        }
        win = _Window(cv.grid, x, y, (8.0 if n == 1 else 14.0) * r50 + 3.0)
        if win.empty:
            continue
        gr = float(rng.uniform(nb.galaxy_gr_min, nb.galaxy_gr_max))
        ri = 0.45 * gr + 0.05 * float(rng.normal())
        cv.add(sersic_image(win, p), _band_flux(10 ** (-0.4 * (m - ZERO_POINT)), gr, ri), win)
    for _ in range(n_star):
        m = _mag_draw(rng, nb.star_mag_min, nb.star_mag_max, nb.star_mag_slope)
        x, y = position()
        win = _Window(cv.grid, x, y, 2.0)
        if win.empty:
            continue
        gr = float(rng.uniform(nb.star_gr_min, nb.star_gr_max))
        ri = 0.45 * gr - 0.05 + 0.05 * float(rng.normal())
        unit = blobs(
            win, np.array([x]), np.array([y]), np.array([0.25 * cv.grid.scale]), np.array([1.0])
        )
        cv.add(unit, _band_flux(10 ** (-0.4 * (m - ZERO_POINT)), gr, ri), win)
    return n_gal, n_star


def _canvas_side(cfg: ClumpSimConfig, r90: float, offset_px: float) -> int:
    im, rc = cfg.image, cfg.render
    frame_px = rc.size * rc.frame_r90 * r90 / im.pixel_scale
    side = max(im.width, im.height, math.ceil(frame_px + 2 * offset_px) + 4)
    side = min(side, max(rc.canvas_max, im.width, im.height))
    # same parity as the FITS frame, so that it is the exact central crop
    side += (side - im.width) % 2
    return int(side)


def simulate_realistic(
    cfg: ClumpSimConfig, ss: np.random.SeedSequence, image_id: int, return_components: bool
):
    """One realistic scene (see the module docstring) as a :class:`ClumpScene`."""
    from clumpdet.sim.clumps.scene import ClumpScene, HostTruth, _draw_object, truth_objects

    rng = np.random.default_rng(substream(ss, 0))
    noise_seed = galsim_seed(ss, 1)
    knot_seed = galsim_seed(ss, 2)
    im, ps = cfg.image, cfg.psf
    w, h, scale = im.width, im.height, im.pixel_scale
    fwhm_r = float(np.clip(rng.normal(ps.fwhm_mean, ps.fwhm_sd), ps.fwhm_min, ps.fwhm_max))
    fwhm = {b: fwhm_r * ps.band_factor[b] for b in SIM_BANDS}
    ra = float(rng.uniform(*im.ra_range))
    dec = float(rng.uniform(*im.dec_range))
    off = rng.normal(0.0, cfg.population.offset_sd, size=2)  # arcsec

    # the host is drawn on a provisional size to know its R90, then the canvas is set by it
    hrng_state = rng.bit_generator.state
    probe = math.hypot(_host_probe(cfg, rng), 1.5 * fwhm_r)  # measured R90 includes the PSF
    rng.bit_generator.state = hrng_state
    side = _canvas_side(cfg, probe, float(np.max(np.abs(off))) / scale)
    ox, oy = (side - w) // 2, (side - h) // 2

    psfs = {b: psf_profile(ps.profile, fwhm[b], moffat_beta=ps.moffat_beta) for b in SIM_BANDS}
    kernels = {
        b: psf_kernel(
            psfs[b], fwhm=fwhm[b], scale=scale, radius_fwhm=_KERNEL_FWHM, method="no_pixel"
        )
        for b in SIM_BANDS
    }
    pad = max(k.shape[0] for k in kernels.values()) // 2
    grid = Grid(side, side, scale, 2 if side <= 320 else 1, pad)
    cv = _Canvas(grid)
    hx, hy = float(off[0]), float(off[1])
    host = _host_components(cfg, rng, cv, hx, hy, knot_seed)
    cv.tracking_host = False
    host["r90"] = _measured_r90(grid, cv, kernels["r"], pad, side, hx, hy) or host["r90"]
    n_gal, n_star = _neighbours(cfg, rng, cv, host, hx, hy, 0.5 * side * scale)

    model = {}
    for k, b in enumerate(SIM_BANDS):
        binned = grid.bin(cv.light[k])
        kern = kernels[b]
        o = pad - kern.shape[0] // 2
        src = binned[o : o + side + kern.shape[0] - 1, o : o + side + kern.shape[1] - 1]
        model[b] = fftconvolve(src, kern, mode="valid")
    disk_map = grid.bin(cv.disk)[pad : pad + side, pad : pad + side]
    host_model = {b: model[b].copy() for b in SIM_BANDS} if return_components else None

    # -- labelled objects on clumpy hosts, drawn from the disk light
    hcx, hcy = side / 2.0 + hx / scale, side / 2.0 + hy / scale  # host centre, canvas px
    hostd = {"flux_r": host["flux_r"]}
    objs: list[dict[str, Any]] = []
    pop = cfg.population
    p_clumpy = pop.clumpy_probability[host["type"]]
    p_clumpy = min(1.0, p_clumpy * (host["r90"] / pop.clumpy_r90_ref) ** pop.clumpy_r90_power)
    if rng.random() < p_clumpy:
        wts = np.asarray(cfg.scene.count_weights, dtype=float)
        n = int(rng.choice(len(wts), p=wts / wts.sum())) + 1
        pmap = _position_map(cfg, disk_map, host, hcx, hcy, ox, oy, w, h)
        placed: list[tuple[float, float]] = []
        min_sep = cfg.scene.min_separation * fwhm_r / scale
        for _ in range(n):
            if rng.random() < cfg.scene.odd_fraction:
                u = rng.random()
                o = cfg.odd_clumps
                if u < o.clump_like_fraction:
                    kind = "odd_clump"
                else:
                    kind = "star" if rng.random() < o.star_fraction else "background_galaxy"
            else:
                kind = "clump"
            obj = _draw_object(cfg, rng, kind, hostd, fwhm_r)
            pos = _draw_position(rng, pmap, placed, min_sep, cfg.scene.max_tries)
            if pos is None:
                continue
            placed.append(pos)
            obj["x"], obj["y"] = pos
            objs.append(obj)

    stamps = []
    for obj in objs:
        if obj["kind"] in ("clump", "odd_clump"):
            intr = (
                galsim.Gaussian(half_light_radius=obj["hlr"], gsparams=GSPARAMS)
                if obj["hlr"] > 1e-4
                else None
            )
        elif obj["kind"] == "star":
            intr = None
        else:
            intr = galsim.Sersic(
                n=obj["sersic_n"], half_light_radius=obj["hlr"], gsparams=GSPARAMS
            ).shear(q=obj["shape_q"], beta=obj["shape_beta"] * galsim.radians)
        per_band = {}
        for b in SIM_BANDS:
            prof = psfs[b] if intr is None else galsim.Convolve(intr, psfs[b], gsparams=GSPARAMS)
            radius = (5.0 * math.hypot(fwhm[b], 2 * obj["hlr"]) + 4 * obj["hlr"]) / scale
            drawn = draw_unit(prof, obj["x"], obj["y"], radius, side, side, scale)
            per_band[b] = drawn
            if drawn is not None:
                model[b][stamp_slices(drawn[0])] += obj["flux"][b] * drawn[1]
        stamps.append(per_band)

    # -- noise over the canvas
    nz = cfg.noise
    gauss = galsim.GaussianDeviate(galsim.BaseDeviate(noise_seed))
    canvas, sky_sigma, var_r = {}, {}, None
    for b in SIM_BANDS:
        sky = 10 ** (-0.4 * (nz.sky_sb[b] - ZERO_POINT)) * scale**2
        base_var = sky / nz.gain[b] + (nz.read_noise / nz.gain[b]) ** 2
        sky_sigma[b] = math.sqrt(base_var)
        canvas[b], var = add_gaussian_noise(
            model[b], base_var=base_var, gain=nz.gain[b], poisson=nz.poisson, deviate=gauss
        )
        if b == "r":
            var_r = var

    crop = (slice(oy, oy + h), slice(ox, ox + w))
    bands = tuple(im.bands)
    objects, boxes = truth_objects(
        objs, stamps, var_r, bands=bands, offset=(float(ox), float(oy)), shape=(h, w)
    )

    components = None
    if return_components:
        components = np.zeros((len(objects), len(bands), h, w), dtype=np.float32)
        for k, (obj, st) in enumerate(zip(objs, stamps)):
            for c, b in enumerate(bands):
                if st[b] is not None:
                    full = np.zeros((side, side))
                    full[stamp_slices(st[b][0])] = obj["flux"][b] * st[b][1]
                    components[k, c] = full[crop]

    host_flux = {b: float(cv.host_flux[SIM_BANDS.index(b)]) for b in bands}
    ht = HostTruth(
        x=hcx - ox,
        y=hcy - oy,
        mag_r=host["mag_r"],
        flux=host_flux,
        hlr=host["r50"],
        mu_e=float("nan"),
        axis_ratio=host["q"],
        position_angle=math.degrees(host["pa"]),
        bulge_fraction=host["bulge_fraction"],
        bulge_hlr=float("nan"),
        bulge_axis_ratio=float("nan"),
        disk_gr=host["disk_gr"],
        disk_ri=host["disk_ri"],
        bulge_gr=host["bulge_gr"],
        bulge_ri=host["bulge_ri"],
        morphology=host["type"],
        r90=host["r90"],
        n_knots=host["n_knots"],
        n_neighbours=n_gal,
        n_stars=n_star,
    )
    return ClumpScene(
        image=np.stack([canvas[b][crop] for b in bands]).astype(np.float32),
        bands=bands,
        boxes=boxes,
        labels=np.array([o.label for o in objects], dtype=np.int64),
        objects=tuple(objects),
        host=ht,
        psf_fwhm=fwhm["r"],
        psf_fwhm_bands={b: fwhm[b] for b in bands},
        noise_sigma={b: sky_sigma[b] for b in bands},
        pixel_scale=scale,
        wcs=make_wcs(shape=(h, w), ra=ra, dec=dec, pixel_scale=scale),
        image_id=int(image_id),
        components=components,
        host_model=(
            np.stack([host_model[b][crop] for b in bands]).astype(np.float32)
            if host_model is not None
            else None
        ),
        canvas=SimpleNamespace(
            cube=np.stack([canvas[b] for b in SIM_BANDS]).astype(np.float32),
            origin=(ox, oy),
            sigma=np.array([sky_sigma[b] for b in SIM_BANDS]),
            host_xy=(hcx, hcy),
            r90=host["r90"],
        ),
    )


def _measured_r90(
    grid: Grid, cv: _Canvas, kernel: np.ndarray, pad: int, side: int, hx: float, hy: float
) -> float | None:
    """Petrosian R90 (arcsec) of the primary host's PSF-convolved r-band light, as SDSS
    ``petroR90_r`` (:func:`petrosian_radii`); None if not measurable."""
    light = cv.primary if cv.primary is not None else cv.light[1]
    binned = grid.bin(light)
    o = pad - kernel.shape[0] // 2
    src = binned[o : o + side + kernel.shape[0] - 1, o : o + side + kernel.shape[1] - 1]
    img = fftconvolve(src, kernel, mode="valid")
    scale = grid.scale
    _, r90 = petrosian_radii(img, side / 2.0 + hx / scale, side / 2.0 + hy / scale)
    return float(r90 * scale) if np.isfinite(r90) and r90 > 0 else None


def _host_probe(cfg: ClumpSimConfig, rng: np.random.Generator) -> float:
    """An upper bound of the R90 (arcsec) that :func:`_host_components` will give from the same
    generator state (same first draws; the largest concentration; a pair's separation)."""
    pop = cfg.population
    types = list(HOST_TYPES)
    w = np.array([pop.type_weights[t] for t in types], dtype=float)
    kind = types[int(rng.choice(len(types), p=w / w.sum()))]
    mag = _mag_draw(rng, pop.mag_min, pop.mag_max, pop.mag_slope)
    r50 = pop.r50_ref * 10 ** (pop.r50_mag_slope * (mag - 16.0) + pop.r50_scatter * rng.normal())
    if kind == "elliptical":
        r50 *= pop.spheroid_size_factor
    r50 = float(np.clip(r50, pop.r50_min, pop.r50_max))
    extent = r50 * R90_R50_SPHEROID
    if kind == "pair":
        extent += pop.pair_separation_max * r50
    return extent


def _position_map(
    cfg: ClumpSimConfig,
    disk_map: np.ndarray,
    host: dict[str, Any],
    hcx: float,
    hcy: float,
    ox: int,
    oy: int,
    w: int,
    h: int,
) -> np.ndarray:
    """Probability map (canvas pixels) of labelled-object positions: disk light x
    ``(r / R50) ** radial_weight`` inside ``[r_min, r_max]`` R50 (disk-plane radius) and inside
    the FITS frame and the colour frame."""
    side = disk_map.shape[0]
    scale = cfg.image.pixel_scale
    yy, xx = np.mgrid[0:side, 0:side] + 0.5
    dx, dy = (xx - hcx) * scale, (yy - hcy) * scale
    c, s = math.cos(host["pa"]), math.sin(host["pa"])
    xr, yr = dx * c + dy * s, (-dx * s + dy * c) / max(host["q"], 0.1)
    rr = np.hypot(xr, yr) / host["r50"]
    c_cfg = cfg.clumps
    p = np.clip(disk_map, 0.0, None) * rr**c_cfg.radial_weight
    p[(rr < c_cfg.r_min) | (rr > c_cfg.r_max)] = 0.0
    mask = np.zeros_like(p, dtype=bool)
    mask[oy : oy + h, ox : ox + w] = True
    half = 0.5 * cfg.render.size * cfg.render.frame_r90 * host["r90"] / scale
    mask &= (np.abs(xx - hcx) < half) & (np.abs(yy - hcy) < half)
    p[~mask] = 0.0
    return p


def _draw_position(
    rng: np.random.Generator,
    pmap: np.ndarray,
    placed: list[tuple[float, float]],
    min_sep: float,
    tries: int,
) -> tuple[float, float] | None:
    total = pmap.sum()
    if not total > 0:
        return None
    flat = pmap.ravel() / total
    for _ in range(tries):
        k = int(rng.choice(flat.size, p=flat))
        y, x = divmod(k, pmap.shape[1])
        x, y = x + float(rng.random()), y + float(rng.random())
        if all(math.hypot(x - px, y - py) >= min_sep for px, py in placed):
            return x, y
    return None
