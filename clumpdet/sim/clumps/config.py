"""Configuration of the clump simulator: nested dataclasses, YAML loading and validation.

Every physical knob of :func:`clumpdet.sim.simulate_clump_scene` is a field below with a documented
default. ``configs/sim/clumps_sdss.yaml`` spells out the full default (a test checks that loading it
gives exactly ``ClumpSimConfig()``); experiment files override a few keys via ``_base_``.

Units: angles and sizes in arcsec unless a name says ``px``; fluxes in nanomaggies
(22.5 mag = 1 nanomaggy); surface brightness in mag/arcsec^2; colours in magnitudes. Per-band
numbers are given for the SDSS g, r and i bands; r is the reference (detection) band in which flux
ratios, S/N and the box rule are defined.
"""

from __future__ import annotations

import dataclasses
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
    in_range,
    load_sim_yaml,
    non_negative,
    ordered,
    per_band,
    positive,
    psf_rules,
    rule,
    validate,
    weights,
)

#: Bands the simulator models (any non-empty subset, in any order, may be written out).
SIM_BANDS: tuple[str, ...] = ("g", "r", "i")

#: Real Clump Scout histogram: number of clumpy galaxies with 1, 2, ..., 9 boxes (Clump Scout
#: statistics, Adams et al. 2022; Popp et al. 2024).
CLUMP_SCOUT_COUNTS: tuple[float, ...] = (5175, 8329, 3573, 1602, 710, 376, 137, 47, 7)


@dataclass(frozen=True)
class ImageConfig:
    """Frame geometry and bands.

    Attributes
    ----------
    width, height : int
        Image size in pixels (default 200 x 200, the Popp et al. central crop).
    pixel_scale : float
        Arcsec per pixel (SDSS 0.396).
    bands : tuple of str
        Bands written to the image cube, a subset of ``("g", "r", "i")``. All three are always
        modelled internally, so the truth does not depend on this choice.
    ra_range, dec_range : (float, float)
        Degrees; each image's WCS centre is drawn uniformly inside (SDSS-like footprint).
    """

    width: int = 200
    height: int = 200
    pixel_scale: float = 0.396
    bands: tuple[str, ...] = SIM_BANDS
    ra_range: tuple[float, float] = (120.0, 240.0)
    dec_range: tuple[float, float] = (0.0, 60.0)


@dataclass(frozen=True)
class PSFConfig(PSFShape):
    """Point-spread function, one per image (mildly chromatic).

    Attributes
    ----------
    profile : {"moffat", "kolmogorov", "gaussian"}
        PSF shape.
    moffat_beta : float
        Moffat index (SDSS PSFs are close to beta ~ 3.5 in the core).
    fwhm_mean, fwhm_sd, fwhm_min, fwhm_max : float
        r-band FWHM in arcsec ~ Normal(mean, sd) clipped to [min, max] (SDSS seeing 1.0-2.0",
        typical 1.4").
    band_factor : {band: float}
        FWHM of band b = r-band FWHM * factor[b] (seeing ~ lambda^-0.2: g 1.05, i 0.97; r is
        the reference, 1).
    """

    fwhm_mean: float = 1.4
    fwhm_sd: float = 0.15
    fwhm_min: float = 1.0
    fwhm_max: float = 2.0
    band_factor: PerBand = field(default_factory=lambda: {"g": 1.05, "r": 1.0, "i": 0.97})


@dataclass(frozen=True)
class NoiseConfig:
    """Sky-subtracted SDSS-like noise.

    The per-pixel variance in band b (nanomaggy^2) is
    ``(sky_b + poisson * model_b) / gain[b] + (read_noise / gain[b])^2`` with
    ``sky_b = 10**(-0.4 * (sky_sb[b] - 22.5)) * pixel_scale**2`` nanomaggy per pixel; the noise is
    drawn as a Gaussian with that variance (sky counts are hundreds of electrons per pixel, where
    the Gaussian limit of the Poisson law is exact to well under a percent). With the defaults the
    sky-only sigma is about 0.016 / 0.024 / 0.038 nanomaggy per pixel in g / r / i.

    Attributes
    ----------
    sky_sb : {band: float}
        Dark-time SDSS sky surface brightness per band, mag/arcsec^2.
    gain : {band: float}
        Electrons per nanomaggy per band (detector gain x counts per nanomaggy of a ~54 s SDSS
        exposure).
    read_noise : float
        Read noise plus dark current, electrons per pixel.
    poisson : bool
        Add the shot noise of the sources (host and objects) to the sky noise.
    """

    sky_sb: PerBand = field(default_factory=lambda: {"g": 22.1, "r": 21.2, "i": 20.5})
    gain: PerBand = field(default_factory=lambda: {"g": 900.0, "r": 900.0, "i": 680.0})
    read_noise: float = 5.0
    poisson: bool = True


