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
    vote counts behind them and CANDELS-like fractions (5), all *synthetic*
    (:mod:`clumpdet.sim.galaxies.votes`).

Each scene is a list of analytic components drawn by :mod:`clumpdet.sim.galaxies.components`
and rendered with the PSFs and noise by :mod:`clumpdet.sim.galaxies.render`.

The merger and four-class labels are exact truth (how the scene was made), not votes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clumpdet.errors import ConfigError
from clumpdet.sim.common import as_seed_sequence, loguniform, single_threaded_galsim, substream
from clumpdet.sim.galaxies.components import (
    SceneBuilder,
    add_arms,
    add_bar,
    add_clumps,
    add_pair,
    add_ring,
    add_star,
    draw_sed,
    galaxy_params,
    main_galaxy,
)
from clumpdet.sim.galaxies.config import (
    FourClassSimConfig,
    MergerSimConfig,
    MorphologySimConfig,
    task_config_class,
    task_of_config,
    validate_galaxy_sim_config,
)
from clumpdet.sim.galaxies.render import Rendered, render_components
from clumpdet.sim.galaxies.votes import (
    ODD_FEATURES,
    answer_probabilities,
    candels_probabilities,
    sample_votes,
)
from clumpdet.sim.optics import band_values

#: Four-class label order.
FOUR_CLASS_NAMES: tuple[str, ...] = ("normal", "ringed", "merger", "other")
#: Label column of the merger task (DeepMerge's table column).
MERGER_LABEL = "MergerLabel"


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


