"""Injection of simulated stars and galaxies into real frames, and injection-recovery completeness.

A training tile is cut from the sky-subtracted real frame at a random place and the noiseless
image of a simulated field (from the frame's :mod:`survey profile <clumpdet.sim.profile>`) is
added to it, with the injected sources' own shot noise; the noise, artefacts and neighbours are
then the frame's own. The truth is

- every injected object whose optimal S/N against the frame's noise is >= ``truth.label_snr``,
  and
- the frame's own sources found by the classical finder (:func:`clumpdet.baselines.sources.
  find_sources`, noise and PSF measured from the frame) whose PSF-matched-filter S/N
  (:func:`matched_filter_snr`, the optimal S/N of a point source and a lower bound for an
  extended one) is >= ``real_snr_min``, which :func:`simulate_matched` sets to the same
  ``truth.label_snr``; their box is the finder's segment box, their class its star/galaxy call.

One S/N cut, measured the same way, for injected and real sources matters: a real source below
the real cut but above the injected one is unlabelled in every tile that contains it, i.e. it is
taught as background while injected sources of the same S/N are taught as sources, and since
the tiles are cut from one frame the detector learns to suppress exactly the frame's own faint
sources (an isophotal-S/N cut of 20 lost 7 of the 34 SExtractor S/N >= 10 sources of the NTT
frame this way, all found at low score at the right place).

:func:`injection_completeness` injects point sources of known magnitude into the frame and
reports the fraction a finder recovers per magnitude bin (the classical finder by default, or any
callable such as a trained detector).
"""

from __future__ import annotations

import itertools
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
        The frame's own sources above ``real_snr_min`` (``x, y, x1, y1, x2, y2, label``, the
        finder's isophotal ``score`` and the matched-filter ``snr``).
    source : str
    """

    sub: np.ndarray
    bands: tuple[str, ...]
    sigma: tuple[float, ...]
    fwhm_px: float
    real: tuple[dict[str, float], ...]
    source: str


def matched_filter_snr(
    cube: np.ndarray,
    xy: np.ndarray,
    *,
    sigma: tuple[float, ...] | list[float],
    fwhm_px: tuple[float, ...] | list[float],
    beta: tuple[float, ...] | list[float],
) -> np.ndarray:
    """PSF-matched-filter S/N at given positions, combined over bands in quadrature.

    Per band and position, the sky-subtracted plane is weighted by the unit-sum Moffat PSF ``P``
    centred on the position (sampled at the pixel centres, out to 3 FWHM, cut at the frame's
    edge): ``sum(D P) / (sigma sqrt(sum P^2))``. For a point source at that position this is
    its optimal S/N ``sqrt(sum m^2) / sigma`` (noisy by +-1), for an extended source a lower
    bound. Bands combine as ``sqrt(sum_b max(s_b, 0)^2)``, like the simulator's ``snr``
    (:mod:`clumpdet.sim.fields.scene`).

    Parameters
    ----------
    cube : ndarray, shape (C, H, W)
        Sky-subtracted planes, image units.
    xy : ndarray, shape (N, 2)
        Corner-origin pixel positions (pixel ``j`` spans ``[j, j + 1)``).
    sigma, fwhm_px, beta : sequence of float, length C
        Per-band white-noise sigma, Moffat FWHM (px) and beta.

    Returns
    -------
    ndarray, shape (N,), float64
    """
    cube = np.asarray(cube, dtype=np.float64)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    c, h, w = cube.shape
    if not (len(sigma) == len(fwhm_px) == len(beta) == c):
        raise ValueError(f"need one sigma, fwhm and beta per plane ({c})")
    total = np.zeros(len(xy))
    for k in range(c):
        f, b = float(fwhm_px[k]), float(beta[k])
        r = math.ceil(3.0 * f)
        alpha2 = (f / (2.0 * math.sqrt(2.0 ** (1.0 / b) - 1.0))) ** 2
        for i, (x, y) in enumerate(xy):
            x0, x1 = max(0, math.floor(x) - r), min(w, math.floor(x) + r + 1)
            y0, y1 = max(0, math.floor(y) - r), min(h, math.floor(y) + r + 1)
            if x1 <= x0 or y1 <= y0:
                continue
            yy, xx = np.mgrid[y0:y1, x0:x1]
            kern = (1.0 + ((xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2) / alpha2) ** (-b)
            kern /= kern.sum()
            num = float((cube[k, y0:y1, x0:x1] * kern).sum())
            snr = num / (float(sigma[k]) * math.sqrt(float((kern**2).sum())))
            total[i] += max(snr, 0.0) ** 2
    return np.sqrt(total)


def prepare_frame(frame: str | Path, profile: Any, *, real_snr_min: float = 5.0) -> InjectionFrame:
    """Sky-subtract ``frame`` and list its own sources above ``real_snr_min``.

    Parameters
    ----------
    frame : path
        The real frame (as for :func:`clumpdet.sim.profile.measure_profile`).
    profile : SurveyProfile
        Its measured profile (bands, noise, PSF).
    real_snr_min : float
        PSF-matched-filter S/N (:func:`matched_filter_snr`) above which a real source found by
        the classical finder is truth; use the injected objects' ``truth.label_snr``.
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
    tab["snr"] = matched_filter_snr(
        sub,
        tab[["x", "y"]].to_numpy(),
        sigma=sig,
        fwhm_px=[b.psf_fwhm_px for b in profile.bands],
        beta=[b.psf_beta if math.isfinite(b.psf_beta) else 3.5 for b in profile.bands],
    )
    tab = tab[tab["snr"] >= real_snr_min]
    real = tuple(
        {k: float(r[k]) for k in ("x", "y", "x1", "y1", "x2", "y2", "label", "score", "snr")}
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
    *,
    config: Any,
    seed: int | np.random.SeedSequence,
    image_id: int = 0,
    frame: InjectionFrame,
    like_config: Any = None,
    like_fraction: float = 0.0,
) -> Any:
    """One injection tile: a random cut of ``frame`` plus a simulated field's noiseless image.

    ``config`` is the profile's field config (its tile size, PSF and noise); the injected
    objects' S/N and labels are computed against that noise (the frame's). Returns a
    :class:`~clumpdet.sim.fields.scene.FieldScene` whose objects are the injected ones
    followed by the frame's own sources above the S/N cut (``real = True``); no masks.

    With ``like_fraction > 0`` that share of the tiles (chosen from the seed) is instead a purely
    simulated tile of ``like_config`` (the profile's config with its artefacts: cosmic rays,
    bad columns, gradients, saturated stars with bleed trails), whose truth is complete; these
    add PSF scatter and artefacts the one frame may lack.
    """
    from clumpdet.sim.common import as_seed_sequence, substream
    from clumpdet.sim.fields.scene import simulate_field_scene

    ss = as_seed_sequence(seed)
    if like_fraction > 0.0:
        if like_config is None:
            raise ConfigError("like_fraction > 0 needs like_config")
        if np.random.default_rng(substream(ss, 5)).random() < like_fraction:
            sim = simulate_field_scene(
                config=replace(like_config, truth=replace(like_config.truth, masks=False)),
                seed=ss,
                image_id=image_id,
            )
            return replace(sim, objects=[dict(o, real=False) for o in sim.objects], masks=None)
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
                "snr": r["snr"],
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
    like_config: Any = None,
    like_fraction: float = 0.0,
) -> Path:
    """Write ``n`` injection tiles as a field data set (layout of
    :mod:`clumpdet.sim.fields.writer`; ``objects.csv`` marks the frame's own sources); a
    ``like_fraction`` of them are purely simulated tiles of ``like_config``
    (:func:`inject_scene`)."""
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
        simulate_scene=partial(
            inject_scene, frame=frame, like_config=like_config, like_fraction=like_fraction
        ),
        records=field_records,
        categories=FIELD_CATEGORIES,
        description=f"clumpdet injection into {Path(frame.source).name}: stars and galaxies",
        psf_band="reference",
        objects="number of injected objects plus real sources above the S/N cut",
        tables=partial(_write_objects, bands=tuple(config.image.bands)),
    )


