"""Photometric units shared by the simulators, finders and catalogues.

Fluxes are in nanomaggies (SDSS / Legacy Survey convention): an AB magnitude of
:data:`ZERO_POINT` is a flux of 1 nanomaggy.
"""

from __future__ import annotations

import numpy as np

#: AB magnitude of a 1-nanomaggy source.
ZERO_POINT = 22.5


def mag_to_flux(mag: float | np.ndarray, *, zero_point: float = ZERO_POINT) -> float | np.ndarray:
    """AB magnitude -> flux in nanomaggies (``10 ** (-0.4 * (mag - zero_point))``)."""
    out = 10.0 ** (-0.4 * (np.asarray(mag, dtype=np.float64) - zero_point))
    return float(out) if np.ndim(out) == 0 else out


def flux_to_mag(flux: float | np.ndarray, *, zero_point: float = ZERO_POINT) -> float | np.ndarray:
    """Flux in nanomaggies -> AB magnitude; NaN where the flux is not positive."""
    f = np.asarray(flux, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(f > 0, zero_point - 2.5 * np.log10(np.where(f > 0, f, 1.0)), np.nan)
    return float(out) if np.ndim(out) == 0 else out