def _finish(
    task: str,
    cfg: Any,
    r: Rendered,
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
    p.update(galaxy_params("g1", g1))
    p.update(galaxy_params("g2", g2))
    return p


def _build_merger_like(b: SceneBuilder, kind: str) -> dict[str, Any]:
    """Components of a merger-task scene of ``kind`` (merger / isolated / projection)."""
    g1 = main_galaxy(b)
    if kind == "isolated":
        b.commit(g1)
        return _merger_params(kind, g1, None, None)
    g2, pair = add_pair(b, g1, merging=kind == "merger")
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
    b = SceneBuilder(cfg, rng)
    params = {"label": int(kind == "merger"), **_build_merger_like(b, kind)}
    with single_threaded_galsim():
        r = render_components(cfg, b.components, ss)
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
    b = SceneBuilder(cfg, rng)
    extra: dict[str, Any] = dict.fromkeys(_FOUR_KEYS, 0.0)
    subkind = FOUR_CLASS_NAMES[cls]
    g2 = pair = None
    if cls == 0:  # normal
        g = main_galaxy(b)
        if rng.random() < sc.normal_arms_probability:
            extra.update(add_arms(b, g))
        b.commit(g)
    elif cls == 1:  # ringed
        g = main_galaxy(b, q_min=max(cfg.population.axis_ratio_min, 0.45))
        if rng.random() < cfg.ring.bar_probability:
            extra["bar_flux"] = add_bar(b, g)
        extra.update(add_ring(b, g))
        b.commit(g)
    elif cls == 2:  # merger
        g = main_galaxy(b)
        g2, pair = add_pair(b, g, merging=True)
    else:  # other
        ow = np.asarray(sc.other_weights, dtype=float)
        subkind = ("irregular", "edge_on", "artifact")[int(rng.choice(3, p=ow / ow.sum()))]
        ic = cfg.irregular
        if subkind == "irregular":
            g = main_galaxy(b, bt=float(rng.uniform(0.0, 0.1)))
            g["lopsided"] = float(rng.uniform(ic.lopsided_min, ic.lopsided_max))
            g["lopsided_angle"] = float(rng.uniform(0.0, 2.0 * math.pi))
            extra["n_clumps"] = add_clumps(b, g)
        elif subkind == "edge_on":
            g = main_galaxy(b, q=float(rng.uniform(0.06, ic.edge_on_axis_ratio_max)))
            g["bulge_q"] = float(rng.uniform(0.5, 0.9))
            g["lane"] = float(rng.uniform(0.0, ic.dust_lane_depth_max))
            extra["dust_lane"] = g["lane"]
        else:
            g = main_galaxy(b)
            g["flux"] *= 0.3
            extra["star_flux"] = add_star(b, g)
        b.commit(g)
    with single_threaded_galsim():
        r = render_components(cfg, b.components, ss)
    label = np.zeros(4)
    label[cls] = 1.0
    params: dict[str, Any] = {"class": FOUR_CLASS_NAMES[cls], "subkind": subkind}
    params.update(galaxy_params("g1", g))
    params.update(galaxy_params("g2", g2))
    params["separation"] = pair["separation"] if pair else float("nan")
    params["n_tails"] = int(sum(pair["n_tails"])) if pair else 0
    params.update(extra)
    params["snr"] = r.snr
    return _finish("four_class", cfg, r, label, params, image_id, return_model)


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
    b = SceneBuilder(cfg, rng)
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
        b.add("point", geom, flux, draw_sed(rng, band_values(pop.bulge_sed, cfg.image.bands), 0.3))
        p.update(kind="star", flux=flux, hlr=0.0, q=1.0, bt=1.0)
        g = None
    elif kind == "elliptical":
        n_s = float(rng.uniform(mc.elliptical_sersic_n_min, mc.elliptical_sersic_n_max))
        qe = float(rng.uniform(mc.elliptical_axis_ratio_min, 1.0))
        g = main_galaxy(b, bt=1.0)
        g["bulge_hlr"], g["bulge_q"], g["bulge_n"] = g["hlr"] * 0.7, qe, n_s
        g["q"] = qe
        p.update(sersic_n=n_s)
    else:
        if odd_kind == "dust_lane":
            g = main_galaxy(b, q=float(rng.uniform(0.06, 0.3)))
        else:
            g = main_galaxy(b, q_min=mc.disk_axis_ratio_min)
        if odd_kind == "irregular":
            g["bt"] = float(rng.uniform(0.0, 0.1))
        if g["q"] < 0.5:
            g["bulge_q"] = float(rng.uniform(0.5, 0.9))
        if g["q"] > 0.35 and rng.random() < mc.bar_probability and odd_kind != "irregular":
            p["bar"], p["bar_flux"] = 1, add_bar(b, g)
        if rng.random() < mc.arms_probability and odd_kind not in ("irregular", "ring"):
            p["arms"] = 1
            arm = add_arms(b, g)
            p.update(arm)
        p["sersic_n"] = 1.0
    if g is not None:
        if odd_kind == "ring":
            p["ring_radius"] = add_ring(b, g)["ring_radius"]
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
            p["n_clumps"] = add_clumps(b, g)
        elif odd_kind == "other":
            add_star(b, g)
        elif odd_kind == "dust_lane":
            g["lane"] = float(rng.uniform(0.3, max(0.3, cfg.irregular.dust_lane_depth_max)))
            p["dust_lane"] = g["lane"]
        if odd_kind == "merger":
            _, pair = add_pair(b, g, merging=True)
            p["n_tails"] = int(sum(pair["n_tails"]))
        else:
            b.commit(g)
        p.update(kind=kind, flux=g["flux"], hlr=g["hlr"], q=g["q"], bt=g["bt"])
    p["odd"], p["odd_feature"] = int(odd), odd_kind

    with single_threaded_galsim():
        r = render_components(cfg, b.components, ss)
    p["snr"] = r.snr
    vrng = np.random.default_rng(substream(ss, 2))
    vc = cfg.votes
    n_vol = int(vrng.integers(vc.volunteers_min, vc.volunteers_max + 1))
    counts, fractions = sample_votes(
        answer_probabilities(p, vc), n_volunteers=n_vol, votes=vc, rng=vrng
    )
    p["n_volunteers"] = n_vol
    ref = len(cfg.image.bands) // 2
    pc = candels_probabilities(p, vc, band_values(cfg.psf.fwhm, cfg.image.bands)[ref])
    pc = (1.0 - 5 * vc.floor) * pc + vc.floor
    pc = vrng.dirichlet(vc.concentration * pc)
    c_counts = vrng.multinomial(vc.candels_classifiers, pc / pc.sum())
    extra = {
        "counts": counts,
        "candels": (c_counts / vc.candels_classifiers).astype(np.float32),
        "candels_counts": c_counts.astype(np.int64),
    }
    return _finish("morphology", cfg, r, fractions, p, image_id, return_model, extra)


_TASK_SCENES = {
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
    return _TASK_SCENES[task](config=cfg, seed=seed, image_id=image_id, return_model=return_model)
