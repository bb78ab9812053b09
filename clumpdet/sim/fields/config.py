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
from typing import Any

from clumpdet.errors import ConfigError
from clumpdet.sim.optics import PerBand, PSFShape
from clumpdet.sim.validate import (
    Rule,
    at_least,
    band_names,
    fraction,
    has_keys,
    in_range,
    load_sim_yaml,
    non_negative,
    one_of,
    ordered,
    per_band,
    positive,
    psf_rules,
    rule,
    validate,
)

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
class FieldPSFConfig(PSFShape):
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

    fwhm_mean: float = 1.0
    fwhm_sd: float = 0.15
    fwhm_min: float = 0.7
    fwhm_max: float = 1.5
    band_factor: PerBand = field(
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
    correlation : float
        Lag-1 autocorrelation of the sky noise along x and y (0: white; < 0.7): the white noise
        is smoothed by the separable kernel ``[a, 1, a]`` and rescaled to the same sigma (e.g.
        a resampled or stacked survey frame).
    """

    depth_5sigma: PerBand = field(
        default_factory=lambda: {"g": 24.3, "r": 24.0, "i": 23.5, "z": 23.0}
    )
    gain: float = 3000.0
    poisson: bool = True
    correlation: float = 0.0


@dataclass(frozen=True)
class FieldArtefactConfig:
    """Detector artefacts added after the noise (all off by default: 0 disables each).

    None of them is an object of the truth: the detector must learn to ignore them (saturated
    stars stay labelled stars). They use their own random stream, so turning one on leaves the
    sky, the objects and the noise of a scene unchanged.

    Attributes
    ----------
    cosmic_rays_per_mpix : float
        Mean number of cosmic-ray hits per million pixels per band (Poisson): sharp, unconvolved
        tracks of ``cosmic_ray_length_px`` pixels at a random angle with a peak of
        ``cosmic_ray_peak_sigma`` sky sigmas (log-uniform between the two values).
    cosmic_ray_length_px, cosmic_ray_peak_sigma : (float, float)
        Ranges of the tracks' length and peak.
    saturation : float
        Saturation level, image units above the sky (0: off). Pixels above it are clipped and
        their excess charge bleeds up and down the column (``bleed``).
    bleed : bool
        Spread the clipped charge along the column as a bleed trail.
    bad_columns_per_kpix : float
        Mean number of bad columns per 1000 pixels of width (Poisson); each is dead (set to
        ``-bad_column_sigma`` sigma) or hot (``+bad_column_sigma``) over a random length.
    bad_column_sigma : float
        Offset of a bad column, sky sigmas.
    gradient_sigma : float
        Sky gradient left after sky subtraction: a plane of random direction whose amplitude
        across the tile is Uniform(0, gradient_sigma) sky sigmas.
    """

    cosmic_rays_per_mpix: float = 0.0
    cosmic_ray_length_px: tuple[float, float] = (1.0, 8.0)
    cosmic_ray_peak_sigma: tuple[float, float] = (8.0, 300.0)
    saturation: float = 0.0
    bleed: bool = True
    bad_columns_per_kpix: float = 0.0
    bad_column_sigma: float = 10.0
    gradient_sigma: float = 0.0


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
class FieldPairConfig:
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
    pairs: FieldPairConfig = field(default_factory=FieldPairConfig)
    truth: FieldTruthConfig = field(default_factory=FieldTruthConfig)
    artefacts: FieldArtefactConfig = field(default_factory=FieldArtefactConfig)


def _rules() -> list[Rule]:
    return [
        *at_least(16, "image.width", "image.height"),
        *positive("image.pixel_scale"),
        *band_names("image.bands", FIELD_BANDS),
        *one_of("truth.reference_band", FIELD_BANDS),
        *psf_rules(),
        *positive("psf.fwhm_min", "psf.fwhm_max"),
        *non_negative("psf.fwhm_sd"),
        *per_band("psf.band_factor", bands=FIELD_BANDS),
        *per_band("noise.depth_5sigma", bands=FIELD_BANDS, minimum=-math.inf),
        *positive("noise.gain"),
        *non_negative("galaxies.density", "stars.density"),
        *ordered("galaxies.mag_min", "stars.mag_min", strict=True),
        *positive("galaxies.hlr_min", "galaxies.hlr_max"),
        *fraction("galaxies.bulge_fraction_max"),
        *in_range(0.0, 1.0, "galaxies.axis_ratio_min", closed="right"),
        *has_keys("galaxies.colour_mean", "galaxies.colour_sd", keys=("g-r", "r-i", "i-z")),
        *fraction("pairs.fraction", "pairs.galaxy_fraction"),
        *positive("pairs.sep_min_fwhm"),
        *non_negative("pairs.delta_mag_max"),
        *in_range(0.5, 1.0, "truth.box_flux_fraction", closed="neither"),
        *non_negative("truth.label_snr"),
        *positive("truth.iso_nsigma", "truth.min_box_px", "truth.stamp_hlr"),
        *in_range(0.0, 1.0, "truth.mask_peak_fraction", closed="neither"),
        *rule(
            "truth.stamp_fwhm",
            ok=lambda v, _: v > 1,
            problem=lambda v: f"must be > 1, got {v!r}",
        ),
        *in_range(0.0, 0.7, "noise.correlation", closed="left"),
        *non_negative(
            "artefacts.cosmic_rays_per_mpix",
            "artefacts.saturation",
            "artefacts.bad_columns_per_kpix",
            "artefacts.bad_column_sigma",
            "artefacts.gradient_sigma",
        ),
        *ordered("*_min", "*_min_*"),
    ]


def validate_field_config(cfg: FieldSimConfig, *, where: str = "config") -> FieldSimConfig:
    """Check ranges and band names (the rules of :mod:`clumpdet.sim.validate`); return ``cfg``.

    Raises
    ------
    ConfigError
        Naming the offending key.
    """
    if not isinstance(cfg, FieldSimConfig):
        raise ConfigError(f"{where}: expected a FieldSimConfig, got {type(cfg).__name__}")
    return validate(cfg, _rules(), where=where)


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
    return load_sim_yaml(FieldSimConfig, path, overrides, _rules())
