"""Simulated galaxy-classification data: mergers, four-class morphology and vote fractions.

Three tasks, each a pure function of ``(config, seed)`` returning a :class:`GalaxyScene` (an image
``(C, H, W)`` float32 in the band units, a label vector and the true parameters):

``mergers`` (:func:`simulate_merger_scene`, DeepMerge-like)
    75 x 75 px at 0.1875"/px in F814W / F356W / F160W, microjansky/arcsec^2. Label 1: a merging
    pair, both galaxies tidally distorted (shear along the line joining them, flexure-like bent
    isophotes, lopsided light) with faint curved tidal tails. Label 0: an isolated galaxy, or a
    close *chance projection* (two undistorted galaxies at the same separations as the mergers:
    the hard negatives). ``noise.enabled=false`` gives DeepMerge's "pristine" images.
``four_class`` (:func:`simulate_four_class_scene`)
    128 x 128 px SDSS-like g, r, i (nanomaggies). One-hot ``[normal, ringed, merger, other]``:
    normal = disk + bulge (optionally with spiral arms); ringed = disk + bulge + a ring in the
    disk plane (Gaussian profile in radius), often with a bar; merger = the merger task's pairs;
    other = irregular clumpy galaxies, edge-on disks with dust lanes, or an artifact (a bright
    star with diffraction spikes on top of a faint galaxy).
``morphology`` (:func:`simulate_morphology_scene`)
    64 x 64 px g, r, i. Galaxy-Zoo-like vote fractions (37, Kaggle cumulative convention), the
    vote counts behind them and CANDELS-like fractions (5), all *synthetic* (below).

Rendering
---------
Every component is evaluated analytically (NumPy) on a sub-pixel grid (``image.oversample``) of the
frame padded by the PSF kernel, summed per band with its SED, binned to pixels and convolved with
each band's PSF (a GalSim profile drawn as a pixel kernel, :mod:`clumpdet.sim.common`); noise is
GalSim's Gaussian deviate with sky plus source shot-noise variance (the clump simulator's model).
GalSim has no bent or curved profiles, hence the analytic components:

* Sersic / exponential: ``I ~ exp(-b_n (r / hlr)^(1/n))`` on elliptical radii, unit flux; tidal
  shear is an area-preserving linear map, bending maps ``y -> y - bend x^2 / hlr`` (unit
  Jacobian), a lopsided factor ``1 + a cos(phi - phi0)`` and spiral arms
  ``1 + A cos(m (phi - ln(r / hlr) / tan(pitch)))`` average to 0 around each ellipse, so all keep
  the flux; a dust lane dims the disk by ``1 - d exp(-z^2 / 2 w^2)`` (absorbed light is lost).
* ring: Gaussian in radius in the disk plane, unit flux (exact normalisation).
* tidal tails, clumps, stars, diffraction spikes: chains of circular Gaussians (a tail is ~40
  Gaussians along an outward curved arc, fading and widening with length).

Synthetic labels (morphology)
-----------------------------
All labels are made from the simulated parameters; none comes from people. For each galaxy the
answer probabilities of each Galaxy Zoo question are an explicit function of the true parameters
and of the feature visibility ``v = snr / (snr + votes.snr_half)`` (``snr``: matched-filter S/N of
the noiseless galaxy in the middle band against the configured noise, so labels do not depend on
the ``noise.enabled`` switch), mixed with a floor ``votes.floor`` for careless clicks:

* Q1 smooth / features / star: stars ``(0.05, 0.05, 0.9)``; galaxies
  ``featured = (1 - B/T) (0.35 + 0.65 v)``, +0.2 for disturbed, irregular and merging galaxies.
* Q2 edge-on: ``1 / (1 + exp((q - edge_on_axis_ratio) / edge_on_width))`` of the axis ratio q.
* Q3 bar: ``bar * v * min(1, bar_flux / 0.08) * clip((q - 0.3) / 0.4, 0, 1)``.
* Q4 spiral: ``arms * v * min(1, A / 0.5) * clip((q - 0.2) / 0.4, 0, 1)``.
* Q5 bulge none / noticeable / obvious / dominant, Q9 edge-on bulge rounded / boxy / none and
  Q7 round / in-between / cigar: Gaussian kernels on B/T (centres 0, 0.12, 0.3, 0.6 and
  0.35, 0.15, 0) or on q (0.9, 0.6, 0.3) whose width grows as ``v`` falls.
* Q6 odd: ``odd * (0.3 + 0.6 v)``; Q8 odd feature: ``c * onehot(kind) + (1 - c) * base`` with
  ``c = 0.3 + 0.5 v`` (``base`` favours disturbed / irregular / other).
* Q10 winding: Gaussian kernels on the pitch angle (10, 20, 30 deg); Q11 arm count: kernel on the
  true count, "can't tell" ``0.1 + 0.5 (1 - v)``; galaxies without arms get flat answers.

Each question's probabilities are then perturbed per galaxy by a Dirichlet draw with
concentration ``votes.concentration`` (over-dispersion, as in Zoobot's Dirichlet-multinomial
model) and ``N ~ U{volunteers_min..volunteers_max}`` volunteers walk the tree: all N answer Q1 and
Q6 (the Kaggle normalisation), and only the volunteers who gave a question's parent answer
answer it (multinomial counts). Fractions are counts / N, so every question's answers sum to its
parent answer's fraction exactly (Dieleman / Kaggle convention).

CANDELS-like fractions ``(spheroid, disk, irregular, point_source, unclassifiable)`` come from the
same parameters: probabilities proportional to ``(B/T, 1 - B/T, irr, ps, u)`` with ``irr`` 0.8 for
disturbed / irregular / merging galaxies (0.05 otherwise), ``ps = exp(-(hlr / FWHM_psf)^2)``
(1 for stars), ``u = 0.6 (1 - v)^2``, the same floor and Dirichlet perturbation, and
``votes.candels_classifiers`` single-choice classifiers; the five fractions sum to 1. The images
are g, r, i, not H band: the CANDELS labels only mimic the label format and its relation to
bulge fraction, irregularity, compactness and S/N.

The merger and four-class labels are exact truth (how the scene was made), not votes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import galsim
import numpy as np
from scipy.signal import fftconvolve
from scipy.special import erf, gamma, gammaincinv

from clumpdet.errors import ConfigError
from clumpdet.sim.common import (
    add_gaussian_noise,
    as_seed_sequence,
    galsim_seed,
    loguniform,
    psf_kernel,
    psf_profile,
    single_threaded_galsim,
    substream,
)
from clumpdet.sim.galaxy_config import (
    FourClassSimConfig,
    MergerSimConfig,
    MorphologySimConfig,
    task_config_class,
    task_of_config,
    validate_galaxy_sim_config,
)

#: Four-class label order.
FOUR_CLASS_NAMES: tuple[str, ...] = ("normal", "ringed", "merger", "other")
#: Galaxy Zoo Q8 odd features, in answer order.
ODD_FEATURES: tuple[str, ...] = (
    "ring",
    "lens",
    "disturbed",
    "irregular",
    "other",
    "merger",
    "dust_lane",
)
#: CANDELS-like fraction columns.
CANDELS_NAMES: tuple[str, ...] = (
    "spheroid",
    "disk",
    "irregular",
    "point_source",
    "unclassifiable",
)
#: Label column of the merger task (DeepMerge's table column).
MERGER_LABEL = "MergerLabel"

_KERNEL_FWHM = 4.0  # PSF kernels reach this many FWHM from the centre


@dataclass
class GalaxyScene:
    """One simulated galaxy image with its labels and true parameters.

    Attributes
    ----------
    task : str
        ``"mergers"``, ``"four_class"`` or ``"morphology"``.
    image : ndarray, shape (C, H, W), float32
        The image in the task's unit (``unit``).
    bands : tuple of str
        Band of each plane.
    label : ndarray, float32
        ``mergers``: shape (1,), 1 merger / 0 not; ``four_class``: one-hot (4,)
        ``[normal, ringed, merger, other]``; ``morphology``: 37 Galaxy Zoo vote fractions.
    params : dict
        True parameters (scalars; the same keys for every scene of a task).
    extra : dict of str to ndarray
        ``morphology``: ``counts`` (37,) int64 vote counts, ``candels`` (5,) float32 fractions,
        ``candels_counts`` (5,) int64. Empty for the other tasks.
    pixel_scale : float
        Arcsec per pixel.
    unit : str
        Unit of ``image``.
    image_id : int
        Index in the data set.
    model : ndarray, shape (C, H, W), float32, or None
        Noiseless image (``return_model=True`` only).
    """

    task: str
    image: np.ndarray
    bands: tuple[str, ...]
    label: np.ndarray
    params: dict[str, Any]
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    pixel_scale: float = 1.0
    unit: str = ""
    image_id: int = 0
    model: np.ndarray | None = None


# --------------------------------------------------------------------------------------------
# analytic components on a sub-pixel grid


@functools.lru_cache(maxsize=64)
def _sersic_b(n: float) -> float:
    return float(gammaincinv(2.0 * n, 0.5))


class _Grid:
    """Sub-pixel centres (arcsec from the frame centre) of the PSF-padded frame."""

    def __init__(self, width: int, height: int, scale: float, oversample: int, pad: int) -> None:
        self.os, self.pad, self.scale = oversample, pad, scale
        sub = (np.arange(oversample) + 0.5) / oversample
        xs = (np.arange(-pad, width + pad)[:, None] + sub[None, :]).ravel() - width / 2.0
        ys = (np.arange(-pad, height + pad)[:, None] + sub[None, :]).ravel() - height / 2.0
        self.x = xs * scale  # (Ws,)
        self.y = ys * scale  # (Hs,)
        self.area = (scale / oversample) ** 2  # arcsec^2 per sub-pixel
        self.soft = 0.5 * scale / oversample  # core softening (cusps are sub-pixel integrated)
        self.shape = (self.y.size, self.x.size)

    def bin(self, a: np.ndarray) -> np.ndarray:
        """Sum sub-pixels into pixels: (Hs, Ws) -> (H + 2 pad, W + 2 pad)."""
        o = self.os
        return a.reshape(a.shape[0] // o, o, a.shape[1] // o, o).sum(axis=(1, 3))


def _local(grid: _Grid, x0: float, y0: float, pa: float, shear: tuple[float, float] = (0.0, 0.0)):
    """Coordinates in a galaxy's frame (x along its major axis), after an optional tidal shear.

    ``shear = (g, beta)`` stretches the image by ``(1 + g) / (1 - g)`` along angle beta (radians)
    with an area-preserving map, so the flux is unchanged.
    """
    dx = grid.x[None, :] - x0
    dy = grid.y[:, None] - y0
    g, beta = shear
    if g > 0:
        g1, g2 = g * math.cos(2 * beta), g * math.sin(2 * beta)
        norm = 1.0 / math.sqrt(1.0 - g * g)
        dx, dy = norm * ((1 - g1) * dx - g2 * dy), norm * (-g2 * dx + (1 + g1) * dy)
    c, s = math.cos(pa), math.sin(pa)
    return dx * c + dy * s, -dx * s + dy * c


def _sersic(grid: _Grid, p: dict[str, Any]) -> np.ndarray:
    """Unit-flux sub-pixel image of a (distorted) Sersic component described by ``p``."""
    n, hlr, q = p["n"], p["hlr"], p["q"]
    xr, yr = _local(grid, p["x"], p["y"], p["pa"], (p.get("shear", 0.0), p.get("shear_beta", 0.0)))
    bend = p.get("bend", 0.0)
    if bend:
        yr = yr - bend * xr**2 / hlr
    yd = yr / q
    r = np.sqrt(xr**2 + yd**2 + grid.soft**2)
    b = _sersic_b(n)
    img = np.exp(-b * (r / hlr) ** (1.0 / n))
    norm = q * 2.0 * math.pi * n * hlr**2 * gamma(2.0 * n) / b ** (2.0 * n)
    phi = None
    lop = p.get("lopsided", 0.0)
    if lop:
        phi = np.arctan2(yd, xr)
        img *= 1.0 + lop * np.cos(phi - p["lopsided_angle"]) * (r / (r + 0.5 * hlr))
    arms = p.get("arms")
    if arms:
        phi = np.arctan2(yd, xr) if phi is None else phi
        m, pitch, amp, phase = arms
        taper = 1.0 - np.exp(-((r / (0.3 * hlr)) ** 2))
        wind = np.log(r / hlr) / math.tan(pitch)
        img *= 1.0 + amp * taper * np.cos(m * (phi - wind) - phase)
    lane = p.get("lane", 0.0)
    if lane:
        w = max(0.15 * q * hlr, 0.5 * grid.scale)
        img *= 1.0 - lane * np.exp(-0.5 * (yr / w) ** 2)
    return img * (grid.area / norm)


def _ring(grid: _Grid, p: dict[str, Any]) -> np.ndarray:
    """Unit-flux ring: Gaussian in radius (radius R, sigma w) in an inclined disk plane."""
    xr, yr = _local(grid, p["x"], p["y"], p["pa"])
    radius, w, q = p["radius"], p["width"], p["q"]
    r = np.sqrt(xr**2 + (yr / q) ** 2)
    img = np.exp(-0.5 * ((r - radius) / w) ** 2)
    a = radius / (w * math.sqrt(2.0))
    norm = (
        q
        * 2.0
        * math.pi
        * (w * w * math.exp(-a * a) + radius * w * math.sqrt(math.pi / 2) * (1 + erf(a)))
    )
    return img * (grid.area / norm)


def _blobs(grid: _Grid, xs: np.ndarray, ys: np.ndarray, sig: np.ndarray, wts: np.ndarray):
    """Sum of circular Gaussians (unit total flux when ``sum(wts) == 1``), separably."""
    gx = np.exp(-0.5 * ((grid.x[None, :] - xs[:, None]) / sig[:, None]) ** 2)
    gy = np.exp(-0.5 * ((grid.y[None, :] - ys[:, None]) / sig[:, None]) ** 2)
    amp = wts * grid.area / (2.0 * math.pi * sig**2)
    # einsum without BLAS: a threaded BLAS matmul of this size thrashes on busy cores (16 ms
    # instead of 0.7 ms on 2 shared cores)
    return np.einsum("ky,kx->yx", gy * amp[:, None], gx, optimize=False)


def _tail(grid: _Grid, p: dict[str, Any], k: int = 40) -> np.ndarray:
    """Unit-flux curved tidal tail: Gaussians along an outward arc that fade and widen."""
    t = np.linspace(0.0, 1.0, k)
    rho = p["hlr"] * (0.6 + p["length"] * t)
    theta = p["angle"] + p["turn"] * t
    xs = p["x"] + rho * np.cos(theta)
    ys = p["y"] + rho * np.sin(theta)
    sig = np.maximum(p["width"] * p["hlr"] * (0.6 + 0.8 * t), 0.5 * grid.scale)
    wts = np.exp(-1.5 * t)
    return _blobs(grid, xs, ys, sig, wts / wts.sum())


def _point(grid: _Grid, p: dict[str, Any]) -> np.ndarray:
    """Unit-flux point source (a Gaussian of sigma a quarter pixel), with optional spikes."""
    sig0 = 0.25 * grid.scale
    xs, ys, sig, wts = [p["x"]], [p["y"]], [sig0], [1.0 - p.get("spikes", 0.0)]
    if p.get("spikes", 0.0) > 0:
        d = np.linspace(1.0, p["spike_length"], 30)
        w = np.exp(-d / (0.3 * p["spike_length"]))
        w = p["spikes"] * w / (4 * w.sum())
        for ang in (p["spike_angle"] + k * math.pi / 2 for k in range(4)):
            xs.extend(p["x"] + d * math.cos(ang))
            ys.extend(p["y"] + d * math.sin(ang))
            sig.extend([sig0 * 1.5] * d.size)
            wts.extend(w)
    return _blobs(grid, np.array(xs), np.array(ys), np.array(sig), np.array(wts))


_RENDER = {"sersic": _sersic, "ring": _ring, "tail": _tail, "point": _point}


# --------------------------------------------------------------------------------------------
# parameter draws (NumPy only): galaxies as lists of components


def _sed(rng: np.random.Generator, base: tuple[float, ...], scatter: float) -> np.ndarray:
    """Per-band flux multipliers: ``base`` with colour scatter; the first band stays exact."""
    s = np.asarray(base, dtype=float)
    jitter = rng.standard_normal(s.size)
    jitter[0] = 0.0
    return s * 10 ** (-0.4 * scatter * jitter)


class _Builder:
    """Collects components (kind, geometry, per-band flux) of one scene."""

    def __init__(self, cfg: Any, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self.components: list[tuple[str, dict[str, Any], np.ndarray]] = []

    def add(self, kind: str, geom: dict[str, Any], flux: float, sed: np.ndarray) -> None:
        if flux > 0:
            self.components.append((kind, geom, flux * sed))

    def galaxy(
        self,
        *,
        x: float,
        y: float,
        flux: float,
        hlr: float | None = None,
        q: float | None = None,
        bt: float | None = None,
        q_min: float | None = None,
    ) -> dict[str, Any]:
        """Draw a disk + bulge galaxy (not yet added); returns its parameter dict."""
        pop, rng = self.cfg.population, self.rng
        hlr = loguniform(rng, pop.hlr_min, pop.hlr_max) if hlr is None else hlr
        qmin = pop.axis_ratio_min if q_min is None else q_min
        q = float(rng.uniform(qmin, 1.0)) if q is None else q
        if bt is None:
            bt = float(rng.uniform(pop.bulge_fraction_min, pop.bulge_fraction_max))
        ratio = float(rng.uniform(pop.bulge_hlr_ratio_min, pop.bulge_hlr_ratio_max))
        return {
            "x": x,
            "y": y,
            "flux": flux,
            "hlr": hlr,
            "q": q,
            "pa": float(rng.uniform(0.0, math.pi)),
            "bt": bt,
            "bulge_hlr": hlr * ratio,
            "bulge_q": float(rng.uniform(max(q, 0.6), 1.0)),
            "disk_sed": _sed(rng, pop.disk_sed, pop.sed_scatter),
            "bulge_sed": _sed(rng, pop.bulge_sed, pop.sed_scatter),
            "young_sed": _sed(rng, pop.young_sed, pop.sed_scatter),
            "shear": 0.0,
            "shear_beta": 0.0,
            "bend": 0.0,
            "lopsided": 0.0,
            "lopsided_angle": 0.0,
            "arms": None,
            "lane": 0.0,
            "taken": 0.0,  # flux fraction moved from the disk to tails, rings, bars, clumps
        }

    def take(self, g: dict[str, Any], fraction: float) -> float:
        """Move ``fraction`` of galaxy ``g``'s flux out of its disk (then bulge); returns it.

        At most half of a galaxy's light goes into such features.
        """
        fraction = max(min(fraction, 0.5 - g["taken"]), 0.0)
        g["taken"] += fraction
        return fraction * g["flux"]

    def commit(self, g: dict[str, Any]) -> None:
        """Add galaxy ``g``'s disk and bulge components."""
        common = {k: g[k] for k in ("shear", "shear_beta", "bend", "lopsided", "lopsided_angle")}
        disk_frac = max(1.0 - g["bt"] - g["taken"], 0.0)
        bulge_frac = 1.0 - g["taken"] - disk_frac
        disk = {"x": g["x"], "y": g["y"], "n": 1.0, "hlr": g["hlr"], "q": g["q"], "pa": g["pa"]}
        disk.update(common, arms=g["arms"], lane=g["lane"])
        self.add("sersic", disk, disk_frac * g["flux"], g["disk_sed"])
        if bulge_frac > 0:
            n_b = g.get("bulge_n", self.cfg.population.bulge_sersic_n)
            bulge = {"x": g["x"], "y": g["y"], "n": n_b, "hlr": g["bulge_hlr"]}
            bulge.update(common, q=g["bulge_q"], pa=g["pa"], lane=g["lane"])
            self.add("sersic", bulge, bulge_frac * g["flux"], g["bulge_sed"])


