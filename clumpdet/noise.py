"""The one robust noise estimator: the median absolute deviation scaled to a Gaussian sigma."""

from __future__ import annotations

import warnings

import numpy as np

#: Consistency factor turning a median absolute deviation into a Gaussian sigma.
MAD_TO_SIGMA = 1.482602218505602


def mad_sigma(
    data: np.ndarray, *, axis: int | tuple[int, ...] | None = None, ignore_zeros: bool = False
) -> float | np.ndarray:
    """Robust per-pixel noise: ``1.4826 * median(|x - median(x)|)``, ignoring NaN/inf.

    Parameters
    ----------
    data : ndarray
        Pixels (any shape), in any flux unit; the result is in the same unit.
    axis : int or tuple of int, optional
        Axes to reduce over (e.g. ``(1, 2)`` for per-band noise of a ``(C, H, W)`` image);
        ``None`` reduces over everything and returns a float.
    ignore_zeros : bool
        Leave exact zeros out (pixels outside a mosaic's footprint, masked or padded areas).

    Returns
    -------
    float or ndarray
        The sigma; 0.0 where no finite (non-zero) pixel remains.
    """
    a = np.asarray(data, dtype=np.float64)
    bad = ~np.isfinite(a)
    if ignore_zeros:
        bad |= a == 0
    if axis is None:
        v = a[~bad]
        if v.size == 0:
            return 0.0
        return float(MAD_TO_SIGMA * np.median(np.abs(v - np.median(v))))
    m = np.where(bad, np.nan, a)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices give 0.0 below
        med = np.nanmedian(m, axis=axis, keepdims=True)
        out = MAD_TO_SIGMA * np.nanmedian(np.abs(m - med), axis=axis)
    return np.nan_to_num(out, nan=0.0)
