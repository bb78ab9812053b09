"""DeepMerge (Ciprijanovic et al. 2020): the HLSP FITS file and ``.npy`` arrays, memory-mapped."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clumpdet.data.containers import ClassificationData, MappedArray
from clumpdet.data.readers.common import SOURCES, SourceArgs, channels_last, check_labels, need_file
from clumpdet.errors import InputError
from clumpdet.tasks.base import array_row

#: DeepMerge HLSP filters (3-filter and HST-only 2-filter versions).
DEEPMERGE_BANDS: tuple[str, ...] = ("F814W", "F356W", "F160W")
DEEPMERGE_BANDS_HST: tuple[str, ...] = ("F814W", "F160W")


def _binary_labels(raw: np.ndarray, source: Path) -> np.ndarray:
    lab = np.asarray(raw)
    if lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim != 1:
        raise InputError(source, f"expected labels of shape (N,), got {lab.shape}")
    if lab.dtype.kind not in "biuf":
        raise InputError(source, f"labels must be numbers 0/1, got dtype {lab.dtype}")
    out = lab.astype(np.float32)[:, None]
    check_labels(out, task="merger", names=("merger",), source=source, row=array_row)
    return out


def read_deepmerge_fits(
    path: str | Path, *, label_hdu: str = "MergerLabel", label_column: str = "MergerLabel"
) -> ClassificationData:
    """Read a DeepMerge HLSP FITS file (Ciprijanovic et al. 2020), memory-mapped.

    Parameters
    ----------
    path : str or Path
        FITS file: primary HDU ``(N, 3, 75, 75)`` float64 (filters F814W, F356W, F160W, in
        microjansky/arcsec^2) or the HST-only ``(N, 2, 75, 75)`` (F814W, F160W); a BINTABLE HDU
        ``label_hdu`` with column ``label_column`` (1 merger, 0 not).
    label_hdu, label_column : str
        Where the labels are.

    Returns
    -------
    ClassificationData
        ``task="merger"``, labels (N, 1), ids 0..N-1, images a :class:`MappedArray` (pixels are
        read per item and converted to native float32; the file is never loaded whole).

    Raises
    ------
    InputError
        Missing/unreadable file, no 4-D primary array, no label table/column, image and label
        counts that differ, NaN or non-0/1 labels.
    """
    from astropy.io import fits

    path = need_file(path)
    try:
        hdul = fits.open(path, memmap=True)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable FITS file ({exc})") from None
    with hdul:
        shape = tuple(int(s) for s in (hdul[0].shape or ()))
        if len(shape) != 4:
            raise InputError(
                path, f"primary HDU must hold an (N, C, H, W) image array, found shape {shape}"
            )
        try:
            table = hdul[label_hdu]
        except KeyError:
            names = [h.name for h in hdul]
            raise InputError(path, f"no HDU named {label_hdu!r}; HDUs: {names}") from None
        if not isinstance(table, (fits.BinTableHDU, fits.TableHDU)):
            raise InputError(path, f"HDU {label_hdu!r} is not a table")
        cols = list(table.columns.names)
        if label_column not in cols:
            raise InputError(path, f"table {label_hdu!r} has no column {label_column!r}: {cols}")
        raw = np.array(table.data[label_column])
    n, c = shape[0], shape[1]
    if n != len(raw):
        raise InputError(path, f"{n} images but {len(raw)} labels in {label_hdu!r}")
    labels = _binary_labels(raw, path)
    bands = {3: DEEPMERGE_BANDS, 2: DEEPMERGE_BANDS_HST}.get(
        c, tuple(f"band{i}" for i in range(1, c + 1))
    )
    return ClassificationData(
        images=MappedArray(path, kind="fits", hdu=0),
        labels=labels,
        task="merger",
        label_names=("merger",),
        bands=bands,
        ids=np.arange(n, dtype=np.int64),
        source=path,
    )


def read_deepmerge_npy(images_path: str | Path, labels_path: str | Path) -> ClassificationData:
    """Read DeepMerge-style ``.npy`` arrays (memory-mapped).

    Parameters
    ----------
    images_path : str or Path
        ``(N, C, H, W)`` or channels-last ``(N, H, W, C)`` (detected by a last axis of at most
        16 that is smaller than axis 1) or single-band ``(N, H, W)``.
    labels_path : str or Path
        ``(N,)`` (or ``(N, 1)``) 0/1 merger labels.

    Returns
    -------
    ClassificationData
        ``task="merger"``; images a :class:`MappedArray`; bands as in DeepMerge for 3 or 2
        bands, else ``band1..``.

    Raises
    ------
    InputError
        Unreadable files, wrong dimensions, count mismatch, NaN or non-0/1 labels.
    """
    images_path = need_file(images_path, "images file")
    labels_path = need_file(labels_path, "labels file")
    try:
        images = np.load(images_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(images_path, f"not a readable .npy array ({exc})") from None
    try:
        raw = np.load(labels_path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(labels_path, f"not a readable .npy array ({exc})") from None
    if images.ndim not in (3, 4):
        raise InputError(
            images_path, f"expected images (N, C, H, W) or (N, H, W, C), got shape {images.shape}"
        )
    if images.dtype.kind not in "biuf":
        raise InputError(images_path, f"images must be numeric, got dtype {images.dtype}")
    if len(images) != len(raw):
        raise InputError(labels_path, f"{len(images)} images but {len(raw)} labels")
    labels = _binary_labels(raw, labels_path)
    view = MappedArray(images_path, kind="npy", channels_last=channels_last(images.shape))
    c = view.shape[1]
    bands = {3: DEEPMERGE_BANDS, 2: DEEPMERGE_BANDS_HST}.get(
        c, tuple(f"band{i}" for i in range(1, c + 1))
    )
    return ClassificationData(
        images=view,
        labels=labels,
        task="merger",
        label_names=("merger",),
        bands=bands,
        ids=np.arange(len(labels), dtype=np.int64),
        source=(images_path, labels_path),
    )


@SOURCES.register("deepmerge_fits", help="DeepMerge HLSP FITS (images + MergerLabel table)")
def _load_fits(args: SourceArgs) -> ClassificationData:
    args.need("path")
    args.refuse("id_column", "image_pattern", "image_bands", "split_column")
    return read_deepmerge_fits(args.path)  # type: ignore[arg-type]


@SOURCES.register("deepmerge_npy", help="DeepMerge-style images .npy + 0/1 labels .npy")
def _load_npy(args: SourceArgs) -> ClassificationData:
    args.need("path", "labels")
    args.refuse("id_column", "image_pattern", "image_bands", "split_column")
    return read_deepmerge_npy(args.path, args.labels)  # type: ignore[arg-type]
