"""Read galaxy images (FITS, PNG, JPEG) into ``(C, H, W)`` float32 arrays with band names.

Row order
---------
Arrays keep the row order of the file they come from, for every format: row 0 of a FITS
array is FITS row 1 (the *bottom* of the image as ds9 or ``imshow(origin="lower")`` shows it),
and row 0 of a PNG/JPEG array is the *top* row of the picture (as any image viewer shows it).
Nothing is ever flipped, so boxes measured on a file (e.g. Clump Scout boxes drawn on the
JPEG cutouts, or simulator truth written with the FITS file) index the array that
:func:`read_image` returns, with the pixel convention of docs/conventions.md. The price is
that a FITS image and a JPEG of the same field are vertically mirrored relative to each
other; convert boxes explicitly (``y -> H - y``) if you mix them. :attr:`ImageData.origin`
says which way up an array is meant to be shown (``"lower"``: FITS, row 0 at the bottom;
``"upper"``: PNG/JPEG, row 0 at the top), in matplotlib's ``imshow(origin=...)`` terms;
:func:`clumpdet.inference.overlay.plot_overlay` takes it so overlays show every input the
right way up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from clumpdet.data.fits import FITS_SUFFIXES, read_fits
from clumpdet.errors import InputError

#: File-name endings read through PIL; values are ``(C, H, W)`` in [0, 1].
RASTER_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")

#: Band names of the planes of a colour PNG/JPEG as :func:`read_image` returns them: the blue,
#: green and red channels, in that (wavelength) order, so that an SDSS/Galaxy Zoo gri composite
#: (i in red, r in green, g in blue) reads as ``(g, r, i)`` planes.
COLOUR_BANDS: tuple[str, ...] = ("B", "G", "R")

NanPolicy = Literal["raise", "zero", "median", "keep"]
_NAN_POLICIES = ("raise", "zero", "median", "keep")


@dataclasses.dataclass
class ImageData:
    """An image in memory: bands-first pixels plus what is known about them.

    Attributes
    ----------
    data : ndarray, shape (C, H, W), float32
        Native-endian pixels in the file's units (FITS) or in [0, 1] (PNG/JPEG).
    bands : tuple of str
        One name per plane. Planes the file does not name are called ``"band1"``, ``"band2"``
        ... and ``band_names_known`` is False.
    wcs : astropy.wcs.WCS or None
        2-D celestial WCS (0-based pixel centres, see docs/conventions.md), if the file has one.
    header : astropy.io.fits.Header
        Header of the (first) image HDU read; empty for PNG/JPEG.
    path : Path, tuple of Path, or None
        Source file(s); ``None`` for arrays built in memory.
    band_names_known : bool
        True when every band name comes from the file (not a ``"bandN"`` placeholder).
    """

    data: np.ndarray
    bands: tuple[str, ...]
    wcs: WCS | None = None
    header: fits.Header = dataclasses.field(default_factory=fits.Header)
    path: Path | tuple[Path, ...] | None = None
    band_names_known: bool = True

    def __post_init__(self) -> None:
        if self.data.ndim != 3 or self.data.shape[0] != len(self.bands):
            raise ValueError(
                f"ImageData: data shape {self.data.shape} does not match bands {self.bands}"
            )

    @property
    def is_raster(self) -> bool:
        """True when the pixels come from PNG/JPEG file(s) (display values in [0, 1])."""
        paths = self.path if isinstance(self.path, tuple) else (self.path,)
        return self.path is not None and all(_is_raster(p) for p in paths)

    @property
    def origin(self) -> Literal["lower", "upper"]:
        """Where row 0 is shown: ``"upper"`` (top) for PNG/JPEG, ``"lower"`` (bottom) else.

        FITS files and arrays built in memory are shown as astronomers display them (ds9,
        ``imshow(origin="lower")``); PNG/JPEG pictures as any image viewer does.
        """
        return "upper" if self.is_raster else "lower"

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def source(self) -> str | None:
        """The source file name(s) as one string, for error messages."""
        if self.path is None:
            return None
        if isinstance(self.path, tuple):
            return ", ".join(str(p) for p in self.path)
        return str(self.path)


def _is_raster(path: Path) -> bool:
    return Path(path).name.lower().endswith(RASTER_SUFFIXES)


def _suffix_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(FITS_SUFFIXES):
        return "fits"
    if _is_raster(path):
        return "raster"
    supported = ", ".join((*FITS_SUFFIXES, *RASTER_SUFFIXES))
    raise InputError(path, f"unsupported file type {path.suffix!r}; supported: {supported}")


def _placeholders(names: Sequence[str | None]) -> tuple[tuple[str, ...], bool]:
    known = all(n is not None for n in names)
    return tuple(n if n is not None else f"band{i}" for i, n in enumerate(names, 1)), known


def _read_raster(path: Path) -> ImageData:
    """PNG/JPEG via PIL: colour -> (3, H, W) planes B, G, R (wavelength order), grey -> ("L",)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.float32)[None] / 65535.0
                bands: tuple[str, ...] = ("L",)
            elif mode == "F":
                arr = np.asarray(im, dtype=np.float32)[None]
                bands = ("L",)
            elif mode in ("L", "LA", "1"):
                arr = np.asarray(im.convert("L"), dtype=np.float32)[None] / 255.0
                bands = ("L",)
            else:  # RGB, RGBA, P, CMYK, YCbCr ...: alpha is dropped; blue plane first
                rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
                arr = rgb[..., ::-1].transpose(2, 0, 1) / 255.0
                bands = COLOUR_BANDS
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"not a valid PNG/JPEG image ({exc})") from None
    data = np.ascontiguousarray(arr, dtype=np.float32)
    return ImageData(data=data, bands=bands, path=path, header=fits.Header())


