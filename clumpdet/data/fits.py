"""FITS image writing (and, below, reading) in the clumpdet layout (see docs/conventions.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from clumpdet.utils import atomic_path


def make_wcs(
    *,
    shape: tuple[int, int],
    ra: float,
    dec: float,
    pixel_scale: float,
) -> WCS:
    """Build a north-up, east-left TAN WCS centred on ``(ra, dec)``.

    Parameters
    ----------
    shape : (int, int)
        Image ``(H, W)`` in pixels.
    ra, dec : float
        Sky position of the image centre, degrees (ICRS).
    pixel_scale : float
        Arcseconds per pixel.
    """
    h, w = shape
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [float(ra), float(dec)]
    # FITS pixel coordinates are 1-based at pixel centres; the image centre is (W+1)/2.
    wcs.wcs.crpix = [(w + 1) / 2.0, (h + 1) / 2.0]
    scale = pixel_scale / 3600.0
    wcs.wcs.cd = np.array([[-scale, 0.0], [0.0, scale]])
    wcs.wcs.radesys = "ICRS"
    wcs.wcs.equinox = 2000.0
    return wcs


def write_image_fits(
    path: str | Path,
    data: np.ndarray,
    *,
    bands: Sequence[str],
    wcs: WCS | None = None,
    unit: str = "nanomaggy",
    pixel_scale: float | None = None,
    header: Mapping[str, Any] | None = None,
) -> Path:
    """Write a ``(C, H, W)`` image cube to FITS atomically.

    Parameters
    ----------
    path : str or Path
        Output file.
    data : ndarray, shape (C, H, W)
        Pixel values in ``unit``; stored as float32.
    bands : sequence of str
        One name per plane, stored as ``BAND1..BANDn``.
    wcs : astropy.wcs.WCS, optional
        2-D celestial WCS written into the primary header.
    unit : str
        ``BUNIT`` value.
    pixel_scale : float, optional
        Arcsec/pixel, stored as ``PIXSCALE``.
    header : mapping, optional
        Extra header cards (short keys, scalar values).
    """
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3 or data.shape[0] != len(bands):
        raise ValueError(f"data shape {data.shape} does not match {len(bands)} bands")
    hdr = wcs.to_header() if wcs is not None else fits.Header()
    hdr["NBANDS"] = (len(bands), "number of bands (planes of the cube)")
    for i, b in enumerate(bands, 1):
        hdr[f"BAND{i}"] = (str(b), f"band of plane {i}")
    hdr["BUNIT"] = unit
    if pixel_scale is not None:
        hdr["PIXSCALE"] = (float(pixel_scale), "arcsec / pixel")
    for k, v in (header or {}).items():
        hdr[k] = v
    with atomic_path(path) as tmp:
        fits.PrimaryHDU(data=data, header=hdr).writeto(tmp)
    return Path(path)
