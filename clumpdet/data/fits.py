"""FITS image writing (and, below, reading) in the clumpdet layout (see docs/conventions.md)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS, FITSFixedWarning

from clumpdet.errors import InputError
from clumpdet.utils import atomic_path

#: File-name endings read as FITS (compressed variants included).
FITS_SUFFIXES: tuple[str, ...] = (
    ".fits",
    ".fit",
    ".fts",
    ".fits.gz",
    ".fit.gz",
    ".fts.gz",
    ".fits.bz2",
    ".fits.fz",
    ".fz",
)


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


class FitsImage(NamedTuple):
    """Raw result of :func:`read_fits` (before band selection and NaN handling).

    Attributes
    ----------
    data : ndarray, shape (C, H, W), float32
        Native-endian pixel values with ``BSCALE``/``BZERO`` applied.
    bands : tuple of (str or None)
        One name per plane; ``None`` where the file does not name the band.
    header : astropy.io.fits.Header
        Header of the (first) image HDU read.
    wcs : astropy.wcs.WCS or None
        2-D celestial WCS of that header, or ``None`` if it has none.
    """

    data: np.ndarray
    bands: tuple[str | None, ...]
    header: fits.Header
    wcs: WCS | None


def _band_keyword(header: fits.Header) -> str | None:
    """Band name of a 2-D HDU from ``BAND`` or ``FILTER`` (``None`` if absent/blank)."""
    for key in ("BAND", "FILTER"):
        value = header.get(key)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def _celestial_wcs(header: fits.Header, path: Path) -> WCS | None:
    """The 2-D celestial part of ``header``'s WCS, or ``None`` if it has none or is unusable."""
    if "CTYPE1" not in header and "CTYPE2" not in header:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FITSFixedWarning)
            wcs = WCS(header).celestial
    except Exception as exc:  # astropy raises many types for malformed WCS keywords
        warnings.warn(f"ignoring unusable WCS ({' '.join(str(exc).split())})", stacklevel=3)
        return None
    return wcs if wcs.naxis == 2 and wcs.has_celestial else None


def _to_float32(data: np.ndarray) -> np.ndarray:
    """Native-endian, C-contiguous float32 copy (FITS data are big-endian on disk)."""
    return np.ascontiguousarray(data, dtype=np.float32)


def _hdu_planes(hdu: Any, path: Path, what: str) -> tuple[np.ndarray, tuple[str | None, ...]]:
    """Data of one image HDU as ``(C, H, W)`` float32 with per-plane band names."""
    data = hdu.data
    if data is None or data.size == 0:
        raise InputError(path, f"{what} has no image data")
    if data.ndim == 2:
        hdr = hdu.header
        name = _band_keyword(hdr) or hdr.get("BAND1")
        return _to_float32(data)[None], (None if name is None else str(name).strip(),)
    if data.ndim == 3:
        hdr = hdu.header
        c = data.shape[0]
        nb = hdr.get("NBANDS")
        if nb is not None and int(nb) != c:
            raise InputError(path, f"{what}: NBANDS = {nb} but the cube has {c} planes")
        names = tuple(
            (str(hdr[f"BAND{i}"]).strip() or None) if f"BAND{i}" in hdr else None
            for i in range(1, c + 1)
        )
        return _to_float32(data), names
    raise InputError(
        path, f"{what}: expected a 2-D image or a 3-D (C, H, W) cube, found {data.ndim}-D data"
    )


def _is_image_hdu(hdu: Any) -> bool:
    return isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU))


def _read_hdul(hdul: fits.HDUList, path: Path, hdu: int | str | None) -> FitsImage:
    if hdu is not None:
        try:
            chosen = hdul[hdu]
        except (KeyError, IndexError):
            names = [h.name for h in hdul]
            raise InputError(
                path, f"no HDU {hdu!r}; the file has {len(hdul)} HDUs named {names}"
            ) from None
        if not _is_image_hdu(chosen):
            raise InputError(path, f"HDU {hdu!r} is a {type(chosen).__name__}, not an image")
        data, bands = _hdu_planes(chosen, path, f"HDU {hdu!r}")
        return FitsImage(data, bands, chosen.header, _celestial_wcs(chosen.header, path))

    with_data = [h for h in hdul if _is_image_hdu(h) and h.data is not None and h.data.size > 0]
    if not with_data:
        shapes = [
            tuple(h.header.get(f"NAXIS{i}", 0) for i in range(h.header.get("NAXIS", 0), 0, -1))
            for h in hdul
            if _is_image_hdu(h)
        ]
        empty = [s for s in shapes if s and 0 in s]
        if empty:
            raise InputError(path, f"image is empty (shape {empty[0]})")
        raise InputError(path, "no HDU with image data (header-only file)")
    first = with_data[0]
    planes2d = [h for h in with_data if h.data.ndim == 2]
    mef_names = [
        _band_keyword(h.header) or (h.name if h.name != "PRIMARY" else None) for h in planes2d
    ]
    is_mef = (
        len(planes2d) == len(with_data) >= 2
        and len({h.data.shape for h in planes2d}) == 1
        and None not in mef_names
        and len(set(mef_names)) == len(mef_names)
    )
    if not is_mef:
        data, bands = _hdu_planes(first, path, f"HDU {hdul.index_of(first)}")
        return FitsImage(data, bands, first.header, _celestial_wcs(first.header, path))
    data = np.stack([_to_float32(h.data) for h in planes2d])
    return FitsImage(data, tuple(mef_names), first.header, _celestial_wcs(first.header, path))