def _read_one(path: Path, hdu: int | str | None) -> ImageData:
    if not path.is_file():
        raise InputError(path, "file not found")
    kind = _suffix_kind(path)
    if kind == "raster":
        if hdu is not None:
            raise InputError(path, "hdu= applies to FITS files only")
        return _read_raster(path)
    raw = read_fits(path, hdu=hdu)
    bands, known = _placeholders(raw.bands)
    return ImageData(
        data=raw.data,
        bands=bands,
        wcs=raw.wcs,
        header=raw.header,
        path=path,
        band_names_known=known,
    )


def _read_many(paths: Sequence[Path], hdu: int | str | None) -> ImageData:
    if len({_is_raster(p) for p in paths}) > 1:
        raise InputError(
            ", ".join(map(str, paths)),
            "mixes FITS and PNG/JPEG files (their rows run in opposite directions)",
        )
    parts = [_read_one(p, hdu) for p in paths]
    shape = parts[0].data.shape[1:]
    for p, part in zip(paths, parts):
        if part.data.shape[1:] != shape:
            raise InputError(
                p,
                f"image shape {part.data.shape[1:]} differs from {shape} of {paths[0]} "
                "(per-band files must have the same shape)",
            )
    names: list[str | None] = []
    for part in parts:
        names.extend(b if part.band_names_known else None for b in part.bands)
    bands, known = _placeholders(names)
    if known and len(set(bands)) != len(bands):
        raise InputError(
            ", ".join(map(str, paths)), f"band names repeat across files: {', '.join(bands)}"
        )
    return ImageData(
        data=np.concatenate([p.data for p in parts], axis=0),
        bands=bands,
        wcs=parts[0].wcs,
        header=parts[0].header,
        path=tuple(paths),
        band_names_known=known,
    )


def select_bands(image: ImageData, bands: Sequence[str]) -> ImageData:
    """Return ``image`` with its planes selected and ordered by ``bands``.

    If the file names its bands, every requested name must be among them. If it does not
    (placeholders ``band1..``), the band count must equal ``len(bands)`` and the planes are
    taken, in file order, to be the requested bands.

    Raises
    ------
    InputError
        A requested band is missing, or the band count does not match.
    """
    want = tuple(str(b) for b in bands)
    if not want:
        raise InputError(image.source, "no bands requested")
    if want == image.bands:
        return image
    if not image.band_names_known:
        if len(want) != len(image.bands):
            raise InputError(
                image.source,
                f"expected {len(want)} bands ({', '.join(want)}), found {len(image.bands)}",
            )
        return dataclasses.replace(image, bands=want, band_names_known=True)
    missing = [b for b in want if b not in image.bands]
    if missing:
        if len(image.bands) < len(want):
            problem = f"expected {len(want)} bands ({', '.join(want)}), found {len(image.bands)}"
        else:
            problem = f"band(s) {', '.join(missing)} not found"
        raise InputError(image.source, f"{problem}; the file has bands ({', '.join(image.bands)})")
    idx = [image.bands.index(b) for b in want]
    return dataclasses.replace(image, data=np.ascontiguousarray(image.data[idx]), bands=want)


