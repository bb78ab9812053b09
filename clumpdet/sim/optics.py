"""Per-band optics and noise, described the same way by every simulator.

Every per-band number of a simulation config (PSF FWHM or FWHM factor, sky level, gain, depth,
SED) is a ``{band: value}`` mapping, e.g. ``gain: {g: 900.0, r: 900.0, i: 680.0}``; the band
names are those the simulator models (clumps: g, r, i; fields: g, r, i, z; galaxy tasks: their
``image.bands``). A YAML file or ``--set noise.gain.r=500`` may give some bands only: the others
keep their defaults. The PSF shape (:class:`PSFShape`) is shared too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

#: A per-band value: band name -> number.
PerBand = dict[str, float]

#: PSF profiles every simulator can draw (:func:`clumpdet.sim.common.psf_profile`).
PSF_PROFILES: tuple[str, ...] = ("moffat", "kolmogorov", "gaussian")


@dataclass(frozen=True)
class PSFShape:
    """PSF profile shared by every simulator's ``psf`` group.

    Attributes
    ----------
    profile : {"moffat", "kolmogorov", "gaussian"}
        Shape.
    moffat_beta : float
        Moffat index (``profile="moffat"`` only; > 1.1 for a finite flux).
    """

    profile: Literal["moffat", "kolmogorov", "gaussian"] = "moffat"
    moffat_beta: float = 3.5


def band_values(values: Mapping[str, float], bands: Iterable[str]) -> tuple[float, ...]:
    """The values of ``bands``, in that order, from a ``{band: value}`` mapping."""
    return tuple(float(values[b]) for b in bands)