#: Catalogue-depth S/N bins of :func:`reference_depth_snr` (optimal S/N, log-spaced).
_DEPTH_BINS = np.geomspace(2.0, 40.0, 14)


def reference_depth_snr(
    config: Any,
    *,
    n: int = 24,
    seed: int = 7,
    level: float = 0.5,
    finder: Any = None,
) -> dict[str, Any]:
    """Optimal S/N at which a reference catalogue finder is ``level`` complete on simulated tiles.

    ``n`` tiles of ``config`` (a survey profile's field config: its PSF, noise, counts) are
    simulated, the classical finder runs on each with its noise and PSF width estimated the
    way it is on a real frame (default: :class:`~clumpdet.baselines.sources.SourceFinderConfig`
    defaults, i.e. SExtractor's ``default.sex`` detection: 1.5 sigma per pixel, 5 pixels, a
    PSF-wide filter), and every simulated object, labelled or not, is matched within 1 PSF
    FWHM. The returned ``snr`` is where the completeness vs S/N (bins of equal count) first
    reaches ``level``. Used as ``truth.label_snr`` it teaches a detector
    the depth of a catalogue made with that finder's settings from the frame's own noise and
    PSF, without looking at any catalogue of the frame.

    Returns
    -------
    dict
        ``snr`` (float), ``level``, ``bins`` (``snr_lo, snr_hi, n, found`` on a fixed log grid,
        for the record).
    """
    from clumpdet.baselines.sources import SourceFinderConfig, find_sources
    from clumpdet.evaluation.matching import match_points
    from clumpdet.sim.fields.scene import simulate_field_scene

    cfg = finder or SourceFinderConfig(
        background="none", reference_band=config.truth.reference_band
    )
    quiet = replace(config, truth=replace(config.truth, masks=False))
    snr_all, found_all = [], []
    for k in range(n):
        sc = simulate_field_scene(config=quiet, seed=np.random.SeedSequence([seed, k]))
        fwhm_px = sc.psf_fwhm / sc.pixel_scale
        t = find_sources(
            sc.image, noise_sigma=None, psf_fwhm_px=fwhm_px, bands=list(sc.bands), config=cfg
        )
        truth = np.array([[o["x"], o["y"]] for o in sc.objects]).reshape(-1, 2)
        det = np.stack([np.asarray(t["x"]), np.asarray(t["y"])], axis=1).reshape(-1, 2)
        m = match_points(truth, det, np.asarray(t["score"]), radius=fwhm_px)
        snr_all.extend(float(o["snr"]) for o in sc.objects)
        found_all.extend((m.truth_to_pred >= 0).tolist())
    snr = np.asarray(snr_all)
    found = np.asarray(found_all, dtype=bool)
    bins = []
    for lo, hi in itertools.pairwise(_DEPTH_BINS):
        b = (snr >= lo) & (snr < hi)
        bins.append(
            {
                "snr_lo": float(lo),
                "snr_hi": float(hi),
                "n": int(b.sum()),
                "found": int(found[b].sum()),
            }
        )
    return {"snr": _crossing_depth(snr, found, level=level), "level": level, "bins": bins}