def _pair(
    b: _Builder, primary: dict[str, Any], *, merging: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Add a companion to ``primary``: a merging pair (distorted, tails) or a chance projection.

    The pair is re-centred so that its flux-weighted centre keeps the primary's offset from the
    frame centre. Returns the secondary galaxy and a summary of the pair.
    """
    pc, rng = b.cfg.pair, b.rng
    sep = float(rng.uniform(pc.separation_min, pc.separation_max)) * primary["hlr"]
    theta = float(rng.uniform(0.0, 2.0 * math.pi))
    ratio = loguniform(rng, pc.flux_ratio_min, pc.flux_ratio_max)
    hlr2 = primary["hlr"] * ratio**0.3 * math.exp(0.15 * rng.standard_normal())
    f2 = ratio / (1.0 + ratio)
    cx, cy = primary["x"], primary["y"]
    primary["x"], primary["y"] = cx - f2 * sep * math.cos(theta), cy - f2 * sep * math.sin(theta)
    sx, sy = primary["x"] + sep * math.cos(theta), primary["y"] + sep * math.sin(theta)
    second = b.galaxy(x=sx, y=sy, flux=primary["flux"] * ratio, hlr=hlr2)
    n_tails = [0, 0]
    tail_flux = [0.0, 0.0]
    if merging:
        spin = 1.0 if rng.random() < 0.5 else -1.0  # tails of both galaxies turn the same way
        has = [rng.random() < pc.tail_probability for _ in range(2)]
        if not any(has):
            has[int(rng.integers(2))] = True
        for k, (g, towards) in enumerate(((primary, theta), (second, theta + math.pi))):
            g["shear"] = float(rng.uniform(pc.shear_min, pc.shear_max))
            g["shear_beta"] = towards
            g["bend"] = float(rng.uniform(pc.bend_min, pc.bend_max)) * spin
            g["lopsided"] = float(rng.uniform(pc.lopsided_min, pc.lopsided_max))
            g["lopsided_angle"] = towards - g["pa"] + float(rng.normal(0.0, 0.5))
            if not has[k]:
                continue
            nt = int(rng.integers(1, pc.max_tails + 1))
            flux = b.take(g, float(rng.uniform(pc.tail_flux_min, pc.tail_flux_max)))
            for j in range(nt):
                # the first tail leaves from the far side, a second one from the near side
                angle = towards + math.pi * (1 - j % 2) + float(rng.normal(0.0, 0.4))
                geom = {
                    "x": g["x"],
                    "y": g["y"],
                    "hlr": g["hlr"],
                    "angle": angle,
                    "length": float(rng.uniform(pc.tail_length_min, pc.tail_length_max)),
                    "width": float(rng.uniform(pc.tail_width_min, pc.tail_width_max)),
                    "turn": spin * math.radians(rng.uniform(pc.tail_turn_min, pc.tail_turn_max)),
                }
                b.add("tail", geom, flux / nt, 0.5 * (g["young_sed"] + g["disk_sed"]))
            n_tails[k], tail_flux[k] = nt, flux / g["flux"]
    b.commit(primary)
    b.commit(second)
    summary = {
        "separation": sep,
        "separation_hlr": sep / primary["hlr"],
        "flux_ratio": ratio,
        "n_tails": n_tails,
        "tail_flux": tail_flux,
    }
    return second, summary


def _galaxy_params(prefix: str, g: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("x", "y", "flux", "hlr", "q", "pa", "bt", "shear", "bend", "lopsided")
    if g is None:
        return {f"{prefix}_{k}": float("nan") for k in keys}
    out = {f"{prefix}_{k}": float(g[k]) for k in keys}
    out[f"{prefix}_pa"] = math.degrees(g["pa"]) % 180.0
    out[f"{prefix}_bend"] = abs(g["bend"])
    return out


def _main_galaxy(b: _Builder, **kw: Any) -> dict[str, Any]:
    pop, rng = b.cfg.population, b.rng
    x, y = rng.normal(0.0, pop.offset_sd, size=2)
    flux = loguniform(rng, pop.flux_min, pop.flux_max)
    return b.galaxy(x=float(x), y=float(y), flux=flux, **kw)


def _add_arms(b: _Builder, g: dict[str, Any]) -> dict[str, Any]:
    ac, rng = b.cfg.arms, b.rng
    w = np.asarray(ac.count_weights, dtype=float)
    m = int(rng.choice(len(w), p=w / w.sum())) + 1
    pitch = float(rng.uniform(ac.pitch_min, ac.pitch_max))
    amp = float(rng.uniform(ac.amplitude_min, ac.amplitude_max))
    g["arms"] = (m, math.radians(pitch), amp, float(rng.uniform(0.0, 2.0 * math.pi)))
    return {"arm_count": m, "arm_pitch": pitch, "arm_amplitude": amp}


def _add_ring(b: _Builder, g: dict[str, Any]) -> dict[str, float]:
    rc, rng = b.cfg.ring, b.rng
    radius = float(rng.uniform(rc.radius_min, rc.radius_max)) * g["hlr"]
    width = float(rng.uniform(rc.width_min, rc.width_max)) * g["hlr"]
    flux = b.take(g, float(rng.uniform(rc.flux_min, rc.flux_max)))
    geom = {"x": g["x"], "y": g["y"], "pa": g["pa"], "q": g["q"], "radius": radius, "width": width}
    b.add("ring", geom, flux, g["young_sed"])
    return {"ring_radius": radius, "ring_flux": flux / g["flux"]}


def _add_bar(b: _Builder, g: dict[str, Any]) -> float:
    """Add a bar (a flat n=0.5 Sersic inside the disk plane); returns its flux fraction."""
    rc, rng = b.cfg.ring, b.rng
    length = float(rng.uniform(rc.bar_length_min, rc.bar_length_max)) * g["hlr"]
    bq = float(rng.uniform(rc.bar_axis_ratio_min, rc.bar_axis_ratio_max))
    flux = b.take(g, float(rng.uniform(rc.bar_flux_min, rc.bar_flux_max)))
    # bar position angle in the disk plane, projected with the disk's inclination
    ang = float(rng.uniform(0.0, math.pi))
    bx, by = math.cos(ang), math.sin(ang) * g["q"]
    proj_len = length * math.hypot(bx, by)
    proj_pa = g["pa"] + math.atan2(by, bx)
    geom = {"x": g["x"], "y": g["y"], "n": 0.5, "hlr": proj_len, "q": bq, "pa": proj_pa}
    b.add("sersic", geom, flux, g["bulge_sed"])
    return flux / g["flux"]


def _add_clumps(b: _Builder, g: dict[str, Any]) -> int:
    ic, rng = b.cfg.irregular, b.rng
    k = int(rng.integers(ic.clumps_min, ic.clumps_max + 1))
    flux = b.take(g, float(rng.uniform(ic.clump_flux_min, ic.clump_flux_max)))
    u = rng.normal(0.0, ic.clump_spread, size=(k, 2)) * g["hlr"]
    c, s = math.cos(g["pa"]), math.sin(g["pa"])
    xs = g["x"] + u[:, 0] * c - u[:, 1] * g["q"] * s
    ys = g["y"] + u[:, 0] * s + u[:, 1] * g["q"] * c
    w = rng.uniform(0.3, 1.0, size=k)
    w = w / w.sum()
    for j in range(k):
        geom = {"x": float(xs[j]), "y": float(ys[j]), "sigma": ic.clump_sigma * g["hlr"]}
        b.add("clump", geom, flux * float(w[j]), g["young_sed"])
    return k


def _add_star(b: _Builder, g: dict[str, Any]) -> float:
    """A bright foreground star with diffraction spikes near the galaxy; returns its flux."""
    ic, rng = b.cfg.irregular, b.rng
    flux = g["flux"] * loguniform(rng, ic.star_flux_min, ic.star_flux_max)
    im = b.cfg.image
    half = 0.3 * min(im.width, im.height) * im.pixel_scale
    x, y = rng.uniform(-half, half, size=2)
    geom = {
        "x": float(x),
        "y": float(y),
        "spikes": 0.08,
        "spike_length": 0.25 * min(im.width, im.height) * im.pixel_scale,
        "spike_angle": float(rng.uniform(0.0, math.pi / 2)),
    }
    sed = _sed(rng, b.cfg.population.bulge_sed, 0.3)
    b.add("point", geom, flux, sed)
    return flux


def _clump_blob(grid: _Grid, p: dict[str, Any]) -> np.ndarray:
    return _blobs(
        grid, np.array([p["x"]]), np.array([p["y"]]), np.array([p["sigma"]]), np.array([1.0])
    )


_RENDER["clump"] = _clump_blob


# --------------------------------------------------------------------------------------------
# rendering


@dataclass
class _Rendered:
    image: np.ndarray  # (C, H, W) float64 with noise
    model: np.ndarray  # (C, H, W) float64 noiseless
    snr: float  # matched-filter S/N of the whole model in the middle band (configured noise)


def _render(cfg: Any, components, ss: np.random.SeedSequence) -> _Rendered:
    im, pc, nz = cfg.image, cfg.psf, cfg.noise
    scale, nb = im.pixel_scale, len(im.bands)
    kernels = [
        psf_kernel(
            psf_profile(pc.profile, f, moffat_beta=pc.moffat_beta),
            fwhm=f,
            scale=scale,
            radius_fwhm=_KERNEL_FWHM,
            method="no_pixel",  # the sub-pixel grid already integrates over the pixel
        )
        for f in pc.fwhm
    ]
    pad = max(k.shape[0] for k in kernels) // 2
    grid = _Grid(im.width, im.height, scale, im.oversample, pad)
    sub = np.zeros((nb, *grid.shape))
    for kind, geom, flux in components:
        unit = _RENDER[kind](grid, geom)
        for c in range(nb):
            sub[c] += flux[c] * unit
    h, w = im.height, im.width
    model = np.empty((nb, h, w))
    for c in range(nb):
        binned = grid.bin(sub[c])
        kern = kernels[c]
        off = pad - kern.shape[0] // 2
        src = binned[off : off + h + kern.shape[0] - 1, off : off + w + kern.shape[1] - 1]
        model[c] = fftconvolve(src, kern, mode="valid")
    if im.surface_brightness:
        model /= scale**2
    ref = nb // 2
    var_ref = nz.sky_sigma[ref] ** 2 + (
        np.clip(model[ref], 0, None) / nz.gain[ref] if nz.poisson else 0.0
    )
    snr = float(np.sqrt(np.sum(model[ref] ** 2 / np.maximum(var_ref, 1e-30))))
    if not nz.enabled:
        return _Rendered(image=model.copy(), model=model, snr=snr)
    deviate = galsim.GaussianDeviate(galsim.BaseDeviate(galsim_seed(ss, 1)))
    image = np.empty_like(model)
    for c in range(nb):
        image[c], _ = add_gaussian_noise(
            model[c],
            base_var=nz.sky_sigma[c] ** 2,
            gain=nz.gain[c],
            poisson=nz.poisson,
            deviate=deviate,
        )
    return _Rendered(image=image, model=model, snr=snr)


def _finish(
    task: str,
    cfg: Any,
    r: _Rendered,
    label: np.ndarray,
    params: dict[str, Any],
    image_id: int,
    return_model: bool,
    extra: dict[str, np.ndarray] | None = None,
) -> GalaxyScene:
    return GalaxyScene(
        task=task,
        image=r.image.astype(np.float32),
        bands=tuple(cfg.image.bands),
        label=np.asarray(label, dtype=np.float32),
        params=params,
        extra=extra or {},
        pixel_scale=cfg.image.pixel_scale,
        unit=cfg.image.unit,
        image_id=int(image_id),
        model=r.model.astype(np.float32) if return_model else None,
    )


def _prepare(cfg: Any, cls: type, seed: Any) -> tuple[Any, np.random.SeedSequence]:
    if not isinstance(cfg, cls):
        raise ConfigError(f"config: expected a {cls.__name__}, got {type(cfg).__name__}")
    return validate_galaxy_sim_config(cfg), as_seed_sequence(seed)


# --------------------------------------------------------------------------------------------
# the three tasks


def _merger_params(
    kind: str, g1: dict[str, Any], g2: dict[str, Any] | None, pair: dict[str, Any] | None
) -> dict[str, Any]:
    nan = float("nan")
    p: dict[str, Any] = {
        "kind": kind,
        "n_galaxies": 1 if g2 is None else 2,
        "separation": pair["separation"] if pair else nan,
        "separation_hlr": pair["separation_hlr"] if pair else nan,
        "flux_ratio": pair["flux_ratio"] if pair else nan,
        "n_tails": int(sum(pair["n_tails"])) if pair else 0,
        "tail_flux": float(sum(pair["tail_flux"])) if pair else 0.0,
    }
    p["distorted"] = int(
        p["n_tails"] > 0 or g1["shear"] > 0 or (g2 is not None and g2["shear"] > 0)
    )
    p.update(_galaxy_params("g1", g1))
    p.update(_galaxy_params("g2", g2))
    return p


def _build_merger_like(b: _Builder, kind: str) -> dict[str, Any]:
    """Components of a merger-task scene of ``kind`` (merger / isolated / projection)."""
    g1 = _main_galaxy(b)
    if kind == "isolated":
        b.commit(g1)
        return _merger_params(kind, g1, None, None)
    g2, pair = _pair(b, g1, merging=kind == "merger")
    return _merger_params(kind, g1, g2, pair)


def simulate_merger_scene(
    *,
    config: MergerSimConfig | None = None,
    seed: int | np.random.SeedSequence,
    image_id: int = 0,
    return_model: bool = False,
) -> GalaxyScene:
    """Simulate one DeepMerge-like image: a merging pair (1) or not (0).

    Parameters
    ----------
    config : MergerSimConfig, optional
        Defaults to ``MergerSimConfig()`` (``configs/sim/mergers.yaml``).
    seed : int or numpy.random.SeedSequence
        The scene is a pure function of ``(config, seed)``.
    image_id : int
        Carried into the scene.
    return_model : bool
        Also return the noiseless image.

    Returns
    -------
    GalaxyScene
        ``image`` (3, 75, 75) float32 by default (microjansky/arcsec^2), ``label`` shape (1,);
        ``params['kind']`` is ``merger``, ``isolated`` or ``projection``.
    """
    cfg, ss = _prepare(config if config is not None else MergerSimConfig(), MergerSimConfig, seed)
    rng = np.random.default_rng(substream(ss, 0))
    sc = cfg.scene
    if rng.random() < sc.positive_fraction:
        kind = "merger"
    else:
        kind = "projection" if rng.random() < sc.projection_fraction else "isolated"
    b = _Builder(cfg, rng)
    params = {"label": int(kind == "merger"), **_build_merger_like(b, kind)}
    with single_threaded_galsim():
        r = _render(cfg, b.components, ss)
    params["snr"] = r.snr
    label = np.array([params["label"]])
    return _finish("mergers", cfg, r, label, params, image_id, return_model)


_FOUR_KEYS = (
    "bar_flux",
    "ring_radius",
    "ring_flux",
    "arm_count",
    "arm_pitch",
    "arm_amplitude",
    "n_clumps",
    "dust_lane",
    "star_flux",
)


def simulate_four_class_scene(
    *,
    config: FourClassSimConfig | None = None,
    seed: int | np.random.SeedSequence,
    image_id: int = 0,
    return_model: bool = False,
) -> GalaxyScene:
    """Simulate one four-class image: normal, ringed, merger or other (one-hot label).

    Parameters
    ----------
    config : FourClassSimConfig, optional
        Defaults to ``FourClassSimConfig()`` (``configs/sim/four_class.yaml``).
    seed : int or numpy.random.SeedSequence
        The scene is a pure function of ``(config, seed)``.
    image_id : int
        Carried into the scene.
    return_model : bool
        Also return the noiseless image.

    Returns
    -------
    GalaxyScene
        ``image`` (3, 128, 128) float32 g, r, i in nanomaggies by default; ``label`` one-hot (4,)
        ``[normal, ringed, merger, other]``; ``params['subkind']`` details "other"
        (``irregular``, ``edge_on``, ``artifact``).
    """
    cfg, ss = _prepare(
        config if config is not None else FourClassSimConfig(), FourClassSimConfig, seed
    )
    rng = np.random.default_rng(substream(ss, 0))
    sc = cfg.scene
    w = np.asarray(sc.class_weights, dtype=float)
    cls = int(rng.choice(4, p=w / w.sum()))
    b = _Builder(cfg, rng)
    extra: dict[str, Any] = dict.fromkeys(_FOUR_KEYS, 0.0)
    subkind = FOUR_CLASS_NAMES[cls]
    g2 = pair = None
    if cls == 0:  # normal
        g = _main_galaxy(b)
        if rng.random() < sc.normal_arms_probability:
            extra.update(_add_arms(b, g))
        b.commit(g)
    elif cls == 1:  # ringed
        g = _main_galaxy(b, q_min=max(cfg.population.axis_ratio_min, 0.45))
        if rng.random() < cfg.ring.bar_probability:
            extra["bar_flux"] = _add_bar(b, g)
        extra.update(_add_ring(b, g))
        b.commit(g)
    elif cls == 2:  # merger
        g = _main_galaxy(b)
        g2, pair = _pair(b, g, merging=True)
    else:  # other
        ow = np.asarray(sc.other_weights, dtype=float)
        subkind = ("irregular", "edge_on", "artifact")[int(rng.choice(3, p=ow / ow.sum()))]
        ic = cfg.irregular
        if subkind == "irregular":
            g = _main_galaxy(b, bt=float(rng.uniform(0.0, 0.1)))
            g["lopsided"] = float(rng.uniform(ic.lopsided_min, ic.lopsided_max))
            g["lopsided_angle"] = float(rng.uniform(0.0, 2.0 * math.pi))
            extra["n_clumps"] = _add_clumps(b, g)
        elif subkind == "edge_on":
            g = _main_galaxy(b, q=float(rng.uniform(0.06, ic.edge_on_axis_ratio_max)))
            g["bulge_q"] = float(rng.uniform(0.5, 0.9))
            g["lane"] = float(rng.uniform(0.0, ic.dust_lane_depth_max))
            extra["dust_lane"] = g["lane"]
        else:
            g = _main_galaxy(b)
            g["flux"] *= 0.3
            extra["star_flux"] = _add_star(b, g)
        b.commit(g)
    with single_threaded_galsim():
        r = _render(cfg, b.components, ss)
    label = np.zeros(4)
    label[cls] = 1.0
    params: dict[str, Any] = {"class": FOUR_CLASS_NAMES[cls], "subkind": subkind}
    params.update(_galaxy_params("g1", g))
    params.update(_galaxy_params("g2", g2))
    params["separation"] = pair["separation"] if pair else float("nan")
    params["n_tails"] = int(sum(pair["n_tails"])) if pair else 0
    params.update(extra)
    params["snr"] = r.snr
    return _finish("four_class", cfg, r, label, params, image_id, return_model)


# ------------------------------------------------------------------- morphology and its votes


def _kernel_probs(value: float, centres: tuple[float, ...], sigma: float) -> np.ndarray:
    c = np.asarray(centres, dtype=float)
    p = np.exp(-0.5 * ((value - c) / sigma) ** 2) + 1e-12
    return p / p.sum()


def answer_probabilities(params: dict[str, Any], votes: Any) -> dict[int, np.ndarray]:
    """Ideal answer probabilities of the 11 Galaxy Zoo questions for a galaxy's true parameters.

    The explicit mapping of the module docstring ("Synthetic labels"), before the floor and the
    Dirichlet perturbation.

    Parameters
    ----------
    params : dict
        A morphology scene's ``params`` (``kind``, ``bt``, ``q``, ``bar``, ``bar_flux``, ``arms``,
        ``arm_count``, ``arm_pitch``, ``arm_amplitude``, ``odd``, ``odd_feature``, ``snr``).
    votes : VotesConfig
        Visibility and edge-on parameters.

    Returns
    -------
    dict of int to ndarray
        Question number -> probabilities of its answers (each sums to 1).
    """
    v = params["snr"] / (params["snr"] + votes.snr_half)
    kind, bt, q = params["kind"], params["bt"], params["q"]
    odd_kind = params["odd_feature"]
    p: dict[int, np.ndarray] = {}
    if kind == "star":
        p[1] = np.array([0.05, 0.05, 0.9])
    else:
        feat = (1.0 - bt) * (0.35 + 0.65 * v)
        if odd_kind in ("disturbed", "irregular", "merger"):
            feat = min(1.0, feat + 0.2)
        p[1] = np.array([1.0 - feat, feat, 0.0])
    edge = 1.0 / (1.0 + math.exp((q - votes.edge_on_axis_ratio) / votes.edge_on_width))
    p[2] = np.array([edge, 1.0 - edge])
    face_bar = min(max((q - 0.3) / 0.4, 0.0), 1.0)
    bar = params["bar"] * v * min(1.0, params["bar_flux"] / 0.08) * face_bar
    p[3] = np.array([bar, 1.0 - bar])
    face_arm = min(max((q - 0.2) / 0.4, 0.0), 1.0)
    spiral = params["arms"] * v * min(1.0, params["arm_amplitude"] / 0.5) * face_arm
    p[4] = np.array([spiral, 1.0 - spiral])
    p[5] = _kernel_probs(bt, (0.0, 0.12, 0.3, 0.6), 0.07 + 0.1 * (1.0 - v))
    odd = params["odd"] * (0.3 + 0.6 * v)
    p[6] = np.array([odd, 1.0 - odd])
    p[7] = _kernel_probs(q, (0.9, 0.6, 0.3), 0.1 + 0.1 * (1.0 - v))
    base = np.array([0.1, 0.1, 0.2, 0.2, 0.2, 0.1, 0.1])
    if params["odd"]:
        c = 0.3 + 0.5 * v
        onehot = np.zeros(7)
        onehot[ODD_FEATURES.index(odd_kind)] = 1.0
        p[8] = c * onehot + (1.0 - c) * base
    else:
        p[8] = base
    p[9] = _kernel_probs(bt, (0.35, 0.15, 0.0), 0.08 + 0.1 * (1.0 - v))
    if params["arms"]:
        p[10] = _kernel_probs(params["arm_pitch"], (10.0, 20.0, 30.0), 5.0 + 5.0 * (1.0 - v))
        m = min(int(params["arm_count"]), 5)
        counts = _kernel_probs(m, (1, 2, 3, 4, 5), 0.5)
        cant = 0.1 + 0.5 * (1.0 - v)
        p[11] = np.append((1.0 - cant) * counts, cant)
    else:
        p[10] = np.array([0.4, 0.4, 0.2])
        p[11] = np.array([0.08, 0.08, 0.08, 0.08, 0.08, 0.6])
    return p


def sample_votes(
    probs: dict[int, np.ndarray], *, n_volunteers: int, votes: Any, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated volunteers walking the Galaxy Zoo tree.

    Each question's probabilities are mixed with the floor, perturbed by a Dirichlet draw
    (concentration ``votes.concentration``) and answered by the volunteers who gave the parent
    answer (all ``n_volunteers`` for Q1 and Q6).

    Returns
    -------
    counts : ndarray, shape (37,), int64
        Votes per answer (Kaggle column order).
    fractions : ndarray, shape (37,), float64
        ``counts / n_volunteers`` (cumulative: answers sum to the parent answer's fraction).
    """
    from clumpdet.tasks.gz_tree import QUESTIONS, parent_index, question_slices

    slices = question_slices()
    counts = np.zeros(37, dtype=np.int64)
    for q in QUESTIONS:  # numeric order visits every parent before its children
        k = q.number
        pi = parent_index(k)
        n = n_volunteers if pi is None else int(counts[pi])
        pk = np.asarray(probs[k], dtype=float)
        pk = (1.0 - pk.size * votes.floor) * pk / pk.sum() + votes.floor
        pk = rng.dirichlet(votes.concentration * pk)
        counts[slices[k]] = rng.multinomial(n, pk / pk.sum()) if n > 0 else 0
    return counts, counts / float(n_volunteers)


