"""Configuration of the blended-field simulator (stars and galaxies in survey tiles).

Every knob of :func:`clumpdet.sim.fields.simulate_field_scene` is a field below with a documented
default; ``configs/sim/fields_decam.yaml`` spells out the full default (a test checks that loading
it gives exactly ``FieldSimConfig()``).

Units: angles and sizes in arcsec unless a name says ``px``; fluxes in nanomaggies (AB 22.5 mag =
1 nanomaggy); number densities per square arcminute. Colours are AB magnitude differences. The
reference band (``truth.reference_band``, default r) is the one in which magnitudes, boxes and
masks are defined.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from clumpdet.config import load_config
from clumpdet.errors import ConfigError
from clumpdet.sim.run import RUN_KEY

#: Bands the field simulator models; any non-empty subset may be written out.
FIELD_BANDS: tuple[str, ...] = ("g", "r", "i", "z")

#: COCO categories of the field data sets.
FIELD_CATEGORIES: list[dict[str, Any]] = [
    {"id": 1, "name": "star", "supercategory": "source"},
    {"id": 2, "name": "galaxy", "supercategory": "source"},
]


@dataclass(frozen=True)
class FieldImageConfig:
    """Frame geometry and bands.

    Attributes
    ----------
    width, height : int
        Tile size in pixels (default 256 x 256; use e.g. 2048 for a mosaic).
    pixel_scale : float
        Arcsec per pixel (DECam 0.263).
    bands : tuple of str
        Bands written to the cube, a subset of ``("g", "r", "i", "z")`` (default DECam g, r, z).
    ra_range, dec_range : (float, float)
        Degrees; each image's WCS centre is drawn uniformly inside (a DES-like footprint).
    """

    width: int = 256
    height: int = 256
    pixel_scale: float = 0.263
    bands: tuple[str, ...] = ("g", "r", "z")
    ra_range: tuple[float, float] = (0.0, 60.0)
    dec_range: tuple[float, float] = (-60.0, -5.0)


@dataclass(frozen=True)
class FieldPSFConfig:
    """PSF: one per image, mildly chromatic.

    Attributes
    ----------
    profile : {"moffat", "kolmogorov", "gaussian"}
        Shape.
    moffat_beta : float
        Moffat index.
    fwhm_mean, fwhm_sd, fwhm_min, fwhm_max : float
        Reference-band FWHM (arcsec) ~ Normal(mean, sd) clipped to [min, max] (DES-like seeing).
    band_factor : dict
        FWHM of band b = reference FWHM * factor[b] (seeing improves to the red).
    """

    profile: Literal["moffat", "kolmogorov", "gaussian"] = "moffat"
    moffat_beta: float = 3.5
    fwhm_mean: float = 1.0
    fwhm_sd: float = 0.15
    fwhm_min: float = 0.7
    fwhm_max: float = 1.5
    band_factor: dict[str, float] = field(
        default_factory=lambda: {"g": 1.08, "r": 1.0, "i": 0.96, "z": 0.93}
    )


@dataclass(frozen=True)
class FieldNoiseConfig:
    """Sky-limited Gaussian noise set by a point-source depth, plus the sources' shot noise.

    The sky sigma per pixel of band b is ``f5_b / (5 sqrt(n_eff))`` where ``f5_b`` is the flux of
    a ``depth_5sigma[b]`` magnitude point source and ``n_eff = 4 pi sigma_psf^2`` is the
    noise-equivalent area of a Gaussian PSF of FWHM ``fwhm_mean`` (pixels^2). The images are
    sky-subtracted.

    Attributes
    ----------
    depth_5sigma : dict
        5-sigma point-source depth per band, AB mag (DES wide single-epoch-like).
    gain : float
        Counts per nanomaggy (sets the sources' shot noise).
    poisson : bool
        Add the sources' shot noise.
    """

    depth_5sigma: dict[str, float] = field(
        default_factory=lambda: {"g": 24.3, "r": 24.0, "i": 23.5, "z": 23.0}
    )
    gain: float = 3000.0
    poisson: bool = True


@dataclass(frozen=True)
class GalaxyPopulationConfig:
    """Galaxies: bulge (de Vaucouleurs) + disk (exponential).

    Attributes
    ----------
    density : float
        Galaxies per arcmin^2 with ``mag_min <= r <= mag_max`` (Poisson per image).
    mag_min, mag_max : float
        Reference-band magnitude range; ``mag_max`` lies below the 5-sigma depth so the faintest
        galaxies sit in the noise.
    count_slope : float
        ``dN/dm ~ 10**(count_slope m)`` (faint galaxy counts, ~0.33 in r).
    hlr_at_22, hlr_mag_slope, hlr_scatter_dex : float
        Disk half-light radius (arcsec) = ``hlr_at_22 * 10**(-hlr_mag_slope (m - 22))`` times a
        log-normal scatter of ``hlr_scatter_dex`` dex.
    hlr_min, hlr_max : float
        Clip of the disk half-light radius, arcsec.
    bulge_fraction_max : float
        Bulge-to-total flux ratio ~ Uniform(0, max).
    bulge_size_ratio : float
        Bulge half-light radius / disk half-light radius.
    axis_ratio_min : float
        Disk axis ratio ~ Uniform(min, 1).
    colour_mean, colour_sd : dict
        Disk colours ``g-r``, ``r-i``, ``i-z`` ~ Normal(mean, sd).
    bulge_red_offset : float
        The bulge's ``g-r`` is redder by this many magnitudes (``r-i``, ``i-z`` by half).
    """

    density: float = 30.0
    mag_min: float = 18.0
    mag_max: float = 25.5
    count_slope: float = 0.33
    hlr_at_22: float = 0.55
    hlr_mag_slope: float = 0.15
    hlr_scatter_dex: float = 0.15
    hlr_min: float = 0.1
    hlr_max: float = 5.0
    bulge_fraction_max: float = 0.6
    bulge_size_ratio: float = 0.35
    axis_ratio_min: float = 0.2
    colour_mean: dict[str, float] = field(
        default_factory=lambda: {"g-r": 0.75, "r-i": 0.40, "i-z": 0.25}
    )
    colour_sd: dict[str, float] = field(
        default_factory=lambda: {"g-r": 0.35, "r-i": 0.20, "i-z": 0.15}
    )
    bulge_red_offset: float = 0.3


@dataclass(frozen=True)
class StarPopulationConfig:
    """Stars: point sources (the PSF) on the stellar locus.

    Attributes
    ----------
    density : float
        Stars per arcmin^2 with ``mag_min <= r <= mag_max`` (high Galactic latitude ~ 3-10).
    mag_min, mag_max : float
        Reference-band magnitude range.
    count_slope : float
        ``dN/dm ~ 10**(count_slope m)``.
    gr_min, gr_max : float
        ``g-r`` ~ Uniform(min, max); ``r-i = 0.45 (g-r) - 0.1`` (clipped at -0.1 below) and
        ``i-z = 0.25 (g-r) - 0.05``, plus 0.03 mag scatter (an approximate stellar locus).
    """

    density: float = 6.0
    mag_min: float = 16.0
    mag_max: float = 25.0
    count_slope: float = 0.12
    gr_min: float = 0.2
    gr_max: float = 1.5


@dataclass(frozen=True)
class PairConfig:
    """Designed close pairs (the deblending test), added on top of the field population.

    Attributes
    ----------
    fraction : float
        Share of field objects that receive a companion.
    sep_min_fwhm, sep_max_fwhm : float
        Separation ~ Uniform(min, max) in units of the image's reference PSF FWHM.
    delta_mag_max : float
        Companion magnitude = primary + Uniform(0, max) (flux ratio 1 to 10 for 2.5).
    galaxy_fraction : float
        Probability that the companion is a galaxy (else a star).
    """

    fraction: float = 0.15
    sep_min_fwhm: float = 0.5
    sep_max_fwhm: float = 4.0
    delta_mag_max: float = 2.5
    galaxy_fraction: float = 0.7


@dataclass(frozen=True)
class FieldTruthConfig:
    """How the truth (boxes, masks, labels) is defined.

    Every object is drawn noiselessly into its own stamp; boxes and masks come from its
    reference-band stamp (see :mod:`clumpdet.sim.fields.scene`).

    Attributes
    ----------
    reference_band : str
        Band of magnitudes, boxes and masks (one of ``FIELD_BANDS``; always modelled).
    label_snr : float
        Objects with optimal (matched-filter, all bands) S/N >= this are labelled in the COCO
        truth; fainter ones appear only in ``objects.csv`` (and are ignored by the evaluation).
    box_flux_fraction : float
        The box holds the central ``box_flux_fraction`` of the light along each axis, so at least
        ``2 box_flux_fraction - 1`` of the object's flux (0.95 -> >= 90 %).
    iso_nsigma : float
        The box also covers the object's noiseless isophote at this many sky sigmas.
    min_box_px : float
        Minimum box side, px.
    mask_peak_fraction : float
        Mask = pixels above ``min(iso_nsigma sigma, mask_peak_fraction * peak)`` of the object's
        own noiseless image (never empty).
    masks : bool
        Write COCO RLE segmentation masks.
    stamp_fwhm : float
        Stamps reach ``stamp_fwhm`` PSF FWHM plus ``stamp_hlr`` half-light radii from the centre.
    stamp_hlr : float
        See ``stamp_fwhm``.
    """

    reference_band: str = "r"
    label_snr: float = 5.0
    box_flux_fraction: float = 0.95
    iso_nsigma: float = 1.0
    min_box_px: float = 3.0
    mask_peak_fraction: float = 0.25
    masks: bool = True
    stamp_fwhm: float = 4.0
    stamp_hlr: float = 6.0


@dataclass(frozen=True)
class FieldSimConfig:
    """Full configuration of a blended-field simulation (``configs/sim/fields_decam.yaml``)."""

    image: FieldImageConfig = field(default_factory=FieldImageConfig)
    psf: FieldPSFConfig = field(default_factory=FieldPSFConfig)
    noise: FieldNoiseConfig = field(default_factory=FieldNoiseConfig)
    galaxies: GalaxyPopulationConfig = field(default_factory=GalaxyPopulationConfig)
    stars: StarPopulationConfig = field(default_factory=StarPopulationConfig)
    pairs: PairConfig = field(default_factory=PairConfig)
    truth: FieldTruthConfig = field(default_factory=FieldTruthConfig)


def _fail(where: str, key: str, problem: str) -> None:
    raise ConfigError(f"{where}: {key}: {problem}")


def validate_field_config(cfg: FieldSimConfig, *, where: str = "config") -> FieldSimConfig:
    """Check ranges and band names; return ``cfg`` unchanged.

    Raises
    ------
    ConfigError
        Naming the offending key.
    """
    im = cfg.image
    if im.width < 16 or im.height < 16:
        _fail(where, "image.width/height", f"must be >= 16 px, got {im.width} x {im.height}")
    if im.pixel_scale <= 0:
        _fail(where, "image.pixel_scale", "must be > 0")
    if not im.bands or len(set(im.bands)) != len(im.bands):
        _fail(where, "image.bands", f"must be non-empty and unique, got {list(im.bands)}")
    for b in im.bands:
        if b not in FIELD_BANDS:
            _fail(where, "image.bands", f"unknown band {b!r}; modelled bands: {list(FIELD_BANDS)}")
    if cfg.truth.reference_band not in FIELD_BANDS:
        _fail(where, "truth.reference_band", f"must be one of {list(FIELD_BANDS)}")
    p = cfg.psf
    if p.profile not in ("moffat", "kolmogorov", "gaussian"):
        _fail(where, "psf.profile", "must be moffat, kolmogorov or gaussian")
    if not 0 < p.fwhm_min <= p.fwhm_max or p.fwhm_sd < 0:
        _fail(where, "psf.fwhm_min/fwhm_max/fwhm_sd", "need 0 < fwhm_min <= fwhm_max, sd >= 0")
    if p.profile == "moffat" and p.moffat_beta <= 1.1:
        _fail(where, "psf.moffat_beta", "must be > 1.1 (finite flux)")
    for b in FIELD_BANDS:
        if p.band_factor.get(b, 0) <= 0:
            _fail(where, "psf.band_factor", f"needs a positive factor for band {b!r}")
        if b not in cfg.noise.depth_5sigma:
            _fail(where, "noise.depth_5sigma", f"needs a depth for band {b!r}")
    if cfg.noise.gain <= 0:
        _fail(where, "noise.gain", "must be > 0")
    for name, pop in (("galaxies", cfg.galaxies), ("stars", cfg.stars)):
        if pop.density < 0:
            _fail(where, f"{name}.density", "must be >= 0")
        if pop.mag_min >= pop.mag_max:
            _fail(where, f"{name}.mag_min", "must be < mag_max")
    g = cfg.galaxies
    if not 0 < g.hlr_min <= g.hlr_max:
        _fail(where, "galaxies.hlr_min/hlr_max", "need 0 < hlr_min <= hlr_max")
    if not 0 <= g.bulge_fraction_max <= 1:
        _fail(where, "galaxies.bulge_fraction_max", "must be in [0, 1]")
    if not 0 < g.axis_ratio_min <= 1:
        _fail(where, "galaxies.axis_ratio_min", "must be in (0, 1]")
    for k in ("g-r", "r-i", "i-z"):
        if k not in g.colour_mean or k not in g.colour_sd:
            _fail(where, "galaxies.colour_mean/colour_sd", f"need a {k!r} entry")
    pr = cfg.pairs
    if not 0 <= pr.fraction <= 1 or not 0 <= pr.galaxy_fraction <= 1:
        _fail(where, "pairs.fraction/galaxy_fraction", "must be in [0, 1]")
    if not 0 < pr.sep_min_fwhm <= pr.sep_max_fwhm or pr.delta_mag_max < 0:
        _fail(where, "pairs.sep_min_fwhm/sep_max_fwhm", "need 0 < min <= max, delta_mag_max >= 0")
    t = cfg.truth
    if not 0.5 < t.box_flux_fraction < 1:
        _fail(where, "truth.box_flux_fraction", "must be in (0.5, 1)")
    if t.label_snr < 0 or t.iso_nsigma <= 0 or t.min_box_px <= 0:
        _fail(where, "truth", "label_snr >= 0, iso_nsigma > 0 and min_box_px > 0 are required")
    if not 0 < t.mask_peak_fraction < 1:
        _fail(where, "truth.mask_peak_fraction", "must be in (0, 1)")
    if math.isnan(t.stamp_fwhm) or t.stamp_fwhm <= 1 or t.stamp_hlr <= 0:
        _fail(where, "truth.stamp_fwhm/stamp_hlr", "stamp_fwhm > 1 and stamp_hlr > 0")
    return cfg


def load_field_config(
    path: str | Path | None = None, overrides: Iterable[str] | Mapping[str, Any] = ()
) -> FieldSimConfig:
    """Load and validate a :class:`FieldSimConfig` (YAML with ``_base_``, plus overrides).

    Parameters
    ----------
    path : str or Path, optional
        ``configs/sim/fields_*.yaml`` or a simulation's ``config.yaml`` (its ``_run_`` block is
        ignored). Default: the built-in defaults.
    overrides : iterable of "key=value" strings, or a nested mapping
        E.g. ``["image.width=2048", "galaxies.density=60"]``.

    Raises
    ------
    ConfigError
        On a missing file, unknown keys, wrong types or invalid ranges.
    """
    cfg = load_config(FieldSimConfig, path, overrides, ignore_keys=(RUN_KEY,))
    return validate_field_config(cfg, where=str(path) if path is not None else "config")