@dataclass(frozen=True)
class HostConfig:
    """Host galaxy: inclined exponential disk plus a de Vaucouleurs bulge.

    Sizes are set so that the clumps' distances from the frame centre follow the real Clump Scout
    distribution (25/39/52/67/98 px percentiles), which makes the hosts fill the 200 px frame.
    Brightness follows from size and surface brightness,
    ``mag_r = mu_e - 2.5 log10(2 pi hlr^2)`` (r ~ 13.5-16.5 with the defaults), which keeps the
    disks' surface brightness, and hence their look against the SDSS sky, realistic; fixing the
    magnitude instead would make such large disks unrealistically faint.

    Attributes
    ----------
    hlr_median, hlr_sigma, hlr_min, hlr_max : float
        Disk half-light radius (arcsec, face-on) ~ LogNormal(ln median, sigma), clipped to
        [min, max].
    mu_e_min, mu_e_max : float
        Mean r-band surface brightness of the whole host inside the disk half-light radius
        (defined as if half the light were inside it), mag/arcsec^2, uniform.
    axis_ratio_min : float
        Disk axis ratio q = cos(inclination) ~ Uniform(min, 1) (thin disk; Clump Scout has no
        edge-on galaxies).
    bulge_fraction_min, bulge_fraction_max : float
        r-band bulge-to-total flux ratio, uniform (clumpy galaxies are disk dominated).
    bulge_hlr_ratio_min, bulge_hlr_ratio_max : float
        Bulge half-light radius / disk half-light radius, uniform.
    bulge_axis_ratio_min : float
        Bulge axis ratio ~ Uniform(min, 1); the bulge shares the disk position angle.
    bulge_trunc : float
        The de Vaucouleurs profile is truncated at this many bulge half-light radii.
    offset_sd : float
        Host centre offset from the frame centre, arcsec (per axis, Gaussian).
    disk_gr_min, disk_gr_max, disk_ri_min, disk_ri_max : float
        Disk colours g-r and r-i, uniform (bluish star-forming disks).
    bulge_gr_min, bulge_gr_max, bulge_ri_min, bulge_ri_max : float
        Bulge colours, uniform (red old populations).
    """

    hlr_median: float = 18.0
    hlr_sigma: float = 0.22
    hlr_min: float = 8.0
    hlr_max: float = 35.0
    mu_e_min: float = 22.0
    mu_e_max: float = 24.0
    axis_ratio_min: float = 0.4
    bulge_fraction_min: float = 0.0
    bulge_fraction_max: float = 0.3
    bulge_hlr_ratio_min: float = 0.1
    bulge_hlr_ratio_max: float = 0.25
    bulge_axis_ratio_min: float = 0.7
    bulge_trunc: float = 8.0
    offset_sd: float = 0.4
    disk_gr_min: float = 0.3
    disk_gr_max: float = 0.6
    disk_ri_min: float = 0.15
    disk_ri_max: float = 0.3
    bulge_gr_min: float = 0.7
    bulge_gr_max: float = 0.9
    bulge_ri_min: float = 0.35
    bulge_ri_max: float = 0.45


@dataclass(frozen=True)
class ClumpsConfig:
    """Giant star-forming clumps (class 1, kind ``"clump"``).

    Attributes
    ----------
    flux_ratio_min, flux_ratio_max : float
        Clump / host total flux in r, log-uniform.
    fwhm_min, fwhm_max : float
        Intrinsic (pre-PSF) Gaussian FWHM in arcsec, uniform; 0 is a point source.
    gr_min, gr_max, ri_min, ri_max : float
        Colours g-r and r-i, uniform (young, blue; H-alpha in r can make r-i negative).
    r_min, r_max : float
        Clumps sit in the disk plane at radii following the exponential disk light, truncated to
        [r_min, r_max] disk half-light radii (no clumps in the bulge region, none off the disk),
        then are projected with the host's inclination and position angle.
    """

    flux_ratio_min: float = 0.01
    flux_ratio_max: float = 0.15
    fwhm_min: float = 0.0
    fwhm_max: float = 3.0
    gr_min: float = 0.0
    gr_max: float = 0.3
    ri_min: float = -0.1
    ri_max: float = 0.2
    r_min: float = 0.75
    r_max: float = 3.0


