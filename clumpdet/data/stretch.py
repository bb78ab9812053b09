"""Named intensity stretches applied per band to ``(C, H, W)`` images.

Every stretch is a deterministic, monotonic non-decreasing map applied to each band
separately, returns float32 of the input shape, ignores non-finite pixels when estimating its
parameters and maps them to 0 in the output, and never divides by zero (a constant band maps
to a constant). Percentile-based stretches (``linear``, ``log``, ``zscale``) return values in
[0, 1]; ``asinh`` returns noise-scaled values (about unit size for faint structure, a few
for bright cores); ``none`` returns the input as float32.

Look-ups go through :data:`STRETCHES` (a :class:`clumpdet.registry.Registry`):

>>> import numpy as np
>>> out = apply_stretch(np.ones((3, 8, 8)), "linear", lower=1.0, upper=99.0)
>>> out.shape, out.dtype.name
((3, 8, 8), 'float32')
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from clumpdet.errors import ConfigError
from clumpdet.noise import mad_sigma
from clumpdet.registry import Registry

#: Registry of stretches: ``name -> fn(data (C, H, W) or (H, W), **params) -> float32``.
STRETCHES: Registry[Callable[..., np.ndarray]] = Registry("stretch")


def _bands(data: np.ndarray) -> tuple[np.ndarray, bool]:
    """View ``data`` as ``(C, H, W)`` float64; remember whether it was 2-D."""
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 2:
        return arr[None], True
    if arr.ndim != 3:
        raise ValueError(f"stretch expects a (C, H, W) or (H, W) array, got shape {arr.shape}")
    return arr, False


def _finish(out: np.ndarray, finite: np.ndarray, squeeze: bool) -> np.ndarray:
    out = np.where(finite, out, 0.0).astype(np.float32)
    return out[0] if squeeze else out


def robust_sigma(band: np.ndarray) -> float:
    """Gaussian-equivalent noise sigma of one band from its MAD (finite pixels only).

    :func:`clumpdet.noise.mad_sigma`, falling back to the standard deviation when the MAD is 0
    (e.g. mostly-constant images); 0.0 for a constant or empty band.
    """
    sigma = float(mad_sigma(band))
    if sigma <= 0.0:
        vals = band[np.isfinite(band)]
        sigma = float(np.std(vals)) if vals.size else 0.0
    return sigma


def _interval_scale(x: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Clip ``x`` to ``[vmin, vmax]`` and map it linearly onto [0, 1] (0 when vmax == vmin)."""
    if not vmax > vmin:
        return np.zeros_like(x)
    return (np.clip(x, vmin, vmax) - vmin) / (vmax - vmin)


def _percentiles(band: np.ndarray, lower: float, upper: float) -> tuple[float, float]:
    vals = band[np.isfinite(band)]
    if vals.size == 0:
        return 0.0, 0.0
    lo, hi = np.percentile(vals, [lower, upper])
    return float(lo), float(hi)


def _check_percentiles(lower: float, upper: float) -> None:
    if not 0.0 <= lower < upper <= 100.0:
        raise ConfigError(
            f"stretch percentiles need 0 <= lower < upper <= 100, got {lower}, {upper}"
        )


@STRETCHES.register("none")
def stretch_none(data: np.ndarray) -> np.ndarray:
    """Identity: the pixels as float32 (non-finite pixels -> 0)."""
    arr, squeeze = _bands(data)
    return _finish(arr, np.isfinite(arr), squeeze)