def _crossing_depth(snr: np.ndarray, found: np.ndarray, *, level: float) -> float:
    """S/N where the completeness first reaches ``level``: objects sorted by S/N in bins of
    equal count (``max(8, N // 20)``), log-linear interpolation between the bins' median S/N;
    the faintest bin's S/N when it is already complete enough, the brightest's when none is."""
    order = np.argsort(snr)
    s, f = snr[order], found[order].astype(np.float64)
    if s.size == 0:
        return float(_DEPTH_BINS[-1])
    size = max(8, s.size // 20)
    groups = [slice(i, min(i + size, s.size)) for i in range(0, s.size, size)]
    centres = [float(np.median(s[g])) for g in groups]
    frac = [float(f[g].mean()) for g in groups]
    if frac[0] >= level:
        return max(centres[0], 1e-3)
    for (c0, f0), (c1, f1) in itertools.pairwise(zip(centres, frac)):
        if f0 < level <= f1:
            t = (level - f0) / (f1 - f0)
            c0, c1 = max(c0, 1e-3), max(c1, 1e-3)
            return float(math.exp(math.log(c0) + t * (math.log(c1) - math.log(c0))))
    return centres[-1]


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
    like_fraction: float = 0.0,
    label_snr: float | str | None = None,
) -> Path:
    """``clumpdet simulate fields --like / --profile / --inject-into``: survey-matched tiles.

    ``--inject-into`` alone measures the profile on that frame; with ``--profile`` it uses the
    given one. The profile is written to ``out/profile.yaml``. With ``--inject-into``,
    ``like_fraction`` (``--like-fraction``) of the tiles are purely simulated from the profile,
    with its artefacts, instead of injected.

    ``label_snr`` (``--label-snr``) sets ``truth.label_snr``, the optimal S/N down to which
    objects are truth, for the simulated, the injected and the frame's own sources alike: a
    number, or ``"reference"`` for :func:`reference_depth_snr` of the profile (the depth of a
    catalogue made with SExtractor's default detection settings on the frame; it is written to
    ``out/label_depth.json``). None keeps the config's value (5).
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
    if not 0.0 <= like_fraction <= 1.0:
        raise ConfigError(f"--like-fraction {like_fraction} is not in [0, 1]")
    if like_fraction > 0.0 and inject_into is None:
        raise ConfigError("--like-fraction mixes simulated into injected tiles: give --inject-into")
    if profile is not None:
        prof = load_profile(profile)
    else:
        src = like if like is not None else inject_into
        prof = measure_profile(src, bands=bands, pixel_scale=pixel_scale)
    cfg = with_overrides(
        profile_to_field_config(prof, tile=tile, artefacts=inject_into is None), overrides
    )
    out = Path(out)
    depth = None
    if isinstance(label_snr, str):
        if label_snr != "reference":
            raise ConfigError(f"--label-snr {label_snr!r}: give a number or 'reference'")
        plain = with_overrides(profile_to_field_config(prof, tile=tile, artefacts=False), overrides)
        depth = reference_depth_snr(plain)
        label_snr = depth["snr"]
    if label_snr is not None:
        if not float(label_snr) >= 0.0:
            raise ConfigError(f"--label-snr {label_snr}: must be >= 0")
        cfg = replace(cfg, truth=replace(cfg.truth, label_snr=float(label_snr)))
    if inject_into is not None:
        frame = prepare_frame(inject_into, prof, real_snr_min=cfg.truth.label_snr)
        simulate_injected(
            frame=frame,
            config=cfg,
            n=n,
            seed=seed,
            out=out,
            workers=workers,
            overwrite=overwrite,
            progress=progress,
            like_config=(
                replace(
                    with_overrides(profile_to_field_config(prof, tile=tile), overrides),
                    truth=cfg.truth,
                )
                if like_fraction > 0.0
                else None
            ),
            like_fraction=like_fraction,
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
    if depth is not None:
        import json

        from clumpdet.utils import atomic_write

        with atomic_write(out / "label_depth.json", "w") as fh:
            json.dump(depth, fh, indent=1)
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