def candels_probabilities(params: dict[str, Any], votes: Any, psf_fwhm: float) -> np.ndarray:
    """Ideal CANDELS-like probabilities (spheroid, disk, irregular, point source, unclassifiable).

    See the module docstring; ``psf_fwhm`` in arcsec (middle band).
    """
    v = params["snr"] / (params["snr"] + votes.snr_half)
    if params["kind"] == "star":
        w = np.array([0.0, 0.0, 0.0, 1.0, 0.6 * (1.0 - v) ** 2])
    else:
        bt = params["bt"]
        irr = 0.8 if params["odd_feature"] in ("disturbed", "irregular", "merger") else 0.05
        ps = math.exp(-((params["hlr"] / psf_fwhm) ** 2))
        w = np.array([bt, 1.0 - bt, irr, ps, 0.6 * (1.0 - v) ** 2])
    return w / w.sum()


_MORPH_KEYS = (
    "kind",
    "odd",
    "odd_feature",
    "flux",
    "hlr",
    "q",
    "bt",
    "sersic_n",
    "bar",
    "bar_flux",
    "arms",
    "arm_count",
    "arm_pitch",
    "arm_amplitude",
    "ring_radius",
    "n_clumps",
    "dust_lane",
    "n_tails",
)


def simulate_morphology_scene(
    *,
    config: MorphologySimConfig | None = None,
    seed: int | np.random.SeedSequence,
    image_id: int = 0,
    return_model: bool = False,
) -> GalaxyScene:
    """Simulate one galaxy with synthetic Galaxy Zoo votes and CANDELS-like fractions.

    Parameters
    ----------
    config : MorphologySimConfig, optional
        Defaults to ``MorphologySimConfig()`` (``configs/sim/morphology.yaml``).
    seed : int or numpy.random.SeedSequence
        The scene (image and votes) is a pure function of ``(config, seed)``.
    image_id : int
        Carried into the scene.
    return_model : bool
        Also return the noiseless image.

    Returns
    -------
    GalaxyScene
        ``image`` (3, 64, 64) g, r, i nanomaggies by default; ``label`` the 37 cumulative vote
        fractions; ``extra['counts']`` (37,), ``extra['candels']`` (5,),
        ``extra['candels_counts']`` (5,); ``params`` the true morphology (module docstring).
    """
    cfg, ss = _prepare(
        config if config is not None else MorphologySimConfig(), MorphologySimConfig, seed
    )
    rng = np.random.default_rng(substream(ss, 0))
    mc = cfg.scene
    b = _Builder(cfg, rng)
    p: dict[str, Any] = dict.fromkeys(_MORPH_KEYS, 0)
    odd = rng.random() < mc.odd_probability
    ow = np.asarray(mc.odd_weights, dtype=float)
    odd_kind = ODD_FEATURES[int(rng.choice(7, p=ow / ow.sum()))] if odd else "none"
    if rng.random() < mc.star_fraction:
        kind, odd, odd_kind = "star", False, "none"
    elif odd_kind in ("ring", "irregular", "dust_lane"):
        kind = "disk"
    else:
        kind = "elliptical" if rng.random() < mc.elliptical_fraction else "disk"

    if kind == "star":
        pop = cfg.population
        flux = loguniform(rng, pop.flux_min, pop.flux_max)
        x, y = rng.normal(0.0, pop.offset_sd, size=2)
        geom = {"x": float(x), "y": float(y), "spikes": 0.0}
        b.add("point", geom, flux, _sed(rng, pop.bulge_sed, 0.3))
        p.update(kind="star", flux=flux, hlr=0.0, q=1.0, bt=1.0)
        g = None
    elif kind == "elliptical":
        n_s = float(rng.uniform(mc.elliptical_sersic_n_min, mc.elliptical_sersic_n_max))
        qe = float(rng.uniform(mc.elliptical_axis_ratio_min, 1.0))
        g = _main_galaxy(b, bt=1.0)
        g["bulge_hlr"], g["bulge_q"], g["bulge_n"] = g["hlr"] * 0.7, qe, n_s
        g["q"] = qe
        p.update(sersic_n=n_s)
    else:
        if odd_kind == "dust_lane":
            g = _main_galaxy(b, q=float(rng.uniform(0.06, 0.3)))
        else:
            g = _main_galaxy(b, q_min=mc.disk_axis_ratio_min)
        if odd_kind == "irregular":
            g["bt"] = float(rng.uniform(0.0, 0.1))
        if g["q"] < 0.5:
            g["bulge_q"] = float(rng.uniform(0.5, 0.9))
        if g["q"] > 0.35 and rng.random() < mc.bar_probability and odd_kind != "irregular":
            p["bar"], p["bar_flux"] = 1, _add_bar(b, g)
        if rng.random() < mc.arms_probability and odd_kind not in ("irregular", "ring"):
            p["arms"] = 1
            arm = _add_arms(b, g)
            p.update(arm)
        p["sersic_n"] = 1.0
    if g is not None:
        if odd_kind == "ring":
            p["ring_radius"] = _add_ring(b, g)["ring_radius"]
        elif odd_kind == "lens":
            flux = b.take(g, 0.15) if kind == "disk" else 0.1 * g["flux"]
            geom = {"x": g["x"], "y": g["y"], "n": 0.5, "hlr": 0.8 * g["hlr"], "q": g["q"]}
            geom["pa"] = g["pa"]
            b.add("sersic", geom, flux, g["bulge_sed"])
        elif odd_kind == "disturbed":
            pc = cfg.pair
            g["lopsided"] = float(rng.uniform(pc.lopsided_min, pc.lopsided_max))
            g["lopsided_angle"] = float(rng.uniform(0.0, 2.0 * math.pi))
            g["bend"] = float(rng.uniform(pc.bend_min, pc.bend_max))
            g["shear"] = float(rng.uniform(pc.shear_min, pc.shear_max))
            g["shear_beta"] = float(rng.uniform(0.0, math.pi))
        elif odd_kind == "irregular":
            ic = cfg.irregular
            g["lopsided"] = float(rng.uniform(ic.lopsided_min, ic.lopsided_max))
            g["lopsided_angle"] = float(rng.uniform(0.0, 2.0 * math.pi))
            p["n_clumps"] = _add_clumps(b, g)
        elif odd_kind == "other":
            _add_star(b, g)
        elif odd_kind == "dust_lane":
            g["lane"] = float(rng.uniform(0.3, max(0.3, cfg.irregular.dust_lane_depth_max)))
            p["dust_lane"] = g["lane"]
        if odd_kind == "merger":
            _, pair = _pair(b, g, merging=True)
            p["n_tails"] = int(sum(pair["n_tails"]))
        else:
            b.commit(g)
        p.update(kind=kind, flux=g["flux"], hlr=g["hlr"], q=g["q"], bt=g["bt"])
    p["odd"], p["odd_feature"] = int(odd), odd_kind

    with single_threaded_galsim():
        r = _render(cfg, b.components, ss)
    p["snr"] = r.snr
    vrng = np.random.default_rng(substream(ss, 2))
    vc = cfg.votes
    n_vol = int(vrng.integers(vc.volunteers_min, vc.volunteers_max + 1))
    counts, fractions = sample_votes(
        answer_probabilities(p, vc), n_volunteers=n_vol, votes=vc, rng=vrng
    )
    p["n_volunteers"] = n_vol
    ref = len(cfg.image.bands) // 2
    pc = candels_probabilities(p, vc, cfg.psf.fwhm[ref])
    pc = (1.0 - 5 * vc.floor) * pc + vc.floor
    pc = vrng.dirichlet(vc.concentration * pc)
    c_counts = vrng.multinomial(vc.candels_classifiers, pc / pc.sum())
    extra = {
        "counts": counts,
        "candels": (c_counts / vc.candels_classifiers).astype(np.float32),
        "candels_counts": c_counts.astype(np.int64),
    }
    return _finish("morphology", cfg, r, fractions, p, image_id, return_model, extra)


