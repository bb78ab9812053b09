"""Blended survey fields: stars and bulge+disk galaxies with exact per-object truth (GalSim).

One scene is a sky-subtracted ``(C, H, W)`` tile (or mosaic) in nanomaggies with a TAN WCS. The
population (configured in :class:`clumpdet.sim.fields.config.FieldSimConfig`):

- galaxies at ``galaxies.density`` per arcmin^2 (default 30) with ``dN/dm ~ 10**(0.33 m)`` down to
  r = 25.5, below the 5-sigma depth (r = 24), so the faintest sit in the noise; an exponential
  disk plus a truncated de Vaucouleurs bulge, sizes shrinking with magnitude, random axis ratios
  and angles, a redder bulge;
- stars (the PSF) on an approximate stellar locus;
- designed close pairs: a share ``pairs.fraction`` of the objects gets a companion at a set
  separation (0.5-4 PSF FWHM) and flux ratio (1-10), recorded with a common ``pair_id``.

Truth rules (all from each object's own noiseless reference-band stamp, drawn with the PSF and
pixel response):

- **S/N** ``snr``: the optimal matched-filter S/N over the written bands against the sky noise,
  ``sqrt(sum_b sum_pix m_b^2 / sigma_b^2)``; objects with ``snr >= truth.label_snr`` (5) are
  *labelled* (COCO annotations); fainter ones are listed in ``objects.csv`` only.
- **Box**: the union of (a) the rectangle holding the central ``box_flux_fraction`` (95 %) of the
  light along x and along y, hence at least 90 % of the flux, and (b) the bounding box of the
  ``iso_nsigma`` (1 sigma) isophote; at least ``min_box_px`` wide, clipped to the image.
- **Mask**: pixels above ``min(iso_nsigma sigma, mask_peak_fraction * peak)``.
- **Blending**: ``nn_sep_px`` / ``nn_sep_fwhm`` to the nearest other labelled object;
  ``blendedness = 1 - sum(s_i^2) / sum(s_i S)`` (S = all objects' light; 0 isolated, toward 1
  fully blended); ``overlap`` = share of the object's mask pixels inside another object's mask.

Coordinates are corner-origin pixels (docs/conventions.md): pixel ``j`` spans ``[j, j+1)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import galsim
import numpy as np
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from clumpdet.data.fits import make_wcs
from clumpdet.sim.artefacts import any_enabled, apply_artefacts, correlate_noise
from clumpdet.sim.common import (
    GSPARAMS,
    add_gaussian_noise,
    as_seed_sequence,
    draw_unit,
    galsim_seed,
    psf_profile,
    single_threaded_galsim,
    stamp_slices,
    substream,
)
from clumpdet.sim.fields.config import FIELD_BANDS, FieldSimConfig, validate_field_config
from clumpdet.units import ZERO_POINT

#: Category ids of the field data sets.
STAR, GALAXY = 1, 2

#: Largest stamp half-side, px (bounds the cost of rare huge galaxies).
_MAX_STAMP_PX = 160


@dataclass
class FieldScene:
    """One simulated field with its truth.

    Attributes
    ----------
    image : ndarray, shape (C, H, W), float32
        Sky-subtracted image in nanomaggies, bands in ``bands`` order.
    bands : tuple of str
        Band of each plane.
    wcs : astropy.wcs.WCS
        Celestial TAN WCS.
    pixel_scale : float
        Arcsec per pixel.
    psf_fwhm : float
        Reference-band PSF FWHM, arcsec.
    psf_fwhm_bands : dict
        PSF FWHM per written band, arcsec.
    noise_sigma : dict
        Sky noise sigma per pixel per written band, nanomaggies.
    objects : list of dict
        One record per object (labelled or not): ``object_id, category_id, x, y, mag_<band>,
        mag, snr, labelled, x1, y1, x2, y2, hlr, axis_ratio, bulge_fraction, nn_sep_px,
        nn_sep_fwhm, blendedness, overlap, pair_id (-1 if none), pair_sep_fwhm``.
    masks : list of dict or None
        COCO compressed RLE (``counts`` as str) per object, aligned with ``objects``.
    image_id : int
        COCO image id.
    artefacts : dict or None
        What :func:`clumpdet.sim.artefacts.apply_artefacts` added (None when all are off).
    """

    image: np.ndarray
    bands: tuple[str, ...]
    wcs: WCS
    pixel_scale: float
    psf_fwhm: float
    psf_fwhm_bands: dict[str, float]
    noise_sigma: dict[str, float]
    objects: list[dict[str, Any]]
    masks: list[dict[str, Any]] | None
    image_id: int = 0
    components: np.ndarray | None = field(default=None, repr=False)
    artefacts: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def psf_fwhm_px(self) -> float:
        """Reference-band PSF FWHM in pixels."""
        return self.psf_fwhm / self.pixel_scale


# --------------------------------------------------------------------------------------------
# population


def _sample_mags(
    rng: np.random.Generator, n: int, lo: float, hi: float, slope: float
) -> np.ndarray:
    """``n`` magnitudes with ``dN/dm ~ 10**(slope m)`` on ``[lo, hi]`` (inverse CDF)."""
    u = rng.uniform(size=n)
    if abs(slope) < 1e-9:
        return lo + u * (hi - lo)
    a, b = 10 ** (slope * lo), 10 ** (slope * hi)
    return np.log10(a + u * (b - a)) / slope


def _mags_from_colours(mag_r: float, c: dict[str, float]) -> dict[str, float]:
    i = mag_r - c["r-i"]
    return {"g": mag_r + c["g-r"], "r": mag_r, "i": i, "z": i - c["i-z"]}


def _flux(mag: float) -> float:
    return float(10 ** (-0.4 * (mag - ZERO_POINT)))


def _galaxy(cfg: FieldSimConfig, rng: np.random.Generator, mag_r: float) -> dict[str, Any]:
    g = cfg.galaxies
    hlr = g.hlr_at_22 * 10 ** (-g.hlr_mag_slope * (mag_r - 22.0) + rng.normal(0, g.hlr_scatter_dex))
    hlr = float(np.clip(hlr, g.hlr_min, g.hlr_max))
    bt = float(rng.uniform(0, g.bulge_fraction_max))
    disk_c = {k: float(rng.normal(g.colour_mean[k], g.colour_sd[k])) for k in g.colour_mean}
    off = g.bulge_red_offset
    bulge_c = {
        "g-r": disk_c["g-r"] + off,
        "r-i": disk_c["r-i"] + off / 2,
        "i-z": disk_c["i-z"] + off / 2,
    }
    f_r = _flux(mag_r)
    disk_f = {
        b: (1 - bt) * f_r * 10 ** (-0.4 * (m - mag_r))
        for b, m in _mags_from_colours(mag_r, disk_c).items()
    }
    bulge_f = {
        b: bt * f_r * 10 ** (-0.4 * (m - mag_r))
        for b, m in _mags_from_colours(mag_r, bulge_c).items()
    }
    return {
        "category_id": GALAXY,
        "hlr": hlr,
        "q": float(rng.uniform(g.axis_ratio_min, 1.0)),
        "pa": float(rng.uniform(0, math.pi)),
        "bt": bt,
        "disk_flux": disk_f,
        "bulge_flux": bulge_f,
        "flux": {b: disk_f[b] + bulge_f[b] for b in FIELD_BANDS},
    }


def _star(cfg: FieldSimConfig, rng: np.random.Generator, mag_r: float) -> dict[str, Any]:
    s = cfg.stars
    gr = float(rng.uniform(s.gr_min, s.gr_max))
    c = {
        "g-r": gr,
        "r-i": max(-0.1, 0.45 * gr - 0.1) + float(rng.normal(0, 0.03)),
        "i-z": 0.25 * gr - 0.05 + float(rng.normal(0, 0.03)),
    }
    return {
        "category_id": STAR,
        "hlr": 0.0,
        "q": 1.0,
        "pa": 0.0,
        "bt": 0.0,
        "flux": {b: _flux(m) for b, m in _mags_from_colours(mag_r, c).items()},
    }


def _draw_population(
    cfg: FieldSimConfig, rng: np.random.Generator, fwhm_px: float
) -> list[dict[str, Any]]:
    im = cfg.image
    area = im.width * im.height * im.pixel_scale**2 / 3600.0  # arcmin^2
    objs: list[dict[str, Any]] = []
    for pop, make in ((cfg.galaxies, _galaxy), (cfg.stars, _star)):
        n = int(rng.poisson(pop.density * area))
        for m in _sample_mags(rng, n, pop.mag_min, pop.mag_max, pop.count_slope):
            o = make(cfg, rng, float(m))
            o.update(x=float(rng.uniform(0, im.width)), y=float(rng.uniform(0, im.height)))
            o["mag_r"] = float(m)
            objs.append(o)
    rng.shuffle(objs)  # type: ignore[arg-type]
    pr = cfg.pairs
    pair_id = 0
    companions = []
    for o in objs:
        o.setdefault("pair_id", -1)
        o.setdefault("pair_sep_fwhm", math.nan)
        if rng.uniform() >= pr.fraction:
            continue
        sep = float(rng.uniform(pr.sep_min_fwhm, pr.sep_max_fwhm))
        ang = float(rng.uniform(0, 2 * math.pi))
        x = o["x"] + sep * fwhm_px * math.cos(ang)
        y = o["y"] + sep * fwhm_px * math.sin(ang)
        mag = o["mag_r"] + float(rng.uniform(0, pr.delta_mag_max))
        make = _galaxy if rng.uniform() < pr.galaxy_fraction else _star
        c = make(cfg, rng, mag)
        if not (0 <= x < im.width and 0 <= y < im.height) or o["pair_id"] >= 0:
            continue
        c.update(x=x, y=y, mag_r=mag, pair_id=pair_id, pair_sep_fwhm=sep)
        o.update(pair_id=pair_id, pair_sep_fwhm=sep)
        companions.append(c)
        pair_id += 1
    return objs + companions


# --------------------------------------------------------------------------------------------
# truth helpers


def _central_interval(profile: np.ndarray, frac: float) -> tuple[int, int]:
    """Pixel edges ``[lo, hi)`` holding the central ``frac`` of a 1-D non-negative profile."""
    c = np.cumsum(np.clip(profile, 0, None))
    if c[-1] <= 0:
        return 0, len(profile)
    tail = (1 - frac) / 2 * c[-1]
    lo = int(np.searchsorted(c, tail, side="right"))
    hi = int(np.searchsorted(c, c[-1] - tail, side="left")) + 1
    return lo, max(hi, lo + 1)


def stamp_mask_rle(mask: np.ndarray, *, x0: int, y0: int, height: int, width: int) -> dict:
    """COCO compressed RLE of a full ``height x width`` mask that is zero outside a stamp.

    Parameters
    ----------
    mask : ndarray, shape (h, w), bool
        The stamp's mask.
    x0, y0 : int
        0-based column and row of the stamp's first pixel in the image.
    height, width : int
        Image size.

    Returns
    -------
    dict
        ``{"size": [height, width], "counts": str}`` (pycocotools' compressed RLE).
    """
    from pycocotools import mask as mask_utils

    counts: list[int] = []
    pos = 0  # next Fortran-order index to account for
    val = 0  # value of the run being accumulated
    run = 0
    cols = np.nonzero(mask.any(axis=0))[0]
    for cj in cols:
        col = mask[:, cj].astype(np.int8)
        start = (x0 + int(cj)) * height + y0
        edges = np.flatnonzero(np.diff(np.concatenate(([0], col, [0]))))
        for a, b in zip(edges[::2], edges[1::2]):
            s, e = start + int(a), start + int(b)
            # zeros from pos to s, then ones from s to e
            if s > pos:
                if val == 0:
                    run += s - pos
                else:
                    counts.append(run)
                    run, val = s - pos, 0
            if val == 1:
                run += e - s
            else:
                counts.append(run)
                run, val = e - s, 1
            pos = e
    total = height * width
    if val == 1:
        counts.append(run)
        run, val = 0, 0
    run += total - pos
    counts.append(run)
    rle = mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


# --------------------------------------------------------------------------------------------
# scene


def simulate_field_scene(
    *,
    config: FieldSimConfig,
    seed: int | np.random.SeedSequence,
    image_id: int = 0,
    return_components: bool = False,
) -> FieldScene:
    """Simulate one blended field with exact truth, in memory.

    Parameters
    ----------
    config : FieldSimConfig
        Simulation config (validated here).
    seed : int or numpy.random.SeedSequence
        The scene is a pure function of ``(config, seed)``.
    image_id : int
        Carried into the scene.
    return_components : bool
        Also keep every object's noiseless reference-band image, ``(N, H, W)`` float32 (tests).

    Returns
    -------
    FieldScene
    """
    cfg = validate_field_config(config)
    ss = as_seed_sequence(seed)
    with single_threaded_galsim():
        return _simulate(cfg, ss, int(image_id), return_components)


def _simulate(
    cfg: FieldSimConfig, ss: np.random.SeedSequence, image_id: int, return_components: bool
) -> FieldScene:
    rng = np.random.default_rng(substream(ss, 0))
    im, t = cfg.image, cfg.truth
    w, h, scale = im.width, im.height, im.pixel_scale
    ref = t.reference_band
    draw_bands = tuple(dict.fromkeys((*im.bands, ref)))

    p = cfg.psf
    fwhm_ref = float(np.clip(rng.normal(p.fwhm_mean, p.fwhm_sd), p.fwhm_min, p.fwhm_max))
    fwhm = {b: fwhm_ref * p.band_factor[b] for b in FIELD_BANDS}
    psfs = {b: psf_profile(p.profile, fwhm[b], moffat_beta=p.moffat_beta) for b in draw_bands}
    n_eff = 4 * math.pi * (p.fwhm_mean / 2.3548 / scale) ** 2
    sigma = {b: _flux(cfg.noise.depth_5sigma[b]) / (5 * math.sqrt(n_eff)) for b in FIELD_BANDS}
    ra = float(rng.uniform(*im.ra_range))
    dec = float(rng.uniform(*im.dec_range))
    fwhm_px = fwhm_ref / scale
    objs = _draw_population(cfg, rng, fwhm_px)

    model = {b: np.zeros((h, w), dtype=np.float64) for b in draw_bands}
    stamps: list[tuple[galsim.BoundsI, dict[str, np.ndarray]] | None] = []
    for o in objs:
        radius = min(
            _MAX_STAMP_PX, (t.stamp_fwhm * max(fwhm.values()) + t.stamp_hlr * o["hlr"]) / scale
        )
        per_band: dict[str, np.ndarray] = {}
        bounds = None
        for b in draw_bands:
            if o["category_id"] == STAR:
                prof = psfs[b].withFlux(o["flux"][b])
            else:
                shear = galsim.Shear(q=o["q"], beta=o["pa"] * galsim.radians)
                disk = galsim.Exponential(half_light_radius=o["hlr"], gsparams=GSPARAMS)
                parts = [disk.withFlux(o["disk_flux"][b])]
                if o["bt"] > 0:
                    bhlr = max(0.02, cfg.galaxies.bulge_size_ratio * o["hlr"])
                    bulge = galsim.DeVaucouleurs(
                        half_light_radius=bhlr, trunc=8 * bhlr, gsparams=GSPARAMS
                    )
                    parts.append(bulge.withFlux(o["bulge_flux"][b]))
                gal = galsim.Add(parts).shear(shear)
                prof = galsim.Convolve(gal, psfs[b], gsparams=GSPARAMS)
            drawn = draw_unit(prof, o["x"], o["y"], radius, w, h, scale)
            if drawn is None:
                break
            bounds = drawn[0]
            per_band[b] = drawn[1]
            model[b][stamp_slices(bounds)] += drawn[1]
        stamps.append((bounds, per_band) if bounds is not None else None)

    noise_seed = galsim_seed(ss, 1)
    deviate = galsim.GaussianDeviate(galsim.BaseDeviate(noise_seed))
    planes = []
    rho = cfg.noise.correlation
    for b in im.bands:
        if rho > 0:
            draws = np.empty((h, w), dtype=np.float64)
            deviate.generate(draws)
            var = sigma[b] ** 2 + (
                np.clip(model[b], 0.0, None) / cfg.noise.gain if cfg.noise.poisson else 0.0
            )
            noisy = model[b] + np.sqrt(var) * correlate_noise(draws, rho)
        else:
            noisy, _ = add_gaussian_noise(
                model[b],
                base_var=sigma[b] ** 2,
                gain=cfg.noise.gain,
                poisson=cfg.noise.poisson,
                deviate=deviate,
            )
        planes.append(noisy.astype(np.float32))
    image = np.stack(planes)
    artefacts = None
    if any_enabled(cfg.artefacts):
        artefacts = apply_artefacts(
            image,
            [sigma[b] for b in im.bands],
            cfg.artefacts,
            np.random.default_rng(substream(ss, 2)),
        )

    records, masks = _truth(cfg, objs, stamps, model[ref], sigma, fwhm_px, (h, w))
    components = None
    if return_components:
        components = np.zeros((len(objs), h, w), dtype=np.float32)
        for k, st in enumerate(stamps):
            if st is not None:
                components[k][stamp_slices(st[0])] = st[1][ref]
    return FieldScene(
        image=image,
        bands=tuple(im.bands),
        wcs=make_wcs(shape=(h, w), ra=ra, dec=dec, pixel_scale=scale),
        pixel_scale=scale,
        psf_fwhm=fwhm_ref,
        psf_fwhm_bands={b: fwhm[b] for b in im.bands},
        noise_sigma={b: sigma[b] for b in im.bands},
        objects=records,
        masks=masks if t.masks else None,
        image_id=image_id,
        components=components,
        artefacts=artefacts,
    )


def _truth(
    cfg: FieldSimConfig,
    objs: list[dict[str, Any]],
    stamps: list[tuple[galsim.BoundsI, dict[str, np.ndarray]] | None],
    total_ref: np.ndarray,
    sigma: dict[str, float],
    fwhm_px: float,
    shape: tuple[int, int],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    t = cfg.truth
    h, w = shape
    ref = t.reference_band
    iso = t.iso_nsigma * sigma[ref]
    coverage = np.zeros((h, w), dtype=np.int32)
    own_masks: list[tuple[slice, slice, np.ndarray] | None] = []
    rows: list[dict[str, Any]] = []
    for k, (o, st) in enumerate(zip(objs, stamps)):
        row: dict[str, Any] = {
            "object_id": k,
            "category_id": o["category_id"],
            "x": o["x"],
            "y": o["y"],
            **{f"mag_{b}": -2.5 * math.log10(o["flux"][b]) + ZERO_POINT for b in cfg.image.bands},
            "mag": o["mag_r"] if ref == "r" else -2.5 * math.log10(o["flux"][ref]) + ZERO_POINT,
            "hlr": o["hlr"],
            "axis_ratio": o["q"],
            "bulge_fraction": o["bt"],
            "pair_id": o["pair_id"],
            "pair_sep_fwhm": o["pair_sep_fwhm"],
        }
        if st is None:  # entirely outside the frame (cannot happen for centres inside)
            row.update(snr=0.0, labelled=False, x1=o["x"], y1=o["y"], x2=o["x"], y2=o["y"])
            rows.append(row)
            own_masks.append(None)
            continue
        bounds, per_band = st
        ys, xs = stamp_slices(bounds)
        s = per_band[ref]
        snr = math.sqrt(
            sum(float(np.sum(per_band[b] ** 2)) / sigma[b] ** 2 for b in cfg.image.bands)
        )
        x_lo, x_hi = _central_interval(s.sum(axis=0), t.box_flux_fraction)
        y_lo, y_hi = _central_interval(s.sum(axis=1), t.box_flux_fraction)
        iso_m = s >= iso
        if iso_m.any():
            cols, rws = np.nonzero(iso_m.any(axis=0))[0], np.nonzero(iso_m.any(axis=1))[0]
            x_lo, x_hi = min(x_lo, int(cols[0])), max(x_hi, int(cols[-1]) + 1)
            y_lo, y_hi = min(y_lo, int(rws[0])), max(y_hi, int(rws[-1]) + 1)
        x1, x2 = float(xs.start + x_lo), float(xs.start + x_hi)
        y1, y2 = float(ys.start + y_lo), float(ys.start + y_hi)
        x1, x2 = _min_side(x1, x2, o["x"], t.min_box_px, w)
        y1, y2 = _min_side(y1, y2, o["y"], t.min_box_px, h)
        mask = s >= min(iso, t.mask_peak_fraction * float(s.max()))
        coverage[ys, xs] += mask
        own_masks.append((ys, xs, mask))
        denom = float(np.sum(s * total_ref[ys, xs]))
        row.update(
            snr=snr,
            labelled=bool(snr >= t.label_snr),
            x1=x1,
            y1=y1,
            x2=x2,
            y2=y2,
            flux_in_box=float(np.sum(s[y_lo:y_hi, x_lo:x_hi])),
            flux_in_image=float(s.sum()),
            blendedness=float(1 - np.sum(s**2) / denom) if denom > 0 else 0.0,
        )
        rows.append(row)

    rles: list[dict[str, Any]] = []
    for row, m in zip(rows, own_masks):
        if m is None:
            row["overlap"] = 0.0
            rles.append({"size": [h, w], "counts": ""})
            continue
        ys, xs, mask = m
        n = int(mask.sum())
        row["overlap"] = float(np.sum(coverage[ys, xs][mask] > 1) / n) if n else 0.0
        if t.masks and row["labelled"]:
            rles.append(stamp_mask_rle(mask, x0=xs.start, y0=ys.start, height=h, width=w))
        else:
            rles.append({"size": [h, w], "counts": ""})

    lab = [i for i, r in enumerate(rows) if r["labelled"]]
    pts = np.array([[rows[i]["x"], rows[i]["y"]] for i in lab]).reshape(-1, 2)
    tree = cKDTree(pts) if len(lab) else None
    for i, r in enumerate(rows):
        d = math.inf
        if tree is not None:
            k = min(2, len(lab))
            dist, idx = tree.query([r["x"], r["y"]], k=k)
            dist, idx = np.atleast_1d(dist), np.atleast_1d(idx)
            for dd, ii in zip(dist, idx):
                if np.isfinite(dd) and lab[int(ii)] != i:
                    d = float(dd)
                    break
        r["nn_sep_px"] = d
        r["nn_sep_fwhm"] = d / fwhm_px
    return rows, rles


def _min_side(lo: float, hi: float, c: float, min_side: float, size: int) -> tuple[float, float]:
    if hi - lo < min_side:
        lo, hi = min(lo, c - min_side / 2), max(hi, c + min_side / 2)
    return max(0.0, lo), min(float(size), hi)
