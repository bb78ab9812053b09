"""Injection of simulated stars and galaxies into real frames, and injection-recovery completeness.

A training tile is cut from the sky-subtracted real frame at a random place and the noiseless
image of a simulated field (from the frame's :mod:`survey profile <clumpdet.sim.profile>`) is
added to it, with the injected sources' own shot noise; the noise, artefacts and neighbours are
then the frame's own. The truth is

- every injected object whose S/N against the frame's noise is >= ``truth.label_snr``, and
- the frame's own sources found by the classical finder (:func:`clumpdet.baselines.sources.
  find_sources`, noise and PSF measured from the frame) with isophotal S/N >=
  ``real_snr_min`` (default 20), so that real sources are not taught as background; their box is
  the finder's segment box, their class its star/galaxy call. Fainter real sources are neither
  truth nor, usefully, background: keep ``real_snr_min`` high so the ones taught are certain.

:func:`injection_completeness` injects point sources of known magnitude into the frame and
reports the fraction a finder recovers per magnitude bin (the classical finder by default, or any
callable such as a trained detector).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from clumpdet.errors import ConfigError, InputError
from clumpdet.units import ZERO_POINT


@dataclass(frozen=True)
class InjectionFrame:
    """A real frame prepared for injection.

    Attributes
    ----------
    sub : ndarray, shape (C, H, W), float32
        Sky-subtracted frame (image units).
    bands : tuple of str
    sigma : tuple of float
        Per-band noise.
    fwhm_px : float
        Reference-band PSF FWHM, px.
    real : list of dict
        The frame's own sources above ``real_snr_min`` (``x, y, x1, y1, x2, y2, label, score``).
    source : str
    """

    sub: np.ndarray
    bands: tuple[str, ...]
    sigma: tuple[float, ...]
    fwhm_px: float
    real: tuple[dict[str, float], ...]
    source: str


def prepare_frame(frame: str | Path, profile: Any, *, real_snr_min: float = 20.0) -> InjectionFrame:
    """Sky-subtract ``frame`` and list its own sources above ``real_snr_min``.

    Parameters
    ----------
    frame : path
        The real frame (as for :func:`clumpdet.sim.profile.measure_profile`).
    profile : SurveyProfile
        Its measured profile (bands, noise, PSF).
    real_snr_min : float
        Isophotal S/N of the classical finder above which a real source is truth.
    """
    from clumpdet.baselines.sources import SourceFinderConfig, find_sources
    from clumpdet.data.images import read_image
    from clumpdet.sim.profile import sky_and_noise

    img = read_image(frame, nan_policy="median")
    cube = np.asarray(img.data, dtype=np.float64)
    if cube.shape[0] != len(profile.bands):
        raise InputError(frame, f"{cube.shape[0]} planes but the profile has {len(profile.bands)}")
    subs, sig = [], []
    for k in range(cube.shape[0]):
        sn = sky_and_noise(cube[k])
        subs.append(sn["sub"])
        sig.append(sn["noise_sigma"])
    sub = np.stack(subs).astype(np.float32)
    fwhm = float(profile.bands[0].psf_fwhm_px)
    tab = find_sources(
        sub,
        noise_sigma=list(sig),
        psf_fwhm_px=fwhm,
        bands=list(profile.band_names),
        config=SourceFinderConfig(
            thresh=3.0,
            thresh_units="filtered",
            background="none",
            reference_band=profile.band_names[0],
        ),
    ).to_pandas()
    tab = tab[tab["score"] >= real_snr_min]
    real = tuple(
        {k: float(r[k]) for k in ("x", "y", "x1", "y1", "x2", "y2", "label", "score")}
        for _, r in tab.iterrows()
    )
    return InjectionFrame(
        sub=sub,
        bands=profile.band_names,
        sigma=tuple(sig),
        fwhm_px=fwhm,
        real=real,
        source=str(frame),
    )


def _quiet(cfg: Any) -> Any:
    """The same scene without noise or artefacts (depth 30 mag fainter, no shot noise)."""
    depth = {b: v + 30.0 for b, v in cfg.noise.depth_5sigma.items()}
    arte = replace(
        cfg.artefacts,
        cosmic_rays_per_mpix=0.0,
        saturation=0.0,
        bad_columns_per_kpix=0.0,
        gradient_sigma=0.0,
    )
    return replace(
        cfg,
        noise=replace(cfg.noise, depth_5sigma=depth, poisson=False, correlation=0.0),
        artefacts=arte,
        truth=replace(cfg.truth, masks=False),
    )


def inject_scene(
    *, config: Any, seed: int | np.random.SeedSequence, image_id: int = 0, frame: InjectionFrame
) -> Any:
    """One injection tile: a random cut of ``frame`` plus a simulated field's noiseless image.

    ``config`` is the profile's field config (its tile size, PSF and noise); the injected
    objects' S/N and labels are computed against that noise (the frame's). Returns a
    :class:`~clumpdet.sim.fields.scene.FieldScene` whose objects are the injected ones
    followed by the frame's own sources above the S/N cut (``real = True``); no masks.
    """
    from clumpdet.sim.common import as_seed_sequence, substream
    from clumpdet.sim.fields.scene import simulate_field_scene

    ss = as_seed_sequence(seed)
    w, h = config.image.width, config.image.height
    _, fh, fw = frame.sub.shape
    if w > fw or h > fh:
        raise ConfigError(f"tile {w}x{h} is larger than the frame {fw}x{fh} ({frame.source})")
    single = tuple(config.image.bands) == (config.truth.reference_band,)
    noisy = simulate_field_scene(
        config=replace(config, truth=replace(config.truth, masks=False)),
        seed=ss,
        image_id=image_id,
        return_components=single,
    )
    if single:  # one band: the objects' own noiseless images are already there
        model = noisy.components.sum(axis=0, dtype=np.float64)[None]
    else:
        model = simulate_field_scene(config=_quiet(config), seed=ss).image.astype(np.float64)
    rng = np.random.default_rng(substream(ss, 3))
    x0 = int(rng.integers(0, fw - w + 1))
    y0 = int(rng.integers(0, fh - h + 1))
    shot = np.sqrt(np.clip(model, 0, None) / config.noise.gain) if config.noise.poisson else 0.0
    image = frame.sub[:, y0 : y0 + h, x0 : x0 + w].astype(np.float64) + model
    image = image + shot * rng.standard_normal(model.shape)
    objects = [dict(o, real=False) for o in noisy.objects]
    next_id = len(objects)
    for r in frame.real:
        cx, cy = r["x"] - x0, r["y"] - y0
        if not (0 <= cx < w and 0 <= cy < h):
            continue
        x1, x2 = max(0.0, r["x1"] - x0), min(float(w), r["x2"] - x0)
        y1, y2 = max(0.0, r["y1"] - y0), min(float(h), r["y2"] - y0)
        flux_mag = math.nan
        objects.append(
            {
                "object_id": next_id,
                "category_id": int(r["label"]),
                "x": cx,
                "y": cy,
                "x1": x1,
                "y1": y1,
                "x2": x2,
                "y2": y2,
                **{f"mag_{b}": flux_mag for b in config.image.bands},
                "mag": flux_mag,
                "snr": r["score"],
                "labelled": True,
                "hlr": math.nan,
                "axis_ratio": math.nan,
                "bulge_fraction": math.nan,
                "pair_id": -1,
                "pair_sep_fwhm": math.nan,
                "nn_sep_px": math.inf,
                "nn_sep_fwhm": math.inf,
                "blendedness": 0.0,
                "overlap": 0.0,
                "real": True,
            }
        )
        next_id += 1
    return replace(
        noisy,
        image=image.astype(np.float32),
        objects=objects,
        masks=None,
        noise_sigma={b: s for b, s in zip(frame.bands, frame.sigma)},
    )


def simulate_injected(
    *,
    frame: InjectionFrame,
    config: Any,
    n: int,
    seed: int,
    out: str | Path,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``n`` injection tiles as a field data set (layout of
    :mod:`clumpdet.sim.fields.writer`; ``objects.csv`` marks the frame's own sources)."""
    from clumpdet.sim.fields.config import FIELD_CATEGORIES
    from clumpdet.sim.fields.writer import _write_objects, field_records
    from clumpdet.sim.run import write_detection_set

    return write_detection_set(
        out,
        kind="fields",
        config=config,
        n=n,
        seed=seed,
        workers=workers,
        overwrite=overwrite,
        progress=progress,
        simulate_scene=partial(inject_scene, frame=frame),
        records=field_records,
        categories=FIELD_CATEGORIES,
        description=f"clumpdet injection into {Path(frame.source).name}: stars and galaxies",
        psf_band="reference",
        objects="number of injected objects plus real sources above the S/N cut",
        tables=partial(_write_objects, bands=tuple(config.image.bands)),
    )


