"""Parameter draws of the galaxy-classification scenes (NumPy only): galaxies as components.

A :class:`SceneBuilder` collects the components (kind, geometry, per-band flux) that
:func:`clumpdet.sim.galaxies.render.render_components` draws: disk + bulge galaxies, merging
pairs and chance projections, spiral arms, rings, bars, clumps and artifact stars.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from clumpdet.sim.common import loguniform
from clumpdet.sim.optics import band_values


def draw_sed(rng: np.random.Generator, base: tuple[float, ...], scatter: float) -> np.ndarray:
    """Per-band flux multipliers: ``base`` with colour scatter; the first band stays exact."""
    s = np.asarray(base, dtype=float)
    jitter = rng.standard_normal(s.size)
    jitter[0] = 0.0
    return s * 10 ** (-0.4 * scatter * jitter)


class SceneBuilder:
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
        pop, rng, bands = self.cfg.population, self.rng, self.cfg.image.bands
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
            "disk_sed": draw_sed(rng, band_values(pop.disk_sed, bands), pop.sed_scatter),
            "bulge_sed": draw_sed(rng, band_values(pop.bulge_sed, bands), pop.sed_scatter),
            "young_sed": draw_sed(rng, band_values(pop.young_sed, bands), pop.sed_scatter),
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


def add_pair(
    b: SceneBuilder, primary: dict[str, Any], *, merging: bool
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


def galaxy_params(prefix: str, g: dict[str, Any] | None) -> dict[str, Any]:
    keys = ("x", "y", "flux", "hlr", "q", "pa", "bt", "shear", "bend", "lopsided")
    if g is None:
        return {f"{prefix}_{k}": float("nan") for k in keys}
    out = {f"{prefix}_{k}": float(g[k]) for k in keys}
    out[f"{prefix}_pa"] = math.degrees(g["pa"]) % 180.0
    out[f"{prefix}_bend"] = abs(g["bend"])
    return out


def main_galaxy(b: SceneBuilder, **kw: Any) -> dict[str, Any]:
    pop, rng = b.cfg.population, b.rng
    x, y = rng.normal(0.0, pop.offset_sd, size=2)
    flux = loguniform(rng, pop.flux_min, pop.flux_max)
    return b.galaxy(x=float(x), y=float(y), flux=flux, **kw)


def add_arms(b: SceneBuilder, g: dict[str, Any]) -> dict[str, Any]:
    ac, rng = b.cfg.arms, b.rng
    w = np.asarray(ac.count_weights, dtype=float)
    m = int(rng.choice(len(w), p=w / w.sum())) + 1
    pitch = float(rng.uniform(ac.pitch_min, ac.pitch_max))
    amp = float(rng.uniform(ac.amplitude_min, ac.amplitude_max))
    g["arms"] = (m, math.radians(pitch), amp, float(rng.uniform(0.0, 2.0 * math.pi)))
    return {"arm_count": m, "arm_pitch": pitch, "arm_amplitude": amp}


def add_ring(b: SceneBuilder, g: dict[str, Any]) -> dict[str, float]:
    rc, rng = b.cfg.ring, b.rng
    radius = float(rng.uniform(rc.radius_min, rc.radius_max)) * g["hlr"]
    width = float(rng.uniform(rc.width_min, rc.width_max)) * g["hlr"]
    flux = b.take(g, float(rng.uniform(rc.flux_min, rc.flux_max)))
    geom = {"x": g["x"], "y": g["y"], "pa": g["pa"], "q": g["q"], "radius": radius, "width": width}
    b.add("ring", geom, flux, g["young_sed"])
    return {"ring_radius": radius, "ring_flux": flux / g["flux"]}


def add_bar(b: SceneBuilder, g: dict[str, Any]) -> float:
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


def add_clumps(b: SceneBuilder, g: dict[str, Any]) -> int:
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


def add_star(b: SceneBuilder, g: dict[str, Any]) -> float:
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
    sed = draw_sed(rng, band_values(b.cfg.population.bulge_sed, im.bands), 0.3)
    b.add("point", geom, flux, sed)
    return flux
