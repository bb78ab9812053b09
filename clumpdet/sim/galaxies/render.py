"""Rendering of the galaxy-classification scenes: analytic components, PSFs and noise.

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
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import galsim
import numpy as np
from scipy.signal import fftconvolve
from scipy.special import erf, gamma, gammaincinv

from clumpdet.sim.common import add_gaussian_noise, galsim_seed, psf_kernel, psf_profile
from clumpdet.sim.optics import band_values

#: PSF kernels reach this many FWHM from their centre.
KERNEL_FWHM = 4.0


# --------------------------------------------------------------------------------------------
# analytic components on a sub-pixel grid


@functools.lru_cache(maxsize=64)
def _sersic_b(n: float) -> float:
    return float(gammaincinv(2.0 * n, 0.5))


class Grid:
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


def local_frame(
    grid: Grid, x0: float, y0: float, pa: float, shear: tuple[float, float] = (0.0, 0.0)
):
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


def sersic_image(grid: Grid, p: dict[str, Any]) -> np.ndarray:
    """Unit-flux sub-pixel image of a (distorted) Sersic component described by ``p``."""
    n, hlr, q = p["n"], p["hlr"], p["q"]
    xr, yr = local_frame(
        grid, p["x"], p["y"], p["pa"], (p.get("shear", 0.0), p.get("shear_beta", 0.0))
    )
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


def ring_image(grid: Grid, p: dict[str, Any]) -> np.ndarray:
    """Unit-flux ring: Gaussian in radius (radius R, sigma w) in an inclined disk plane."""
    xr, yr = local_frame(grid, p["x"], p["y"], p["pa"])
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


def blobs(grid: Grid, xs: np.ndarray, ys: np.ndarray, sig: np.ndarray, wts: np.ndarray):
    """Sum of circular Gaussians (unit total flux when ``sum(wts) == 1``), separably."""
    gx = np.exp(-0.5 * ((grid.x[None, :] - xs[:, None]) / sig[:, None]) ** 2)
    gy = np.exp(-0.5 * ((grid.y[None, :] - ys[:, None]) / sig[:, None]) ** 2)
    amp = wts * grid.area / (2.0 * math.pi * sig**2)
    # einsum without BLAS: a threaded BLAS matmul of this size thrashes on busy cores (16 ms
    # instead of 0.7 ms on 2 shared cores)
    return np.einsum("ky,kx->yx", gy * amp[:, None], gx, optimize=False)


def tail_image(grid: Grid, p: dict[str, Any], k: int = 40) -> np.ndarray:
    """Unit-flux curved tidal tail: Gaussians along an outward arc that fade and widen."""
    t = np.linspace(0.0, 1.0, k)
    rho = p["hlr"] * (0.6 + p["length"] * t)
    theta = p["angle"] + p["turn"] * t
    xs = p["x"] + rho * np.cos(theta)
    ys = p["y"] + rho * np.sin(theta)
    sig = np.maximum(p["width"] * p["hlr"] * (0.6 + 0.8 * t), 0.5 * grid.scale)
    wts = np.exp(-1.5 * t)
    return blobs(grid, xs, ys, sig, wts / wts.sum())


def point_image(grid: Grid, p: dict[str, Any]) -> np.ndarray:
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
    return blobs(grid, np.array(xs), np.array(ys), np.array(sig), np.array(wts))


def clump_image(grid: Grid, p: dict[str, Any]) -> np.ndarray:
    return blobs(
        grid, np.array([p["x"]]), np.array([p["y"]]), np.array([p["sigma"]]), np.array([1.0])
    )


#: Unit-flux image function of each component kind.
COMPONENT_IMAGES = {
    "sersic": sersic_image,
    "ring": ring_image,
    "tail": tail_image,
    "point": point_image,
    "clump": clump_image,
}


# --------------------------------------------------------------------------------------------
# rendering


@dataclass
class Rendered:
    image: np.ndarray  # (C, H, W) float64 with noise
    model: np.ndarray  # (C, H, W) float64 noiseless
    snr: float  # matched-filter S/N of the whole model in the middle band (configured noise)


def render_components(cfg: Any, components, ss: np.random.SeedSequence) -> Rendered:
    im, pc, nz = cfg.image, cfg.psf, cfg.noise
    scale, nb = im.pixel_scale, len(im.bands)
    sky_sigma, gain = band_values(nz.sky_sigma, im.bands), band_values(nz.gain, im.bands)
    kernels = [
        psf_kernel(
            psf_profile(pc.profile, f, moffat_beta=pc.moffat_beta),
            fwhm=f,
            scale=scale,
            radius_fwhm=KERNEL_FWHM,
            method="no_pixel",  # the sub-pixel grid already integrates over the pixel
        )
        for f in band_values(pc.fwhm, im.bands)
    ]
    pad = max(k.shape[0] for k in kernels) // 2
    grid = Grid(im.width, im.height, scale, im.oversample, pad)
    sub = np.zeros((nb, *grid.shape))
    for kind, geom, flux in components:
        unit = COMPONENT_IMAGES[kind](grid, geom)
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
    var_ref = sky_sigma[ref] ** 2 + (
        np.clip(model[ref], 0, None) / gain[ref] if nz.poisson else 0.0
    )
    snr = float(np.sqrt(np.sum(model[ref] ** 2 / np.maximum(var_ref, 1e-30))))
    if not nz.enabled:
        return Rendered(image=model.copy(), model=model, snr=snr)
    deviate = galsim.GaussianDeviate(galsim.BaseDeviate(galsim_seed(ss, 1)))
    image = np.empty_like(model)
    for c in range(nb):
        image[c], _ = add_gaussian_noise(
            model[c],
            base_var=sky_sigma[c] ** 2,
            gain=gain[c],
            poisson=nz.poisson,
            deviate=deviate,
        )
    return Rendered(image=image, model=model, snr=snr)