def read_fits(path: str | Path, *, hdu: int | str | None = None) -> FitsImage:
    """Read one FITS file into a ``(C, H, W)`` float32 cube with band names.

    Layouts (docs/conventions.md):

    - primary (or chosen) HDU holding a 3-D cube ``(C, H, W)``: bands from ``BAND1..BANDn``
      (``NBANDS``, if present, must equal ``C``);
    - a 2-D HDU: one band, named by ``BAND`` or ``FILTER`` (or ``BAND1``);
    - multi-extension files: when ``hdu`` is None and every image HDU holding data is 2-D, of
      one shape, and named (``BAND``/``FILTER``, else ``EXTNAME``) with distinct names, each
      HDU is one band, in file order;
    - otherwise the first HDU with data (e.g. an empty primary followed by a cube or a
      tile-compressed image).

    Array rows are kept in file order: row 0 is FITS row 1 (the bottom of the image as ds9
    displays it). Boxes index these rows directly.

    Parameters
    ----------
    path : str or Path
        FITS file (optionally ``.gz``/``.bz2``/tile-compressed).
    hdu : int or str, optional
        Read only this HDU (index or ``EXTNAME``).

    Returns
    -------
    FitsImage
        ``data`` (C, H, W) native float32, ``bands`` (None where unnamed), ``header``, ``wcs``.

    Raises
    ------
    InputError
        Missing, corrupt or truncated file; no image data; unsupported dimensionality.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    # astropy's warnings are held back: a file we reject gets one InputError, not warnings too.
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.filterwarnings("error", message=".*truncated.*")
            # Our own handle: astropy leaks it when a corrupt file fails inside fits.open.
            with open(path, "rb") as fh, fits.open(fh, memmap=False, lazy_load_hdus=False) as hdul:
                out = _read_hdul(hdul, path, hdu)
                # Detach from the file: copy the header (data are already copies).
                out = FitsImage(out.data, out.bands, out.header.copy(), out.wcs)
    except InputError:
        raise
    except Exception as exc:  # astropy signals corrupt files with many exception types
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"not a valid FITS file ({msg})") from None
    for w in caught:
        # Non-standard cards (e.g. ESO "ESO-LOG" lines) are harmless and common: keep quiet.
        if "header keyword is invalid" in str(w.message):
            continue
        warnings.warn(f"{path}: {w.message}", w.category, stacklevel=2)
    return out


#: Header keywords read (in this order) as the pixel scale in arcsec/pixel when there is no WCS.
PIXEL_SCALE_KEYWORDS: tuple[str, ...] = ("PIXSCALE", "PIXSCAL", "SECPIX", "PIXSCAL1")


def pixel_scale_of(wcs: WCS | None, header: Mapping[str, Any] | None = None) -> float | None:
    """Pixel scale of an image in arcsec/pixel, from its celestial WCS or its header.

    Parameters
    ----------
    wcs : astropy.wcs.WCS or None
        2-D celestial WCS; the scale is the geometric mean of the two axes' scales
        (``proj_plane_pixel_scales``), so a rotated or sheared CD matrix is measured correctly.
    header : mapping, optional
        Used when ``wcs`` is None: the first of :data:`PIXEL_SCALE_KEYWORDS` with a positive
        value.

    Returns
    -------
    float or None
        Arcsec per pixel; ``None`` when neither source gives one.
    """
    if wcs is not None and wcs.has_celestial:
        from astropy.wcs.utils import proj_plane_pixel_scales

        scales = np.asarray(proj_plane_pixel_scales(wcs.celestial), dtype=np.float64)
        units = [str(u) for u in wcs.celestial.wcs.cunit]
        factor = 3600.0 if all(u in ("deg", "") for u in units) else None
        if factor is not None and np.all(np.isfinite(scales)) and np.all(scales > 0):
            return float(np.sqrt(scales[0] * scales[1]) * factor)
    for key in PIXEL_SCALE_KEYWORDS:
        value = (header or {}).get(key)
        try:
            scale = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(scale) and scale > 0:
            return scale
    return None


def file_pixel_scale(path: str | Path) -> float | None:
    """Pixel scale (arcsec/pixel) of a FITS file from its header alone (:func:`pixel_scale_of`).

    Reads the headers only (no pixels). PNG/JPEG files and FITS files without a WCS or a
    pixel-scale keyword give ``None``.
    """
    path = Path(path)
    if not path.name.lower().endswith(FITS_SUFFIXES) or not path.is_file():
        return None
    try:
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:
                if _is_image_hdu(hdu) and hdu.header.get("NAXIS", 0) >= 2:
                    return pixel_scale_of(_celestial_wcs(hdu.header, path), hdu.header)
            return pixel_scale_of(None, hdul[0].header)
    except OSError:
        return None
