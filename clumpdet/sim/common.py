"""Helpers shared by the GalSim simulators (clumps and galaxy-classification scenes).

Seeding (every image is a pure function of ``(config, seed)``), PSF profiles and pixel kernels,
the Gaussian sky + shot noise model, single-threaded GalSim and stamp drawing (run arguments,
the run record and the registry live in :mod:`clumpdet.sim.run`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import galsim
import numpy as np

from clumpdet.errors import ConfigError

#: GalSim accuracy settings used by all simulators.
GSPARAMS = galsim.GSParams(folding_threshold=5e-3, maxk_threshold=1e-3)


# --------------------------------------------------------------------------------------------
# seeding


def as_seed_sequence(seed: int | np.random.SeedSequence) -> np.random.SeedSequence:
    """Return ``seed`` as a SeedSequence (an int ``s`` becomes ``SeedSequence(s)``).

    Raises
    ------
    ConfigError
        For a negative or non-integer seed.
    """
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed: expected a non-negative integer, got {seed!r}")
    return np.random.SeedSequence(int(seed))


def image_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Seed of image ``index`` of a run with master ``seed``.

    Identical to ``SeedSequence(seed).spawn(n)[index]`` for any ``n > index``, so image ``i`` of a
    run does not depend on how many images the run makes nor on how they are split over workers.
    """
    return np.random.SeedSequence(as_seed_sequence(seed).entropy, spawn_key=(int(index),))


def substream(ss: np.random.SeedSequence, k: int) -> np.random.SeedSequence:
    """Sub-stream ``k`` of ``ss``, a pure function of ``ss`` (``ss.spawn`` would mutate it)."""
    return np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, k), pool_size=ss.pool_size)


def galsim_seed(ss: np.random.SeedSequence, k: int) -> int:
    """A GalSim ``BaseDeviate`` seed in ``[1, 2**31 - 2]`` drawn from sub-stream ``k`` of ``ss``."""
    return int(substream(ss, k).generate_state(1, dtype=np.uint32)[0]) % (2**31 - 2) + 1


def loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One draw, log-uniform on ``[lo, hi]`` (both > 0)."""
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


@contextlib.contextmanager
def single_threaded_galsim() -> Iterator[None]:
    """Run GalSim with one OpenMP thread inside the block.

    GalSim's OpenMP threads thrash on a busy machine (its Gaussian deviate took 17 ms instead of
    1.5 ms per band on 2 shared cores); parallelism comes from processes instead.
    """
    threads = galsim.get_omp_threads()
    galsim.set_omp_threads(1)
    try:
        yield
    finally:
        galsim.set_omp_threads(threads)


# --------------------------------------------------------------------------------------------
# PSF and noise


def psf_profile(profile: str, fwhm: float, *, moffat_beta: float = 3.5) -> galsim.GSObject:
    """GalSim PSF of the given FWHM (arcsec).

    Parameters
    ----------
    profile : {"moffat", "kolmogorov", "gaussian"}
        Shape.
    fwhm : float
        Full width at half maximum, arcsec.
    moffat_beta : float
        Moffat index (``profile="moffat"`` only).
    """
    if profile == "kolmogorov":
        return galsim.Kolmogorov(fwhm=fwhm, gsparams=GSPARAMS)
    if profile == "gaussian":
        return galsim.Gaussian(fwhm=fwhm, gsparams=GSPARAMS)
    return galsim.Moffat(beta=moffat_beta, fwhm=fwhm, gsparams=GSPARAMS)


def psf_kernel(
    psf: galsim.GSObject, *, fwhm: float, scale: float, radius_fwhm: float, method: str = "auto"
) -> np.ndarray:
    """Odd-sized square pixel kernel of ``psf`` normalised to unit sum.

    Parameters
    ----------
    psf : galsim.GSObject
        The PSF.
    fwhm : float
        Its FWHM, arcsec (sets the kernel size).
    scale : float
        Arcsec per pixel.
    radius_fwhm : float
        The kernel reaches this many FWHM from its centre (side ``2 ceil(r fwhm / scale) + 1``).
    method : str
        GalSim draw method: ``"auto"`` includes the pixel response, ``"no_pixel"`` samples the
        profile (use it when the image to convolve is already pixel-integrated).

    Returns
    -------
    ndarray, shape (K, K), float64
    """
    k = 2 * math.ceil(radius_fwhm * fwhm / scale) + 1
    kern = psf.drawImage(nx=k, ny=k, scale=scale, method=method).array.astype(np.float64)
    return kern / kern.sum()


def add_gaussian_noise(
    model: np.ndarray,
    *,
    base_var: float,
    gain: float,
    poisson: bool,
    deviate: galsim.GaussianDeviate,
) -> tuple[np.ndarray, np.ndarray]:
    """Add sky (+ source shot) noise to a noiseless image, in the Gaussian limit.

    The per-pixel variance is ``base_var + max(model, 0) / gain`` (the second term only when
    ``poisson``); the noise is drawn from GalSim's ``deviate``.

    Parameters
    ----------
    model : ndarray, shape (H, W)
        Noiseless image in image units.
    base_var : float
        Sky (+ read) variance per pixel, image units squared.
    gain : float
        Counts per image unit (sets the shot noise of the sources).
    poisson : bool
        Include the sources' shot noise.
    deviate : galsim.GaussianDeviate
        Unit Gaussian deviate (consumed: ``H * W`` draws).

    Returns
    -------
    image : ndarray, shape (H, W), float64
        ``model`` plus noise.
    var : ndarray, shape (H, W), float64
        The variance used (read-only view when constant).
    """
    h, w = model.shape
    var = base_var + (np.clip(model, 0.0, None) / gain if poisson else 0.0)
    var = np.broadcast_to(np.asarray(var, dtype=np.float64), (h, w))
    draws = np.empty((h, w), dtype=np.float64)
    deviate.generate(draws)
    return model + np.sqrt(var) * draws, var


# --------------------------------------------------------------------------------------------
# stamps


def stamp_bounds(x: float, y: float, radius: float, w: int, h: int) -> galsim.BoundsI | None:
    """GalSim bounds (1-based) of a square stamp of half-side ``radius`` px around corner-origin
    pixel position ``(x, y)``, clipped to a ``w x h`` image; ``None`` when fully outside."""
    ix, iy = math.floor(x) + 1, math.floor(y) + 1
    r = math.ceil(radius)
    b = galsim.BoundsI(ix - r, ix + r, iy - r, iy + r) & galsim.BoundsI(1, w, 1, h)
    return b if b.isDefined() else None


def draw_unit(
    prof: galsim.GSObject, x: float, y: float, radius: float, w: int, h: int, scale: float
) -> tuple[galsim.BoundsI, np.ndarray] | None:
    """Draw ``prof`` centred at corner-origin pixel position ``(x, y)`` into a clipped stamp.

    Returns
    -------
    (galsim.BoundsI, ndarray) or None
        The stamp bounds (1-based, inclusive) and its pixels, float64 ``(ny, nx)``; ``None``
        when the stamp falls outside the image.
    """
    b = stamp_bounds(x, y, radius, w, h)
    if b is None:
        return None
    stamp = galsim.ImageF(b, scale=scale)
    prof.drawImage(image=stamp, center=galsim.PositionD(x + 0.5, y + 0.5), method="auto")
    return b, stamp.array.astype(np.float64)


def stamp_slices(b: galsim.BoundsI) -> tuple[slice, slice]:
    """numpy ``(rows, cols)`` slices of a 1-based inclusive GalSim bounds."""
    return slice(b.ymin - 1, b.ymax), slice(b.xmin - 1, b.xmax)