@STRETCHES.register("linear")
def stretch_linear(data: np.ndarray, *, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Linear between the ``lower`` and ``upper`` percentiles of each band, clipped to [0, 1].

    Parameters
    ----------
    data : ndarray, shape (C, H, W) or (H, W)
        Pixels in any units.
    lower, upper : float
        Percentiles (0-100) of the band's finite pixels mapped to 0 and 1.
    """
    _check_percentiles(lower, upper)
    arr, squeeze = _bands(data)
    finite = np.isfinite(arr)
    out = np.empty_like(arr)
    for c in range(arr.shape[0]):
        lo, hi = _percentiles(arr[c], lower, upper)
        out[c] = _interval_scale(arr[c], lo, hi)
    return _finish(out, finite, squeeze)


@STRETCHES.register("log")
def stretch_log(
    data: np.ndarray, *, lower: float = 0.5, upper: float = 99.5, a: float = 1000.0
) -> np.ndarray:
    """Logarithmic after percentile clipping: ``log10(a * t + 1) / log10(a + 1)``, in [0, 1].

    ``t`` is the band scaled linearly onto [0, 1] between its ``lower`` and ``upper``
    percentiles (as astropy's ``LogStretch`` after a ``PercentileInterval``).

    Parameters
    ----------
    data : ndarray, shape (C, H, W) or (H, W)
        Pixels in any units.
    lower, upper : float
        Clipping percentiles (0-100).
    a : float
        Log scale factor (> 0); larger values lift faint structure more.
    """
    _check_percentiles(lower, upper)
    if not a > 0:
        raise ConfigError(f"log stretch needs a > 0, got {a}")
    lin = stretch_linear(data, lower=lower, upper=upper).astype(np.float64)
    arr, squeeze = _bands(data)
    lin = lin[None] if squeeze else lin
    out = np.log10(a * lin + 1.0) / np.log10(a + 1.0)
    return _finish(out, np.isfinite(arr), squeeze)


@STRETCHES.register("asinh")
def stretch_asinh(
    data: np.ndarray,
    *,
    softening: float | None = None,
    noise_factor: float = 3.0,
    subtract_median: bool = False,
) -> np.ndarray:
    """Lupton-style ``asinh(x / b)`` per band, ``b`` the softening (linear below, log above).

    Parameters
    ----------
    data : ndarray, shape (C, H, W) or (H, W)
        Pixels in physical units (e.g. nanomaggies), sky-subtracted unless
        ``subtract_median``.
    softening : float, optional
        Fixed softening ``b`` in the units of ``data`` (same for every band and image, so the
        map is image-independent). If None, ``b = noise_factor * sigma`` with ``sigma`` the
        band's robust noise from its median absolute deviation.
    noise_factor : float
        Softening in units of the noise sigma when ``softening`` is None (> 0).
    subtract_median : bool
        Subtract each band's median (a crude sky level) first.

    Returns
    -------
    ndarray, float32
        ``asinh(x / b)``: ~``x / b`` for faint pixels, ``log(2 x / b)`` for bright ones; noise
        has a spread of ~``1 / noise_factor``. A band with zero noise uses ``b = 1``.
    """
    if softening is not None and not softening > 0:
        raise ConfigError(f"asinh stretch needs softening > 0, got {softening}")
    if not noise_factor > 0:
        raise ConfigError(f"asinh stretch needs noise_factor > 0, got {noise_factor}")
    arr, squeeze = _bands(data)
    finite = np.isfinite(arr)
    out = np.empty_like(arr)
    for c in range(arr.shape[0]):
        band = arr[c]
        if subtract_median:
            vals = band[finite[c]]
            band = band - (float(np.median(vals)) if vals.size else 0.0)
        if softening is not None:
            b = float(softening)
        else:
            b = noise_factor * robust_sigma(band)
            if not (b > 0 and np.isfinite(b)):
                b = 1.0
        out[c] = np.arcsinh(np.where(finite[c], band, 0.0) / b)
    return _finish(out, finite, squeeze)


@STRETCHES.register("zscale")
def stretch_zscale(
    data: np.ndarray,
    *,
    n_samples: int = 1000,
    contrast: float = 0.25,
    max_reject: float = 0.5,
    min_npixels: int = 5,
    krej: float = 2.5,
    max_iterations: int = 5,
) -> np.ndarray:
    """IRAF zscale interval per band (``astropy.visualization.ZScaleInterval``), in [0, 1].

    Parameters are those of :class:`astropy.visualization.ZScaleInterval`; the interval is
    estimated from the band's finite pixels and the band is clipped to it and scaled linearly.
    """
    from astropy.visualization import ZScaleInterval

    interval = ZScaleInterval(
        n_samples=n_samples,
        contrast=contrast,
        max_reject=max_reject,
        min_npixels=min_npixels,
        krej=krej,
        max_iterations=max_iterations,
    )
    arr, squeeze = _bands(data)
    finite = np.isfinite(arr)
    out = np.empty_like(arr)
    for c in range(arr.shape[0]):
        vals = arr[c][finite[c]]
        if vals.size == 0:
            out[c] = 0.0
            continue
        vmin, vmax = interval.get_limits(vals)
        out[c] = _interval_scale(arr[c], float(vmin), float(vmax))
    return _finish(out, finite, squeeze)


def list_stretches() -> dict[str, str]:
    """Registered stretch names with a one-line description each."""
    return STRETCHES.describe()


def stretch_parameters(name: str) -> tuple[str, ...]:
    """Names of the keyword parameters accepted by stretch ``name``."""
    sig = inspect.signature(STRETCHES.get(name))
    return tuple(p.name for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY)


def check_stretch(name: str, params: dict[str, Any] | None = None) -> None:
    """Raise unless stretch ``name`` is registered and accepts ``params``.

    Raises
    ------
    RegistryError
        Unknown name (the message lists the registered stretches).
    ConfigError
        Unknown parameter(s) (the message lists the valid ones).
    """
    valid = stretch_parameters(name)
    unknown = sorted(set(params or {}) - set(valid))
    if unknown:
        raise ConfigError(
            f"stretch {name!r} has no parameter(s) {', '.join(unknown)}; "
            f"valid: {', '.join(valid) or '(none)'}"
        )


def apply_stretch(data: np.ndarray, name: str, **params: Any) -> np.ndarray:
    """Apply the registered stretch ``name`` per band.

    Parameters
    ----------
    data : ndarray, shape (C, H, W) or (H, W)
        Pixels.
    name : str
        One of :func:`list_stretches`.
    **params
        Keyword parameters of that stretch.

    Returns
    -------
    ndarray, float32, same shape as ``data``

    Raises
    ------
    RegistryError
        Unknown stretch name (the message lists the registered ones).
    ConfigError
        Unknown or invalid parameter.
    """
    check_stretch(name, params)
    return STRETCHES.get(name)(data, **params)