def apply_nan_policy(image: ImageData, nan_policy: NanPolicy = "raise") -> ImageData:
    """Check or replace non-finite pixels (NaN, +-inf), per band.

    Parameters
    ----------
    image : ImageData
        Input image; not modified.
    nan_policy : {"raise", "zero", "median", "keep"}
        ``"raise"``: any non-finite pixel is an error; ``"zero"``: replace by 0; ``"median"``:
        replace by the median of the band's finite pixels; ``"keep"``: leave them, for callers
        that mask them (:func:`clumpdet.baselines.sources.find_sources`).

    Raises
    ------
    InputError
        Empty image, a band without any finite pixel (except under ``"keep"``), or bad pixels
        under ``"raise"``.
    """
    if nan_policy not in _NAN_POLICIES:
        raise InputError(
            image.source, f"nan_policy {nan_policy!r} is not one of {list(_NAN_POLICIES)}"
        )
    data = image.data
    if data.size == 0:
        raise InputError(image.source, f"image is empty (shape {data.shape})")
    if nan_policy == "keep":
        return image
    bad = ~np.isfinite(data)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return image
    per_band = bad.reshape(data.shape[0], -1).all(axis=1)
    if per_band.any():
        which = ", ".join(b for b, all_bad in zip(image.bands, per_band) if all_bad)
        raise InputError(image.source, f"band(s) {which} contain no finite pixels")
    if nan_policy == "raise":
        raise InputError(
            image.source,
            f"{n_bad} non-finite (NaN/inf) pixel(s) of {data.size}; "
            "use nan_policy='zero' or 'median' to replace them",
        )
    out = data.copy()
    for c in range(out.shape[0]):
        mask = bad[c]
        if mask.any():
            fill = 0.0 if nan_policy == "zero" else float(np.median(out[c][~mask]))
            out[c][mask] = fill
    return dataclasses.replace(image, data=out)


def read_image(
    path: str | Path | Sequence[str | Path],
    *,
    bands: Sequence[str] | None = None,
    hdu: int | str | None = None,
    nan_policy: NanPolicy = "raise",
) -> ImageData:
    """Read an image file (or one file per band) into a ``(C, H, W)`` float32 :class:`ImageData`.

    Parameters
    ----------
    path : str, Path, or sequence of them
        A FITS file (2-D HDU, ``(C, H, W)`` cube with ``BAND1..n``, or multi-extension file
        with one 2-D image HDU per band), a PNG/JPEG cutout (colour -> 3 bands in [0, 1];
        greyscale -> 1 band ``L``), or a list of files, one (or more) band(s) each, all of
        the same ``(H, W)``, concatenated in list order.

        Colour channels are returned in **wavelength order**, bluest first: planes
        ``(B, G, R)`` (:data:`COLOUR_BANDS`). Survey colour composites put the reddest band in
        red (SDSS / Galaxy Zoo: i -> red, r -> green, g -> blue), so a gri composite reads as
        ``(g, r, i)``, the band order of a FITS cube, and a model trained on ``(g, r, i)`` FITS
        gets each band's channel when planes are matched by count.
    bands : sequence of str, optional
        Select and reorder planes by name (see :func:`select_bands`).
    hdu : int or str, optional
        FITS only: read this HDU (index or ``EXTNAME``) instead of choosing automatically.
    nan_policy : {"raise", "zero", "median", "keep"}
        What to do with NaN/inf pixels of the selected bands (see :func:`apply_nan_policy`).

    Returns
    -------
    ImageData
        ``data`` float32 native-endian ``(C, H, W)``; rows in file order, never flipped: row 0
        is the bottom row of a FITS image and the top row of a PNG/JPEG picture
        (:attr:`ImageData.origin` says which; module docstring).

    Raises
    ------
    InputError
        Missing file, unsupported suffix, corrupt/truncated file, shape mismatch between
        per-band files, a list mixing FITS and PNG/JPEG files, missing bands or wrong band
        count, empty or all-NaN image, NaN/inf pixels with ``nan_policy="raise"``.
    """
    if isinstance(path, (str, Path)):
        image = _read_one(Path(path), hdu)
    else:
        paths = [Path(p) for p in path]
        if not paths:
            raise InputError(None, "read_image: empty list of files")
        image = _read_one(paths[0], hdu) if len(paths) == 1 else _read_many(paths, hdu)
    if bands is not None:
        image = select_bands(image, bands)
    return apply_nan_policy(image, nan_policy)


def read_model_input(
    path: str | Path, bands: Sequence[str], *, nan_policy: NanPolicy = "raise"
) -> ImageData:
    """Read one file as a model's input bands.

    FITS files have ``bands`` picked by name (:func:`read_image`). A PNG/JPEG colour cutout keeps
    its planes in wavelength order (B, G, R), taken by count as ``bands`` (``g, r, i`` for an
    SDSS / Galaxy Zoo composite: red = i, green = r, blue = g); a greyscale raster is one band.

    Raises
    ------
    InputError
        The file is unreadable, or a raster's plane count differs from ``len(bands)``.
    """
    path = Path(path)
    if not _is_raster(path):
        return read_image(path, bands=bands, nan_policy=nan_policy)
    image = read_image(path, nan_policy=nan_policy)
    want = tuple(str(b) for b in bands)
    if len(image.bands) != len(want):
        raise InputError(
            path,
            f"{'colour' if len(image.bands) == 3 else 'greyscale'} image has {len(image.bands)} "
            f"plane(s) but the model takes {len(want)} bands ({', '.join(want)})",
        )
    return dataclasses.replace(image, bands=want)
