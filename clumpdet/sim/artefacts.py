"""Detector artefacts for simulated frames: correlated noise, cosmic rays, saturation with bleed
trails, bad columns and residual sky gradients.

All functions work on one ``(H, W)`` plane in image units and draw from a NumPy ``Generator``
they are given, so a scene stays a pure function of its seed. Configured by
:class:`clumpdet.sim.fields.config.FieldArtefactConfig` (``artefacts:`` in
``configs/sim/fields_*.yaml``; every artefact is off by default).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def kernel_for_correlation(rho: float) -> np.ndarray:
    """1-D kernel ``[a, 1, a] / sqrt(1 + 2 a^2)`` whose smoothing gives lag-1 correlation ``rho``.

    White noise smoothed by this kernel along x and then y has unit variance and lag-1
    autocorrelation ``2a / (1 + 2a^2) = rho`` along each axis (``0 <= rho < 1/sqrt(2)``).
    """
    if rho <= 0:
        return np.array([1.0])
    a = (1 - math.sqrt(1 - 2 * rho**2)) / (2 * rho)
    k = np.array([a, 1.0, a])
    return k / math.sqrt(float(np.sum(k**2)))


def correlate_noise(draws: np.ndarray, rho: float) -> np.ndarray:
    """Unit white noise ``(H, W)`` -> unit-variance noise with lag-1 correlation ``rho``."""
    from scipy.ndimage import convolve1d

    if rho <= 0:
        return draws
    k = kernel_for_correlation(rho)
    out = convolve1d(draws, k, axis=1, mode="wrap")
    return convolve1d(out, k, axis=0, mode="wrap")


def add_cosmic_rays(
    plane: np.ndarray,
    rng: np.random.Generator,
    *,
    sigma: float,
    rate_per_mpix: float,
    length_px: tuple[float, float],
    peak_sigma: tuple[float, float],
) -> list[dict[str, Any]]:
    """Add Poisson(``rate_per_mpix`` x H W / 1e6) sharp cosmic-ray tracks in place.

    Each track is a line of ``Uniform(length_px)`` pixels at a random angle, drawn with
    sub-pixel steps into the nearest pixels (no PSF), its peak log-uniform in ``peak_sigma``
    sky sigmas. Returns one record per hit (``x, y, length, angle, peak``).
    """
    h, w = plane.shape
    n = int(rng.poisson(rate_per_mpix * h * w / 1e6))
    hits = []
    for _ in range(n):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        length = float(rng.uniform(*length_px))
        ang = float(rng.uniform(0, math.pi))
        peak = float(np.exp(rng.uniform(*np.log(peak_sigma)))) * sigma
        steps = max(1, math.ceil(length * 2))
        t = np.linspace(-length / 2, length / 2, steps) if steps > 1 else np.zeros(1)
        xs = np.clip((x0 + t * math.cos(ang)).astype(int), 0, w - 1)
        ys = np.clip((y0 + t * math.sin(ang)).astype(int), 0, h - 1)
        pix = np.unique(np.stack([ys, xs], axis=1), axis=0)
        plane[pix[:, 0], pix[:, 1]] += peak * rng.uniform(0.6, 1.0, size=len(pix))
        hits.append({"x": x0, "y": y0, "length": length, "angle": ang, "peak": peak})
    return hits


def saturate(plane: np.ndarray, level: float, *, bleed: bool = True) -> int:
    """Clip ``plane`` at ``level`` in place; the excess charge bleeds along the columns.

    In each column the charge above ``level`` is summed and spread symmetrically up and down
    from the saturated run, filling pixels to ``level`` until it is used up (charge leaving the
    frame is lost). Returns the number of pixels at ``level`` afterwards.
    """
    if level <= 0:
        return 0
    over = plane > level
    if not over.any():
        return 0
    h, _ = plane.shape
    for j in np.flatnonzero(over.any(axis=0)):
        col = plane[:, j]
        rows = np.flatnonzero(col > level)
        excess = float(np.sum(col[rows] - level))
        col[rows] = level
        if not bleed:
            continue
        up, down = int(rows.min()) - 1, int(rows.max()) + 1
        toggle = 0
        while excess > 0 and (up >= 0 or down < h):
            i = down if (toggle == 0 and down < h) or up < 0 else up
            room = max(0.0, level - float(col[i]))
            take = min(room, excess)
            col[i] += take
            excess -= take
            if i == down:
                down += 1
            else:
                up -= 1
            toggle ^= 1
    return int(np.sum(plane >= level))


def add_bad_columns(
    plane: np.ndarray,
    rng: np.random.Generator,
    *,
    sigma: float,
    rate_per_kpix: float,
    offset_sigma: float,
) -> list[dict[str, Any]]:
    """Poisson(``rate_per_kpix`` x W / 1000) dead or hot columns (in place).

    A dead column is set to ``-offset_sigma`` sigma, a hot one to ``+offset_sigma`` sigma plus
    its noise, from a random start row to the top or bottom edge. Returns ``x, y0, y1, kind``.
    """
    h, w = plane.shape
    n = int(rng.poisson(rate_per_kpix * w / 1000.0))
    cols = []
    for _ in range(n):
        x = int(rng.integers(0, w))
        start = int(rng.integers(0, h))
        y0, y1 = (0, start) if rng.uniform() < 0.5 else (start, h)
        if y1 - y0 < 2:
            y0, y1 = 0, h
        if rng.uniform() < 0.5:
            plane[y0:y1, x] = -offset_sigma * sigma
            kind = "dead"
        else:
            plane[y0:y1, x] += offset_sigma * sigma
            kind = "hot"
        cols.append({"x": x, "y0": y0, "y1": y1, "kind": kind})
    return cols


def add_gradient(plane: np.ndarray, rng: np.random.Generator, *, amplitude: float) -> float:
    """Add a zero-mean plane of random direction whose peak-to-peak across the tile is
    ``amplitude`` (image units); returns its angle (radians)."""
    h, w = plane.shape
    ang = float(rng.uniform(0, 2 * math.pi))
    yy, xx = np.mgrid[0:h, 0:w]
    u = (xx - (w - 1) / 2) * math.cos(ang) + (yy - (h - 1) / 2) * math.sin(ang)
    span = float(u.max() - u.min()) or 1.0
    plane += amplitude * u / span
    return ang


def apply_artefacts(
    image: np.ndarray, sigma: list[float], config: Any, rng: np.random.Generator
) -> dict[str, Any]:
    """Add the configured artefacts to a ``(C, H, W)`` cube in place.

    Order per band: sky gradient, cosmic rays, saturation (+ bleed), bad columns. Returns a
    record ``{"cosmic_rays": [...], "bad_columns": [...], "saturated_px": int, ...}`` per band
    under the band index.
    """
    a = config
    rec: dict[str, Any] = {}
    for k in range(image.shape[0]):
        plane = image[k].astype(np.float64)
        r: dict[str, Any] = {}
        if a.gradient_sigma > 0:
            amp = float(rng.uniform(0, a.gradient_sigma)) * sigma[k]
            r["gradient"] = {"amplitude": amp, "angle": add_gradient(plane, rng, amplitude=amp)}
        if a.cosmic_rays_per_mpix > 0:
            r["cosmic_rays"] = add_cosmic_rays(
                plane,
                rng,
                sigma=sigma[k],
                rate_per_mpix=a.cosmic_rays_per_mpix,
                length_px=tuple(a.cosmic_ray_length_px),
                peak_sigma=tuple(a.cosmic_ray_peak_sigma),
            )
        if a.saturation > 0:
            r["saturated_px"] = saturate(plane, a.saturation, bleed=a.bleed)
        if a.bad_columns_per_kpix > 0:
            r["bad_columns"] = add_bad_columns(
                plane,
                rng,
                sigma=sigma[k],
                rate_per_kpix=a.bad_columns_per_kpix,
                offset_sigma=a.bad_column_sigma,
            )
        image[k] = plane.astype(image.dtype)
        rec[str(k)] = r
    return rec


def any_enabled(config: Any) -> bool:
    """Whether any artefact of a ``FieldArtefactConfig`` is switched on."""
    return bool(
        config.cosmic_rays_per_mpix > 0
        or config.saturation > 0
        or config.bad_columns_per_kpix > 0
        or config.gradient_sigma > 0
    )