def simulate_matched(
    *,
    kind: str,
    n: int,
    seed: int,
    out: str | Path,
    like: str | Path | None = None,
    profile: str | Path | None = None,
    inject_into: str | Path | None = None,
    bands: list[str] | None = None,
    pixel_scale: float | None = None,
    tile: int = 128,
    overrides: Any = (),
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """``clumpdet simulate fields --like / --profile / --inject-into``: survey-matched tiles.

    ``--inject-into`` alone measures the profile on that frame; with ``--profile`` it uses the
    given one. The profile is written to ``out/profile.yaml``.
    """
    from clumpdet.sim.profile import (
        load_profile,
        measure_profile,
        profile_to_field_config,
        save_profile,
        with_overrides,
    )

    if kind != "fields":
        raise ConfigError(f"--like/--profile/--inject-into work with 'fields', not {kind!r}")
    if like is not None and profile is not None:
        raise ConfigError("give one of --like FRAME.fits and --profile PROFILE.yaml")
    if profile is not None:
        prof = load_profile(profile)
    else:
        src = like if like is not None else inject_into
        prof = measure_profile(src, bands=bands, pixel_scale=pixel_scale)
    cfg = with_overrides(
        profile_to_field_config(prof, tile=tile, artefacts=inject_into is None), overrides
    )
    out = Path(out)
    if inject_into is not None:
        frame = prepare_frame(inject_into, prof)
        simulate_injected(
            frame=frame,
            config=cfg,
            n=n,
            seed=seed,
            out=out,
            workers=workers,
            overwrite=overwrite,
            progress=progress,
        )
    else:
        from clumpdet.sim.fields.writer import simulate_fields

        simulate_fields(
            n=n,
            seed=seed,
            out=out,
            config=cfg,
            workers=workers,
            overwrite=overwrite,
            progress=progress,
        )
    save_profile(prof, out / "profile.yaml")
    return out


# --------------------------------------------------------------------------------------------
# completeness


def injection_completeness(
    frame: InjectionFrame,
    *,
    mags: np.ndarray | list[float],
    n_per_mag: int = 20,
    seed: int = 0,
    finder: Callable[[np.ndarray], np.ndarray] | None = None,
    match_fwhm: float = 1.0,
    beta: float = 3.5,
) -> list[dict[str, float]]:
    """Fraction of injected point sources recovered, per magnitude.

    For each magnitude, ``n_per_mag`` Moffat stars (the frame's FWHM, ``beta``) are injected at
    random places at least 3 FWHM from the frame's own bright sources and from each other,
    and ``finder(cube) -> (N, 2) xy`` is run on the injected frame; a star is recovered when a
    detection lies within ``match_fwhm`` FWHM of it and not within that of a real source.

    Returns
    -------
    list of dict
        ``mag, n, recovered, fraction`` per magnitude (instrumental, 22.5 - 2.5 log10 flux).
    """
    import galsim

    from clumpdet.evaluation.matching import match_points

    if finder is None:
        finder = partial(_classical_xy, sigma=frame.sigma, fwhm=frame.fwhm_px, bands=frame.bands)
    rng = np.random.default_rng(seed)
    _, h, w = frame.sub.shape
    psf = galsim.Moffat(beta=beta, fwhm=frame.fwhm_px)
    real_xy = np.array([[r["x"], r["y"]] for r in frame.real]).reshape(-1, 2)
    rows = []
    margin = 2 * frame.fwhm_px
    for mag in mags:
        xy: list[tuple[float, float]] = []
        tries = 0
        while len(xy) < n_per_mag and tries < 50 * n_per_mag:
            tries += 1
            p = (float(rng.uniform(margin, w - margin)), float(rng.uniform(margin, h - margin)))
            near = [
                q
                for q in (*xy, *map(tuple, real_xy))
                if math.hypot(p[0] - q[0], p[1] - q[1]) < 3 * frame.fwhm_px
            ]
            if not near:
                xy.append(p)
        flux = 10 ** (-0.4 * (float(mag) - ZERO_POINT))
        img = galsim.ImageD(w, h, scale=1.0)
        for x, y in xy:
            psf.withFlux(flux).drawImage(
                img, center=galsim.PositionD(x + 0.5, y + 0.5), add_to_image=True
            )
        cube = frame.sub.astype(np.float64).copy()
        cube[0] += img.array
        det = np.asarray(finder(cube.astype(np.float32)), dtype=np.float64).reshape(-1, 2)
        m = match_points(
            np.array(xy).reshape(-1, 2), det, np.ones(len(det)), radius=match_fwhm * frame.fwhm_px
        )
        found = int(np.sum(m.truth_to_pred >= 0))
        rows.append(
            {
                "mag": float(mag),
                "n": len(xy),
                "recovered": found,
                "fraction": found / len(xy) if xy else math.nan,
            }
        )
    return rows


def _classical_xy(
    cube: np.ndarray, *, sigma: tuple[float, ...], fwhm: float, bands: tuple[str, ...]
) -> np.ndarray:
    from clumpdet.baselines.sources import SourceFinderConfig, find_sources

    t = find_sources(
        cube,
        noise_sigma=list(sigma),
        psf_fwhm_px=fwhm,
        bands=list(bands),
        config=SourceFinderConfig(
            thresh=1.5, thresh_units="pixel", background="none", reference_band=bands[0]
        ),
    )
    return np.stack([np.asarray(t["x"]), np.asarray(t["y"])], axis=1)
