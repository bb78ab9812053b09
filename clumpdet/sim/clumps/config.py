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
        Moffat index: 2.5, the extended wings of ground-based seeing (Racine 1996; the SDSS
        PSF's power-law wings), which make the fuzzy look of SDSS colour cutouts. The smooth set
        (``clumps_smooth.yaml``) keeps 3.5.
    fwhm_mean, fwhm_sd, fwhm_min, fwhm_max : float
        r-band FWHM in arcsec ~ Normal(mean, sd) clipped to [min, max] (SDSS seeing 1.0-2.0",
        typical 1.4").
    band_factor : {band: float}
        FWHM of band b = r-band FWHM * factor[b] (seeing ~ lambda^-0.2: g 1.05, i 0.97; r is
        the reference, 1).
    """

    moffat_beta: float = 2.5
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
        then are projected with the host's inclination and position angle. In the realistic
        population (``population.model: realistic``) the unit is the host's r-band half-light
        radius R50 and positions are drawn from the host's own disk light (arms, bar, knots
        included) weighted by ``(r / R50) ** radial_weight``.
    radial_weight : float
        Realistic population only: the outward weighting of the disk light above; 2.5 puts the
        median clump near 1 R90, as the Clump Scout box distances.
    """

    flux_ratio_min: float = 0.0002
    flux_ratio_max: float = 0.12
    fwhm_min: float = 0.0
    fwhm_max: float = 2.0
    gr_min: float = -0.1
    gr_max: float = 0.5
    ri_min: float = -0.25
    ri_max: float = 0.3
    r_min: float = 0.3
    r_max: float = 5.5
    radial_weight: float = 3.5


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
    clump_like_fraction : float
        Realistic population only: fraction of odd clumps that are clump-like knots (clump
        sizes and colours) that volunteers flagged as odd; with stars and background galaxies of
        overlapping colours, class 2 does not separate from class 1 on colour alone.
    """

    star_fraction: float = 0.5
    star_flux_ratio_min: float = 0.001
    star_flux_ratio_max: float = 0.2
    star_gr_min: float = 0.2
    star_gr_max: float = 1.5
    star_ri_slope: float = 0.45
    star_ri_offset: float = -0.05
    star_ri_scatter: float = 0.05
    galaxy_flux_ratio_min: float = 0.001
    galaxy_flux_ratio_max: float = 0.1
    galaxy_hlr_min: float = 0.2
    galaxy_hlr_max: float = 1.2
    galaxy_sersic_n: tuple[float, ...] = (1.0, 2.0)
    galaxy_axis_ratio_min: float = 0.4
    galaxy_gr_min: float = 0.2
    galaxy_gr_max: float = 1.5
    galaxy_ri_min: float = 0.05
    galaxy_ri_max: float = 0.7
    clump_like_fraction: float = 0.3


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
    min_separation: float = 1.0
    max_tries: int = 100


#: Host morphological types of the realistic population.
HOST_TYPES: tuple[str, ...] = ("elliptical", "lenticular", "spiral", "edge_on", "irregular", "pair")


@dataclass(frozen=True)
class PopulationConfig:
    """Host population (``model: realistic``, the default) or the legacy smooth disk (``smooth``).

    The realistic population is an SDSS Galaxy-Zoo-2-like sample (r < 17.0): ellipticals,
    lenticulars, face-on to inclined spirals (arms, some barred), edge-on disks with dust lanes,
    irregulars and interacting pairs, with unlabelled HII-region knots (GalSim ``RandomKnots``
    positions) in the star-forming disks. Only some hosts carry labelled clumps (probability per
    type; ~12 % overall as in Adams et al. 2022). ``smooth`` ignores this group and every other
    group's realistic-only key and reproduces the previous simulator byte for byte
    (``configs/sim/clumps_smooth.yaml``).

    Attributes
    ----------
    model : {"realistic", "smooth"}
        Host model.
    type_weights : {type: float}
        Relative frequency of each host type (``HOST_TYPES``).
    clumpy_probability : {type: float}
        Probability that a host of the type carries labelled objects (clumps / odd clumps), for
        a host of Petrosian R90 = ``clumpy_r90_ref``.
    clumpy_r90_ref, clumpy_r90_power : float
        The probability scales as ``min(1, p_type * (R90 / ref) ** power)``: clumps are resolved
        (and were marked) mostly in large galaxies.
    mag_min, mag_max, mag_slope : float
        Host total r magnitude, ``p(m) ~ 10 ** (mag_slope * m)`` on [min, max] (counts rising to
        the GZ2 main-sample limit r = 17.0, Willett et al. 2013).
    r50_ref, r50_mag_slope, r50_scatter, r50_min, r50_max : float
        r-band half-light radius, arcsec: ``log10 R50 = log10(r50_ref) + r50_mag_slope (m - 16)``
        plus Normal(0, r50_scatter) dex, clipped.
    spheroid_size_factor : float
        Ellipticals are this much more compact at fixed magnitude.
    offset_sd : float
        Host centre offset from the frame centre, arcsec per axis.
    disk_q_min : float
        Disk axis ratio of spirals / lenticulars / irregulars ~ Uniform(min, 1).
    edge_on_q_min, edge_on_q_max : float
        Axis ratio of edge-on disks.
    spiral_bulge_max : float
        Spiral bulge-to-total ~ Uniform(0, max).
    lenticular_bulge_min, lenticular_bulge_max : float
        Lenticular bulge-to-total, uniform.
    arm_count_weights : tuple of float
        Relative frequency of 1, 2, 3, 4 arms.
    arm_pitch_min, arm_pitch_max : float
        Pitch angle, degrees.
    arm_amplitude_min, arm_amplitude_max : float
        Arm contrast ``A`` in ``1 + A cos(m (phi - ln r / tan p))``.
    bar_probability : float
        Fraction of spirals with a bar.
    lopsided_max : float
        m = 1 lopsidedness of spiral, lenticular and edge-on disks, amplitude ~ Uniform(0, max)
        in ``1 + a cos(phi - phi0)`` (about a third of disks have a > 0.1: Zaritsky & Rix 1997;
        Bournaud et al. 2005); irregulars keep their own 0.3-0.8.
    knot_fraction_min, knot_fraction_max : float
        Fraction of a star-forming disk's light in unlabelled knots (irregulars: twice this).
    knot_count_min, knot_count_max : int
        Number of knots per disk.
    knot_sigma : float
        Intrinsic Gaussian sigma of a knot, arcsec.
    dust_lane_min, dust_lane_max : float
        Dust-lane depth of edge-on disks (fraction of light absorbed at the mid-plane).
    pair_separation_min, pair_separation_max : float
        Separation of an interacting pair, in the primary's R50.
    pair_flux_ratio_min, pair_flux_ratio_max : float
        Companion / primary flux.
    pair_shear_max : float
        Tidal shear of both members ~ Uniform(0, max).
    red_gr, red_ri, disk_gr, disk_ri, young_gr, young_ri : float
        Mean colours of old (spheroid / bulge), disk and young (irregular / knot) light.
    colour_scatter : float
        Gaussian scatter of every host colour, magnitudes.
    """

    model: str = "realistic"
    type_weights: PerBand = field(
        default_factory=lambda: {
            "elliptical": 0.24,
            "lenticular": 0.15,
            "spiral": 0.39,
            "edge_on": 0.09,
            "irregular": 0.07,
            "pair": 0.06,
        }
    )
    clumpy_probability: PerBand = field(
        default_factory=lambda: {
            "elliptical": 0.01,
            "lenticular": 0.035,
            "spiral": 0.14,
            "edge_on": 0.05,
            "irregular": 0.36,
            "pair": 0.27,
        }
    )
    clumpy_r90_ref: float = 7.5
    clumpy_r90_power: float = 2.0
    mag_min: float = 12.5
    mag_max: float = 17.0
    mag_slope: float = 0.25
    r50_ref: float = 3.3
    r50_mag_slope: float = -0.17
    r50_scatter: float = 0.14
    r50_min: float = 1.5
    r50_max: float = 20.0
    spheroid_size_factor: float = 0.75
    offset_sd: float = 0.4
    disk_q_min: float = 0.2
    edge_on_q_min: float = 0.08
    edge_on_q_max: float = 0.22
    spiral_bulge_max: float = 0.4
    lenticular_bulge_min: float = 0.3
    lenticular_bulge_max: float = 0.7
    arm_count_weights: tuple[float, ...] = (0.05, 0.7, 0.15, 0.1)
    arm_pitch_min: float = 10.0
    arm_pitch_max: float = 30.0
    arm_amplitude_min: float = 0.3
    arm_amplitude_max: float = 1.0
    bar_probability: float = 0.3
    lopsided_max: float = 0.5
    knot_fraction_min: float = 0.1
    knot_fraction_max: float = 0.4
    knot_count_min: int = 10
    knot_count_max: int = 60
    knot_sigma: float = 1.0
    dust_lane_min: float = 0.5
    dust_lane_max: float = 0.9
    pair_separation_min: float = 1.2
    pair_separation_max: float = 3.5
    pair_flux_ratio_min: float = 0.2
    pair_flux_ratio_max: float = 1.0
    pair_shear_max: float = 0.3
    red_gr: float = 0.78
    red_ri: float = 0.4
    disk_gr: float = 0.5
    disk_ri: float = 0.25
    young_gr: float = 0.3
    young_ri: float = 0.1
    colour_scatter: float = 0.1


@dataclass(frozen=True)
class NeighboursConfig:
    """Unlabelled field sources over the whole canvas (realistic population only).

    Galaxies and stars follow Poisson number counts ``dN/dm ~ 10 ** (slope * m)`` between the
    magnitude limits with the given surface densities (per arcmin^2, all magnitudes); they are
    placed uniformly (some cut by the frame edge), never within ``exclusion`` R50 of the host
    centre. They carry no truth box.

    Attributes
    ----------
    galaxy_density, star_density : float
        Sources per arcmin^2 brighter than the faint limit (SDSS: a few galaxies and ~1 star).
    galaxy_mag_min, galaxy_mag_max, galaxy_mag_slope : float
        r magnitudes of field galaxies.
    star_mag_min, star_mag_max, star_mag_slope : float
        r magnitudes of field stars.
    galaxy_gr_min, galaxy_gr_max : float
        Field-galaxy g-r, uniform (r-i = 0.45 (g-r) + N(0, 0.05)).
    star_gr_min, star_gr_max : float
        Star g-r, uniform on the stellar locus.
    exclusion : float
        No neighbour centre within this many host R50 of the host centre.
    """

    galaxy_density: float = 9.0
    star_density: float = 2.5
    galaxy_mag_min: float = 15.5
    galaxy_mag_max: float = 22.5
    galaxy_mag_slope: float = 0.4
    star_mag_min: float = 14.0
    star_mag_max: float = 22.5
    star_mag_slope: float = 0.15
    galaxy_gr_min: float = 0.3
    galaxy_gr_max: float = 1.6
    star_gr_min: float = 0.2
    star_gr_max: float = 1.6
    exclusion: float = 1.0


@dataclass(frozen=True)
class RenderConfig:
    """Optional 8-bit colour rendering (:mod:`clumpdet.sim.colour`) written to ``DIR/colour/``.

    Attributes
    ----------
    colour : bool
        Also write each scene as a colour composite (``configs/sim/clumps_sdss_colour.yaml``).
    format : {"jpg", "png"}
        File format (JPEG as the GZ2 / SDSS cutouts).
    size : int
        Side of the colour image, pixels (GZ2: 424).
    frame_r90 : float
        Arcsec per colour pixel in units of the host's Petrosian R90 (GZ2: 0.02).
    quality : int
        JPEG quality (the real GZ2 files use the quality-75 tables).
    scales : {band: float}
        Per-band multipliers before the asinh stretch (red = i, green = r, blue = g).
    stretch, q, minimum : float
        ``make_lupton_rgb`` parameters.
    smooth : float
        Gaussian sigma, in native (canvas) pixels, of the resampling kernel from the survey grid
        to the colour frame (0: plain bilinear). The real GZ2 sky noise is correlated over
        longer lags than bilinear resampling gives and is ~2-3x weaker relative to the galaxy
        light; a smoothing resampler reproduces both (:func:`clumpdet.sim.colour.resample`).
    native_quality : int
        0: stretch the resampled cube (plain). 1..100: first render the canvas as the survey's
        own colour JPEG at its native pixel scale with this quality, then resample that picture
        into the frame (:func:`clumpdet.sim.colour.native_jpeg`), as SDSS cutouts were made.
    canvas_max : int
        Largest simulated canvas side, pixels; hosts whose GZ2 frame is larger get sky-noise
        fill beyond the canvas.
    """

    colour: bool = False
    format: str = "jpg"
    size: int = 424
    frame_r90: float = 0.02
    quality: int = 75
    scales: PerBand = field(default_factory=lambda: {"g": 2.0, "r": 1.45, "i": 1.31})
    stretch: float = 0.8
    q: float = 10.0
    minimum: float = 0.0075
    smooth: float = 0.3
    native_quality: int = 75
    canvas_max: int = 640


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
    population: PopulationConfig = field(default_factory=PopulationConfig)
    neighbours: NeighboursConfig = field(default_factory=NeighboursConfig)
    render: RenderConfig = field(default_factory=RenderConfig)


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
        *rule(
            "population.model",
            ok=lambda m, _: m in ("realistic", "smooth"),
            problem=lambda m: f"must be 'realistic' or 'smooth', got {m!r}",
        ),
        *rule(
            "population.type_weights",
            ok=lambda w, _: (
                set(w) == set(HOST_TYPES)
                and all(v >= 0 for v in w.values())
                and sum(w.values()) > 0
            ),
            problem=f"needs non-negative weights for exactly {list(HOST_TYPES)}",
        ),
        *rule(
            "population.clumpy_probability",
            ok=lambda w, _: set(w) == set(HOST_TYPES) and all(0 <= v <= 1 for v in w.values()),
            problem=f"needs probabilities in [0, 1] for exactly {list(HOST_TYPES)}",
        ),
        *positive("population.r50_ref", "population.r50_min", "population.knot_sigma"),
        *positive("population.clumpy_r90_ref"),
        *non_negative("population.clumpy_r90_power"),
        *non_negative("population.r50_scatter", "population.offset_sd"),
        *in_range(0.02, 1.0, "population.disk_q_min", "population.edge_on_q_*"),
        *fraction("population.bar_probability", "population.knot_fraction_*"),
        *fraction("population.dust_lane_*", "population.spiral_bulge_max"),
        *fraction("population.lenticular_bulge_*", "population.pair_shear_max"),
        *positive("population.pair_separation_*", "population.pair_flux_ratio_*"),
        *at_least(0, "population.knot_count_min"),
        *weights("population.arm_count_weights"),
        *non_negative("neighbours.galaxy_density", "neighbours.star_density"),
        *non_negative("neighbours.exclusion", "clumps.radial_weight"),
        *fraction("population.lopsided_max"),
        *fraction("odd_clumps.clump_like_fraction"),
        *rule(
            "render.format",
            ok=lambda f, _: f in ("jpg", "png"),
            problem=lambda f: f"must be 'jpg' or 'png', got {f!r}",
        ),
        *at_least(16, "render.size", "render.canvas_max"),
        *in_range(1, 100, "render.quality"),
        *in_range(0, 100, "render.native_quality"),
        *positive("render.frame_r90", "render.stretch", "render.q"),
        *non_negative("render.smooth"),
        *per_band("render.scales", bands=SIM_BANDS),
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
