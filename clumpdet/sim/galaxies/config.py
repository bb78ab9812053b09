"""Configuration of the galaxy-classification simulators (mergers, four-class, morphology).

Each task has a frozen nested dataclass config whose defaults are spelled out in full in
``configs/sim/<task>.yaml`` (a test checks that loading the file gives exactly the default).
Groups shared by the tasks (image, PSF, noise, galaxy population, merging pairs, spiral arms) are
the same classes with task-specific defaults.

Units: sizes and distances in arcsec unless a name says otherwise (``*_hlr`` = in units of the
galaxy's disk half-light radius); fluxes in the image flux unit of the task (microjansky for
``mergers``, nanomaggies for ``four_class`` and ``morphology``); spectral energy distributions
(``*_sed``) are per-band flux multipliers relative to the first band; angles in degrees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clumpdet.config import read_yaml
from clumpdet.errors import ConfigError
from clumpdet.sim.optics import PerBand, PSFShape
from clumpdet.sim.run import RUN_KEY
from clumpdet.sim.validate import (
    Rule,
    at_least,
    band_names,
    finite,
    fraction,
    in_range,
    load_sim_yaml,
    ordered,
    per_band,
    positive,
    psf_rules,
    rule,
    validate,
    weights,
)

#: Default bands of the merger task (DeepMerge: HST F814W, JWST F356W, HST F160W).
HST_JWST_BANDS: tuple[str, ...] = ("F814W", "F356W", "F160W")
#: Bands of the SDSS-like tasks (four_class, morphology).
SDSS_BANDS: tuple[str, ...] = ("g", "r", "i")


def _hst_jwst(*values: float) -> PerBand:
    return dict(zip(HST_JWST_BANDS, values))


def _sdss(*values: float) -> PerBand:
    return dict(zip(SDSS_BANDS, values))


@dataclass(frozen=True)
class GalaxyImageConfig:
    """Frame geometry, bands and units.

    Attributes
    ----------
    width, height : int
        Image size, pixels.
    pixel_scale : float
        Arcsec per pixel.
    bands : tuple of str
        Band names, bluest first (every per-band mapping needs a value for each).
    unit : str
        Unit string of the image values (written to ``config.yaml``; e.g. ``uJy/arcsec2``).
    surface_brightness : bool
        Pixel values are surface brightness (flux per pixel / pixel area, DeepMerge's
        microjansky/arcsec^2) instead of flux per pixel.
    oversample : int
        Each pixel is integrated on ``oversample x oversample`` sub-pixels before the PSF.
    """

    width: int = 75
    height: int = 75
    pixel_scale: float = 0.1875
    bands: tuple[str, ...] = HST_JWST_BANDS
    unit: str = "uJy/arcsec2"
    surface_brightness: bool = True
    oversample: int = 3


@dataclass(frozen=True)
class GalaxyPSFConfig(PSFShape):
    """One PSF per band.

    Attributes
    ----------
    profile : {"moffat", "kolmogorov", "gaussian"}
        Shape.
    moffat_beta : float
        Moffat index.
    fwhm : {band: float}
        FWHM per band, arcsec.
    """

    moffat_beta: float = 3.0
    fwhm: PerBand = field(default_factory=lambda: _hst_jwst(0.09, 0.14, 0.18))


@dataclass(frozen=True)
class GalaxyNoiseConfig:
    """Gaussian sky noise plus optional shot noise of the sources.

    Per-pixel variance in band b: ``sky_sigma_b**2 + max(model_b, 0) / gain_b`` (second term
    when ``poisson``), in image units.

    Attributes
    ----------
    enabled : bool
        False gives noiseless ("pristine", DeepMerge) images; True the "noisy" variant.
    sky_sigma : {band: float}
        Sky noise sigma per pixel per band, image units.
    poisson : bool
        Add the shot noise of the sources.
    gain : {band: float}
        Counts per image unit per band (shot noise).
    """

    enabled: bool = True
    sky_sigma: PerBand = field(default_factory=lambda: _hst_jwst(0.15, 0.2, 0.15))
    poisson: bool = True
    gain: PerBand = field(default_factory=lambda: _hst_jwst(300.0, 300.0, 300.0))


@dataclass(frozen=True)
class PopulationConfig:
    """Galaxy population: exponential disk plus Sersic bulge, with per-band SEDs.

    Attributes
    ----------
    flux_min, flux_max : float
        Total flux in the first band (image flux unit), log-uniform.
    hlr_min, hlr_max : float
        Disk half-light radius, arcsec, log-uniform.
    axis_ratio_min : float
        Disk axis ratio (cos inclination) ~ Uniform(min, 1).
    bulge_fraction_min, bulge_fraction_max : float
        Bulge-to-total flux ratio (first band), uniform.
    bulge_hlr_ratio_min, bulge_hlr_ratio_max : float
        Bulge / disk half-light radius, uniform.
    bulge_sersic_n : float
        Bulge Sersic index.
    disk_sed, bulge_sed, young_sed : {band: float}
        Flux per band relative to the first band of disks, bulges and star-forming features
        (tails, rings, clumps, arms).
    sed_scatter : float
        Per-band, per-component colour scatter, magnitudes (Gaussian).
    offset_sd : float
        Centre offset of the main galaxy from the frame centre, arcsec per axis.
    """

    flux_min: float = 3.0
    flux_max: float = 30.0
    hlr_min: float = 0.35
    hlr_max: float = 1.1
    axis_ratio_min: float = 0.3
    bulge_fraction_min: float = 0.0
    bulge_fraction_max: float = 0.6
    bulge_hlr_ratio_min: float = 0.2
    bulge_hlr_ratio_max: float = 0.5
    bulge_sersic_n: float = 3.0
    disk_sed: PerBand = field(default_factory=lambda: _hst_jwst(1.0, 1.6, 1.5))
    bulge_sed: PerBand = field(default_factory=lambda: _hst_jwst(1.0, 2.6, 2.1))
    young_sed: PerBand = field(default_factory=lambda: _hst_jwst(1.0, 0.9, 1.0))
    sed_scatter: float = 0.1
    offset_sd: float = 0.1


@dataclass(frozen=True)
class MergerPairConfig:
    """Merging pairs (positives) and chance projections (hard negatives).

    Merging pairs: a secondary galaxy at projected separation ``s`` from the primary, both
    tidally distorted: a shear of amplitude ``shear`` along the line joining them, a flexure-like
    bending of the isophotes (curvature ``bend`` per half-light radius), a lopsided (m = 1) light
    asymmetry and curved tidal tails. A chance projection draws the same kind of companion at
    the same separations but with none of the distortions.

    Attributes
    ----------
    separation_min, separation_max : float
        Projected separation, in units of the primary's disk half-light radius, uniform.
    flux_ratio_min, flux_ratio_max : float
        Secondary / primary flux, log-uniform.
    tail_probability : float
        Probability that each galaxy of a merging pair has tidal tails (a pair always has one).
    max_tails : int
        Tails per galaxy: 1 .. max_tails.
    tail_flux_min, tail_flux_max : float
        Flux of a galaxy's tails as a fraction of the galaxy's flux (taken from its disk).
    tail_length_min, tail_length_max : float
        Tail length, in half-light radii of its galaxy.
    tail_width_min, tail_width_max : float
        Tail Gaussian width (sigma), in half-light radii.
    tail_turn_min, tail_turn_max : float
        Total turning angle of the tail along its length, degrees (curvature).
    shear_min, shear_max : float
        Tidal shear ``|g|`` of each galaxy along the separation vector.
    bend_min, bend_max : float
        Flexure-like bending: isophotes become ``y' = y - bend * x^2 / hlr``.
    lopsided_min, lopsided_max : float
        Amplitude of the m = 1 light asymmetry ``1 + a cos(phi - phi0)``.
    """

    separation_min: float = 1.2
    separation_max: float = 4.0
    flux_ratio_min: float = 0.25
    flux_ratio_max: float = 1.0
    tail_probability: float = 0.7
    max_tails: int = 2
    tail_flux_min: float = 0.1
    tail_flux_max: float = 0.3
    tail_length_min: float = 2.0
    tail_length_max: float = 5.0
    tail_width_min: float = 0.2
    tail_width_max: float = 0.45
    tail_turn_min: float = 40.0
    tail_turn_max: float = 150.0
    shear_min: float = 0.05
    shear_max: float = 0.3
    bend_min: float = 0.05
    bend_max: float = 0.3
    lopsided_min: float = 0.1
    lopsided_max: float = 0.5


@dataclass(frozen=True)
class ArmsConfig:
    """Logarithmic spiral arms: a modulation ``1 + A cos(m (phi - ln(r / hlr) / tan(pitch)))``.

    The modulation is applied to the disk in its own plane and tapered to 0 inside
    ``0.3 hlr`` (flux is conserved: the modulation averages to 0 around every ellipse).

    Attributes
    ----------
    count_weights : tuple of float
        Relative frequency of 1, 2, 3, 4, 5 arms.
    pitch_min, pitch_max : float
        Pitch angle, degrees, uniform (small = tightly wound).
    amplitude_min, amplitude_max : float
        Modulation amplitude A (<= 1), uniform.
    """

    count_weights: tuple[float, ...] = (0.05, 0.55, 0.2, 0.12, 0.08)
    pitch_min: float = 8.0
    pitch_max: float = 35.0
    amplitude_min: float = 0.3
    amplitude_max: float = 0.9


@dataclass(frozen=True)
class RingConfig:
    """Rings (in the disk plane, Gaussian profile in radius), bars and lenses.

    Attributes
    ----------
    radius_min, radius_max : float
        Ring radius, disk half-light radii.
    width_min, width_max : float
        Ring Gaussian sigma, disk half-light radii.
    flux_min, flux_max : float
        Ring flux as a fraction of the galaxy's flux (taken from the disk).
    bar_probability : float
        A ringed galaxy also has a bar with this probability.
    bar_length_min, bar_length_max : float
        Bar half-light radius along its major axis, disk half-light radii.
    bar_axis_ratio_min, bar_axis_ratio_max : float
        Bar axis ratio.
    bar_flux_min, bar_flux_max : float
        Bar flux fraction (taken from the disk).
    """

    radius_min: float = 1.1
    radius_max: float = 2.0
    width_min: float = 0.08
    width_max: float = 0.18
    flux_min: float = 0.2
    flux_max: float = 0.4
    bar_probability: float = 0.6
    bar_length_min: float = 0.5
    bar_length_max: float = 1.0
    bar_axis_ratio_min: float = 0.2
    bar_axis_ratio_max: float = 0.35
    bar_flux_min: float = 0.1
    bar_flux_max: float = 0.25


@dataclass(frozen=True)
class IrregularConfig:
    """Irregular / clumpy galaxies, edge-on disks with dust lanes, and image artifacts.

    Attributes
    ----------
    clumps_min, clumps_max : int
        Star-forming clumps (Gaussian knots) of an irregular galaxy.
    clump_flux_min, clump_flux_max : float
        Total clump flux fraction of an irregular (taken from its disk).
    clump_sigma : float
        Clump Gaussian sigma, disk half-light radii.
    clump_spread : float
        Clump positions ~ Normal(0, spread) disk half-light radii.
    lopsided_min, lopsided_max : float
        m = 1 asymmetry of an irregular's disk.
    edge_on_axis_ratio_max : float
        Edge-on disks have axis ratio Uniform(0.06, max).
    dust_lane_depth_max : float
        Edge-on dust lane: the disk is multiplied by ``1 - d exp(-z^2 / 2 w^2)``, d uniform in
        [0, max] (0 = no lane), ``w = 0.1 hlr``.
    star_flux_min, star_flux_max : float
        Artifact star (with four diffraction spikes) / galaxy flux, log-uniform.
    """

    clumps_min: int = 3
    clumps_max: int = 8
    clump_flux_min: float = 0.2
    clump_flux_max: float = 0.5
    clump_sigma: float = 0.12
    clump_spread: float = 0.8
    lopsided_min: float = 0.2
    lopsided_max: float = 0.6
    edge_on_axis_ratio_max: float = 0.18
    dust_lane_depth_max: float = 0.7
    star_flux_min: float = 0.5
    star_flux_max: float = 5.0


@dataclass(frozen=True)
class MergerSceneConfig:
    """Class mix of the merger task.

    Attributes
    ----------
    positive_fraction : float
        Fraction of merging pairs (label 1); DeepMerge 8120 / 15426 = 0.5264.
    projection_fraction : float
        Fraction of the negatives that are close chance projections (hard negatives); the rest
        are isolated galaxies.
    """

    positive_fraction: float = 0.5264
    projection_fraction: float = 0.4


@dataclass(frozen=True)
class FourClassSceneConfig:
    """Class mix of the four-class task.

    Attributes
    ----------
    class_weights : tuple of float
        Relative frequency of normal, ringed, merger, other.
    normal_arms_probability : float
        A normal disk has spiral arms with this probability.
    other_weights : tuple of float
        Relative frequency of the "other" sub-kinds: irregular, edge_on, artifact.
    """

    class_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    normal_arms_probability: float = 0.5
    other_weights: tuple[float, ...] = (0.4, 0.3, 0.3)


@dataclass(frozen=True)
class MorphologySceneConfig:
    """Morphology mix of the vote-fraction task (the *true* parameters behind the votes).

    Attributes
    ----------
    star_fraction : float
        Point sources (Galaxy Zoo "star or artifact").
    elliptical_fraction : float
        Smooth spheroids (of the non-stars); the rest are disks.
    elliptical_sersic_n_min, elliptical_sersic_n_max : float
        Sersic index of spheroids, uniform.
    elliptical_axis_ratio_min : float
        Spheroid axis ratio ~ Uniform(min, 1).
    disk_axis_ratio_min : float
        Disk axis ratio ~ Uniform(min, 1) (uniform in cos i, so edge-on disks occur).
    bar_probability : float
        Disks (not edge-on) with a bar.
    arms_probability : float
        Disks with spiral arms.
    odd_probability : float
        Galaxies with an odd feature.
    odd_weights : tuple of float
        Relative frequency of ring, lens, disturbed, irregular, other, merger, dust_lane (the
        Galaxy Zoo Q8 answers).
    """

    star_fraction: float = 0.03
    elliptical_fraction: float = 0.4
    elliptical_sersic_n_min: float = 2.5
    elliptical_sersic_n_max: float = 4.0
    elliptical_axis_ratio_min: float = 0.3
    disk_axis_ratio_min: float = 0.06
    bar_probability: float = 0.3
    arms_probability: float = 0.6
    odd_probability: float = 0.15
    odd_weights: tuple[float, ...] = (1.0, 0.5, 1.0, 1.0, 0.5, 1.0, 0.5)


@dataclass(frozen=True)
class VotesConfig:
    """Simulated volunteers that turn the true parameters into vote counts and fractions.

    See :mod:`clumpdet.sim.galaxies.scene` (section "Synthetic labels") for the explicit mapping.

    Attributes
    ----------
    volunteers_min, volunteers_max : int
        Galaxy Zoo volunteers per galaxy, uniform integer (GZ2: ~40).
    concentration : float
        Dirichlet concentration of the per-galaxy answer probabilities (smaller = noisier,
        over-dispersed votes, as in Zoobot's Dirichlet-multinomial model).
    snr_half : float
        S/N at which features are half visible: ``visibility = snr / (snr + snr_half)``.
    floor : float
        Minimum probability of every answer (careless clicks).
    edge_on_axis_ratio : float
        Disk axis ratio at which half the volunteers call a disk edge-on.
    edge_on_width : float
        Width of that transition in axis ratio.
    candels_classifiers : int
        Classifiers per galaxy for the CANDELS-like fractions (CANDELS: 3-5).
    """

    volunteers_min: int = 30
    volunteers_max: int = 50
    concentration: float = 30.0
    snr_half: float = 30.0
    floor: float = 0.02
    edge_on_axis_ratio: float = 0.3
    edge_on_width: float = 0.05
    candels_classifiers: int = 10


def _sdss_image(width: int, height: int) -> GalaxyImageConfig:
    return GalaxyImageConfig(
        width=width,
        height=height,
        pixel_scale=0.396,
        bands=SDSS_BANDS,
        unit="nanomaggy",
        surface_brightness=False,
        oversample=2,
    )


def _sdss_psf() -> GalaxyPSFConfig:
    return GalaxyPSFConfig(profile="moffat", moffat_beta=3.5, fwhm=_sdss(1.45, 1.4, 1.35))


def _sdss_noise() -> GalaxyNoiseConfig:
    return GalaxyNoiseConfig(
        enabled=True,
        sky_sigma=_sdss(0.016, 0.024, 0.038),
        poisson=True,
        gain=_sdss(900.0, 900.0, 680.0),
    )


def _sdss_population(
    flux_min: float, flux_max: float, hlr_min: float, hlr_max: float
) -> PopulationConfig:
    return PopulationConfig(
        flux_min=flux_min,
        flux_max=flux_max,
        hlr_min=hlr_min,
        hlr_max=hlr_max,
        axis_ratio_min=0.3,
        bulge_fraction_min=0.0,
        bulge_fraction_max=0.6,
        bulge_hlr_ratio_min=0.15,
        bulge_hlr_ratio_max=0.35,
        bulge_sersic_n=3.0,
        disk_sed=_sdss(0.7, 1.0, 1.25),
        bulge_sed=_sdss(0.45, 1.0, 1.45),
        young_sed=_sdss(0.95, 1.0, 1.05),
        sed_scatter=0.08,
        offset_sd=0.4,
    )


@dataclass(frozen=True)
class MergerSimConfig:
    """DeepMerge-like merger task (75 x 75 px, F814W / F356W / F160W, microjansky/arcsec^2)."""

    image: GalaxyImageConfig = field(default_factory=GalaxyImageConfig)
    psf: GalaxyPSFConfig = field(default_factory=GalaxyPSFConfig)
    noise: GalaxyNoiseConfig = field(default_factory=GalaxyNoiseConfig)
    population: PopulationConfig = field(default_factory=PopulationConfig)
    pair: MergerPairConfig = field(default_factory=MergerPairConfig)
    scene: MergerSceneConfig = field(default_factory=MergerSceneConfig)


@dataclass(frozen=True)
class FourClassSimConfig:
    """Four-class task: normal / ringed / merger / other, 128 x 128 SDSS-like g, r, i."""

    image: GalaxyImageConfig = field(default_factory=lambda: _sdss_image(128, 128))
    psf: GalaxyPSFConfig = field(default_factory=_sdss_psf)
    noise: GalaxyNoiseConfig = field(default_factory=_sdss_noise)
    population: PopulationConfig = field(
        default_factory=lambda: _sdss_population(100.0, 1000.0, 4.0, 10.0)
    )
    pair: MergerPairConfig = field(default_factory=MergerPairConfig)
    arms: ArmsConfig = field(default_factory=ArmsConfig)
    ring: RingConfig = field(default_factory=RingConfig)
    irregular: IrregularConfig = field(default_factory=IrregularConfig)
    scene: FourClassSceneConfig = field(default_factory=FourClassSceneConfig)


@dataclass(frozen=True)
class MorphologySimConfig:
    """Galaxy-Zoo-like vote fractions (37) and CANDELS-like fractions (5), 64 x 64 g, r, i."""

    image: GalaxyImageConfig = field(default_factory=lambda: _sdss_image(64, 64))
    psf: GalaxyPSFConfig = field(default_factory=_sdss_psf)
    noise: GalaxyNoiseConfig = field(default_factory=_sdss_noise)
    population: PopulationConfig = field(
        default_factory=lambda: _sdss_population(60.0, 600.0, 2.5, 6.0)
    )
    pair: MergerPairConfig = field(default_factory=MergerPairConfig)
    arms: ArmsConfig = field(default_factory=ArmsConfig)
    ring: RingConfig = field(default_factory=RingConfig)
    irregular: IrregularConfig = field(default_factory=IrregularConfig)
    scene: MorphologySceneConfig = field(default_factory=MorphologySceneConfig)
    votes: VotesConfig = field(default_factory=VotesConfig)


#: Config class of each task of :func:`clumpdet.sim.simulate_galaxies`.
TASK_CONFIGS: dict[str, type] = {
    "mergers": MergerSimConfig,
    "four_class": FourClassSimConfig,
    "morphology": MorphologySimConfig,
}


def task_config_class(task: str) -> type:
    """Config dataclass of ``task``; ConfigError naming the valid tasks otherwise."""
    if task not in TASK_CONFIGS:
        raise ConfigError(
            f"task: unknown galaxy simulation task {task!r}; choose: {tuple(TASK_CONFIGS)}"
        )
    return TASK_CONFIGS[task]


def task_of_config(cfg: Any) -> str:
    """Task name of a config instance."""
    for name, cls in TASK_CONFIGS.items():
        if isinstance(cfg, cls):
            return name
    raise ConfigError(
        f"config: expected one of {tuple(TASK_CONFIGS)} configs, got {type(cfg).__name__}"
    )


# --------------------------------------------------------------------------------------------
# validation

#: Fields that must be > 0 wherever they occur.
_POSITIVE = (
    "pixel_scale",
    "moffat_beta",
    "flux_min",
    "flux_max",
    "hlr_min",
    "hlr_max",
    "bulge_hlr_ratio_min",
    "bulge_hlr_ratio_max",
    "bulge_sersic_n",
    "separation_min",
    "flux_ratio_min",
    "tail_length_min",
    "tail_width_min",
    "radius_min",
    "width_min",
    "bar_length_min",
    "bar_axis_ratio_min",
    "clump_sigma",
    "clump_spread",
    "star_flux_min",
    "elliptical_sersic_n_min",
    "concentration",
    "snr_half",
    "edge_on_width",
    "pitch_min",
    "edge_on_axis_ratio_max",
)
#: Fields in [0, 1] besides names containing "probability" or "fraction".
_UNIT = (
    "floor",
    "amplitude_min",
    "amplitude_max",
    "lopsided_min",
    "lopsided_max",
    "dust_lane_depth_max",
    "shear_min",
    "shear_max",
    "tail_flux_min",
    "tail_flux_max",
    "clump_flux_min",
    "clump_flux_max",
    "flux_ratio_max",
    "axis_ratio_min",
    "disk_axis_ratio_min",
    "elliptical_axis_ratio_min",
    "edge_on_axis_ratio",
    "bar_axis_ratio_max",
)


def _image_bands(cfg: Any) -> tuple[str, ...]:
    return tuple(cfg.image.bands)


def _rules(task: str) -> list[Rule]:
    """Rules (by field name, in every group): finite numbers; ``x_min <= x_max``; sizes, fluxes
    and widths > 0; probabilities, fractions, amplitudes and axis ratios in [0, 1]; per-band
    mappings (``fwhm``, ``sky_sigma``, ``gain``, ``*_sed``) with a value for every band; weight
    tuples non-negative with a positive sum and the right length; counts >= 0."""
    every = [f"*.{name}" for name in _POSITIVE]
    rules = [
        *band_names("image.bands"),
        *at_least(16, "image.width", "image.height"),
        *in_range(1, 8, "image.oversample"),
        *psf_rules(),
        *finite("*"),
        *per_band("psf.fwhm", "noise.gain", "population.*_sed", bands=_image_bands),
        *per_band("noise.sky_sigma", bands=_image_bands, strict=False),
        *weights("*.count_weights", length=5),
        *weights("*.class_weights", length=4),
        *weights("*.other_weights", length=3),
        *weights("*.odd_weights", length=7),
        *positive(*every),
        *fraction(*(f"*.{name}" for name in _UNIT), "*probability*", "*fraction*"),
        *ordered("*_min"),
        *rule(
            "*",
            ok=lambda v, _: not isinstance(v, int) or isinstance(v, bool) or v >= 0,
            problem=lambda v: f"must be >= 0, got {v!r}",
        ),
        *at_least(1, "pair.max_tails"),
    ]
    if task in ("four_class", "morphology"):
        rules += [
            *at_least(1, "irregular.clumps_min"),
            *rule(
                "arms.amplitude_max",
                ok=lambda v, _: v <= 1.0,
                problem="must be <= 1 (non-negative light)",
            ),
        ]
    if task == "morphology":
        rules += at_least(1, "votes.volunteers_min", "votes.candels_classifiers")
    return rules


def validate_galaxy_sim_config(cfg: Any, *, where: str = "config") -> Any:
    """Check ranges and consistency of a galaxy-simulation config (the rules of
    :mod:`clumpdet.sim.validate`, listed in ``_rules``).

    Returns
    -------
    The config itself, for chaining.

    Raises
    ------
    ConfigError
        Naming the offending key, e.g. ``pair.separation_min``.
    """
    return validate(cfg, _rules(task_of_config(cfg)), where=where)


def load_galaxy_sim_config(
    task: str,
    path: str | Path | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
) -> Any:
    """Load and validate the simulation config of a galaxy-classification task.

    Parameters
    ----------
    task : {"mergers", "four_class", "morphology"}
        Which simulator.
    path : str or Path, optional
        YAML file (``configs/sim/<task>.yaml``; may use ``_base_``). A ``config.yaml`` written by
        :func:`clumpdet.sim.simulate_galaxies` can be passed back: its ``_run_`` block is ignored
        (but its task must match). Default: the built-in defaults of the task.
    overrides : iterable of "key=value" strings, or a nested mapping
        Applied last, e.g. ``["noise.enabled=false"]`` for DeepMerge's "pristine" images.

    Returns
    -------
    MergerSimConfig, FourClassSimConfig or MorphologySimConfig

    Raises
    ------
    ConfigError
        On an unknown task, a missing file, unknown keys, wrong types or invalid ranges.
    """
    cls = task_config_class(task)
    run = (read_yaml(path) if path is not None else {}).get(RUN_KEY)
    if isinstance(run, Mapping) and run.get("kind", task) != task:
        raise ConfigError(f"{path}: written for task {run.get('kind')!r}, not {task!r}")
    return load_sim_yaml(cls, path, overrides, _rules(task))


def galaxy_config_fields(task: str) -> list[str]:
    """Dotted names of every leaf field of a task's config (for docs and tests)."""
    cls = task_config_class(task)
    default = cls()
    return [
        f"{g.name}.{f.name}"
        for g in dataclasses.fields(cls)
        for f in dataclasses.fields(getattr(default, g.name))
    ]