@dataclass(frozen=True)
class OddClumpsConfig:
    """Odd clumps (class 2): foreground stars and compact background galaxies on the host.

    They are placed like clumps (projected onto the disk) and boxed by the same rule.

    Attributes
    ----------
    star_fraction : float
        Fraction of odd clumps that are stars (the rest are background galaxies).
    star_flux_ratio_min, star_flux_ratio_max : float
        Star / host r flux, log-uniform.
    star_gr_min, star_gr_max : float
        Star g-r, uniform along the stellar locus (often red).
    star_ri_slope, star_ri_offset, star_ri_scatter : float
        Stellar locus ``r-i = slope * (g-r) + offset + Normal(0, scatter)``.
    galaxy_flux_ratio_min, galaxy_flux_ratio_max : float
        Background galaxy / host r flux, log-uniform.
    galaxy_hlr_min, galaxy_hlr_max : float
        Background galaxy half-light radius, arcsec, uniform.
    galaxy_sersic_n : tuple of float
        Sersic indices to choose from (uniformly; a short list keeps GalSim's tables cached).
    galaxy_axis_ratio_min : float
        Axis ratio ~ Uniform(min, 1), random position angle.
    galaxy_gr_min, galaxy_gr_max, galaxy_ri_min, galaxy_ri_max : float
        Colours, uniform (redshifted, redder than the host's disk).
    """

    star_fraction: float = 0.5
    star_flux_ratio_min: float = 0.01
    star_flux_ratio_max: float = 0.2
    star_gr_min: float = 0.3
    star_gr_max: float = 1.5
    star_ri_slope: float = 0.45
    star_ri_offset: float = -0.05
    star_ri_scatter: float = 0.05
    galaxy_flux_ratio_min: float = 0.01
    galaxy_flux_ratio_max: float = 0.1
    galaxy_hlr_min: float = 0.2
    galaxy_hlr_max: float = 1.2
    galaxy_sersic_n: tuple[float, ...] = (1.0, 2.0)
    galaxy_axis_ratio_min: float = 0.4
    galaxy_gr_min: float = 0.8
    galaxy_gr_max: float = 1.5
    galaxy_ri_min: float = 0.35
    galaxy_ri_max: float = 0.7


@dataclass(frozen=True)
class BoxConfig:
    """Truth-box rule, mimicking volunteer-drawn Clump Scout boxes.

    A square box centred on the object's true centroid with side
    ``clip(fwhm_multiple * FWHM_eff * s, min_side, max_side)`` pixels, where
    ``FWHM_eff = sqrt(FWHM_psf,r^2 + (2 hlr_intrinsic)^2) / pixel_scale`` (``2 hlr`` is the FWHM of
    a Gaussian clump) and ``s ~ LogNormal(0, scatter)`` is the volunteer scatter. Boxes are then
    clipped to the image.

    Attributes
    ----------
    fwhm_multiple : float
        k, box side in units of FWHM_eff before scatter.
    scatter : float
        sigma of ln s. Kept small (0.12) so that the truth box is predictable from the image:
        with the volunteer-like 0.31 even a perfectly centred median box reaches IoU >= 0.5 only
        ~75% of the time, which caps any detector's IoU-matched completeness there. The spread
        of real box sides comes instead from clump sizes (up to 3" FWHM) and seeing.
    min_side, max_side : float
        Clip range of the side, pixels.
    """

    fwhm_multiple: float = 3.4
    scatter: float = 0.12
    min_side: float = 6.0
    max_side: float = 40.0


@dataclass(frozen=True)
class SceneConfig:
    """What goes into one image.

    Attributes
    ----------
    empty_fraction : float
        Fraction of images with a host only (no clumps, no odd clumps). Real surveys have ~87-97%
        clump-free galaxies (Adams et al. 2022: 12.7% / 3.2% clumpy with the 3% / 8% cuts); the
        default 0.3 is a training mix. Raise it to measure purity on realistic populations.
    count_weights : tuple of float
        Relative frequency of galaxies with 1, 2, ... boxes (clumps plus odd clumps); the default is
        the real Clump Scout histogram.
    odd_fraction : float
        Probability that a box is an odd clump (class 2); real: 27.6%.
    min_separation : float
        Minimum distance between object centres, in units of the r-band PSF FWHM.
    max_tries : int
        Position draws per object before it is dropped (centre outside the frame or too close).
    """

    empty_fraction: float = 0.3
    count_weights: tuple[float, ...] = CLUMP_SCOUT_COUNTS
    odd_fraction: float = 0.276
    min_separation: float = 2.0
    max_tries: int = 100