_SIMULATORS = {
    "mergers": simulate_merger_scene,
    "four_class": simulate_four_class_scene,
    "morphology": simulate_morphology_scene,
}


def simulate_galaxy_scene(
    *,
    task: str,
    config: Any = None,
    seed: int | np.random.SeedSequence,
    image_id: int = 0,
    return_model: bool = False,
) -> GalaxyScene:
    """Simulate one scene of ``task`` (``"mergers"``, ``"four_class"``, ``"morphology"``).

    ``config`` defaults to the task's default config; see the per-task functions.
    """
    cls = task_config_class(task)
    cfg = cls() if config is None else config
    if task_of_config(cfg) != task:
        raise ConfigError(f"config: a {type(cfg).__name__} cannot simulate task {task!r}")
    return _SIMULATORS[task](config=cfg, seed=seed, image_id=image_id, return_model=return_model)


def galaxy_rgb(image: np.ndarray, *, q: float = 6.0, headroom: float = 4.0) -> np.ndarray:
    """Lupton et al. (2004) asinh colour composite of a 3-band cube, bluest band as blue.

    Each band's black level is its robust sky sigma (median absolute deviation), so noise stays
    dark; the stretch is ``(99.9th percentile - black) / headroom``.

    Parameters
    ----------
    image : ndarray, shape (3, H, W)
        Bands ordered bluest first (as in every galaxy-simulation config), any unit.
    q : float
        Asinh softening (larger shows fainter light).
    headroom : float
        Divides the stretch (larger saturates the cores more).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    from astropy.visualization import make_lupton_rgb

    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {a.shape}")
    flat = a.reshape(3, -1)
    med = np.median(flat, axis=1)
    sigma = 1.4826 * np.median(np.abs(flat - med[:, None]), axis=1)
    minimum = med + sigma
    stretch = max(float(np.percentile(a, 99.9) - minimum.mean()) / headroom, 1e-12)
    return make_lupton_rgb(a[2], a[1], a[0], minimum=minimum[::-1], stretch=stretch, Q=q)