@dataclass(frozen=True)
class ClumpSimConfig:
    """Full configuration of the clumpy-galaxy simulator (see the group classes for every knob)."""

    image: ImageConfig = field(default_factory=ImageConfig)
    psf: PSFConfig = field(default_factory=PSFConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    host: HostConfig = field(default_factory=HostConfig)
    clumps: ClumpsConfig = field(default_factory=ClumpsConfig)
    odd_clumps: OddClumpsConfig = field(default_factory=OddClumpsConfig)
    box: BoxConfig = field(default_factory=BoxConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)


def _rules() -> list[Rule]:
    return [
        *at_least(8, "image.width", "image.height"),
        *positive("image.pixel_scale"),
        *band_names("image.bands", SIM_BANDS),
        *rule(
            "image.ra_range",
            ok=lambda r, _: 0.0 <= r[0] <= r[1] <= 360.0,
            problem=lambda r: f"must be an ordered range inside [0, 360] deg, got {list(r)}",
        ),
        *rule(
            "image.dec_range",
            ok=lambda r, _: -90.0 <= r[0] <= r[1] <= 90.0,
            problem=lambda r: f"must be an ordered range inside [-90, 90] deg, got {list(r)}",
        ),
        *psf_rules(),
        *positive("psf.fwhm_mean", "psf.fwhm_min", "psf.fwhm_max"),
        *non_negative("psf.fwhm_sd"),
        *per_band("psf.band_factor", bands=SIM_BANDS),
        *rule(
            "psf.band_factor",
            ok=lambda f, _: f["r"] == 1.0,
            problem="the r band is the reference: its factor must be 1",
        ),
        *per_band("noise.sky_sb", bands=SIM_BANDS, minimum=-math.inf),
        *per_band("noise.gain", bands=SIM_BANDS),
        *non_negative("noise.read_noise"),
        *positive("host.hlr_median", "host.hlr_min", "host.hlr_max", "host.bulge_trunc"),
        *positive("host.bulge_hlr_ratio_min", "host.bulge_hlr_ratio_max"),
        *non_negative("host.hlr_sigma", "host.offset_sd"),
        *fraction("host.bulge_fraction_min", "host.bulge_fraction_max"),
        *in_range(0.05, 1.0, "host.axis_ratio_min", "host.bulge_axis_ratio_min"),
        *positive("clumps.flux_ratio_min", "clumps.flux_ratio_max", "clumps.r_max"),
        *non_negative("clumps.fwhm_min", "clumps.fwhm_max", "clumps.r_min"),
        *fraction("odd_clumps.star_fraction"),
        *positive("odd_clumps.star_flux_ratio_*", "odd_clumps.galaxy_flux_ratio_*"),
        *positive("odd_clumps.galaxy_hlr_min", "odd_clumps.galaxy_hlr_max"),
        *non_negative("odd_clumps.star_ri_scatter"),
        *rule(
            "odd_clumps.galaxy_sersic_n",
            ok=lambda ns, _: len(ns) > 0 and all(0.3 <= n <= 6.2 for n in ns),
            problem=lambda ns: f"needs Sersic indices in [0.3, 6.2], got {list(ns)}",
        ),
        *in_range(0.05, 1.0, "odd_clumps.galaxy_axis_ratio_min"),
        *positive("box.fwhm_multiple", "box.min_side", "box.max_side"),
        *non_negative("box.scatter"),
        *fraction("scene.empty_fraction", "scene.odd_fraction"),
        *non_negative("scene.min_separation"),
        *weights("scene.count_weights"),
        *at_least(1, "scene.max_tries"),
        *ordered("*_min", "*.min_*", "*_min_*"),
    ]


def validate_sim_config(cfg: ClumpSimConfig, *, where: str = "config") -> ClumpSimConfig:
    """Check ranges and consistency of a :class:`ClumpSimConfig` (the rules of
    :mod:`clumpdet.sim.validate`); return ``cfg``.

    Raises
    ------
    ConfigError
        Naming the offending key, e.g. ``clumps.flux_ratio_min``.
    """
    if not isinstance(cfg, ClumpSimConfig):
        raise ConfigError(f"{where}: expected a ClumpSimConfig, got {type(cfg).__name__}")
    return validate(cfg, _rules(), where=where)


def load_sim_config(
    path: str | Path | None = None, overrides: Iterable[str] | Mapping[str, Any] = ()
) -> ClumpSimConfig:
    """Load and validate a :class:`ClumpSimConfig`.

    Parameters
    ----------
    path : str or Path, optional
        YAML file (``configs/sim/*.yaml``; may use ``_base_``). A ``config.yaml`` written next to a
        simulation can be passed back: its ``_run_`` block (seed, n) is ignored. Default: the
        built-in defaults (identical to ``configs/sim/clumps_sdss.yaml``).
    overrides : iterable of "key=value" strings, or a nested mapping
        Applied last, e.g. ``["noise.sky_sb.r=21.5", "scene.empty_fraction=0.9"]``.

    Raises
    ------
    ConfigError
        On a missing file, unknown keys, wrong types or invalid ranges (the message names the key).
    """
    return load_sim_yaml(ClumpSimConfig, path, overrides, _rules())


def sim_config_fields() -> list[str]:
    """Dotted names of every leaf field of :class:`ClumpSimConfig` (for docs and tests)."""
    out = []
    for group in dataclasses.fields(ClumpSimConfig):
        for f in dataclasses.fields(group.default_factory()):  # type: ignore[misc]
            out.append(f"{group.name}.{f.name}")
    return out
