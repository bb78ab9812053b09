"""Galaxy-classification data: readers for the published sets, a common form and a Dataset.

Every reader returns a :class:`ClassificationData`: images ``(N, C, H, W)`` (an in-memory array
or a lazily indexed one, so the ~2 GB DeepMerge file never has to fit in RAM), float32 labels
``(N, K)``, optional vote counts, ids, band and label names. :class:`ClassificationDataset` turns
it into training items with preprocessing, crop/resize and galaxy-safe augmentation
(:class:`GalaxyAugmentation`: rotations, flips, small zoom; never colour jitter).

Layouts read (FACTS.md section 3):

====================  ==========================================================================
reader                files
====================  ==========================================================================
read_deepmerge_fits   HLSP FITS: primary HDU (N, 3|2, 75, 75) float64 + BINTABLE ``MergerLabel``
read_deepmerge_npy    images .npy (N, C, H, W) or (N, H, W, C) + labels .npy (N,) 0/1
read_gz_kaggle        ``training_solutions_rev1.csv`` (GalaxyID, Class1.1 ... Class11.6) + JPEGs
read_gz2              ``gz2_hart16.csv`` (37 ``*_debiased``) + ``gz2_filename_mapping.csv`` + JPEGs
read_four_class_npz   npz: images (N, 128, 128, 3) + one-hot labels (N, 4)
read_candels_csv      CSV with 5 vote fractions + one FITS cutout per galaxy
read_image_folder     any CSV with label columns + FITS/PNG/JPEG files
====================  ==========================================================================

Bad input raises :class:`~clumpdet.errors.InputError` naming the file and the problem. CSV rows
are named by their *line* in the file (the header is line 1) and their id; array rows by their
0-based index.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from clumpdet.data.images import NanPolicy, read_image
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.errors import ConfigError, InputError
from clumpdet.tasks import TASKS, Task, get_task, gz_tree
from clumpdet.tasks.base import RowName, array_row
from clumpdet.tasks.candels import CANDELS_LABELS
from clumpdet.tasks.four_class import FOUR_CLASS_LABELS

#: Accepted CSV column names (case-insensitive) for each CANDELS label, tried in order.
CANDELS_ALIASES: dict[str, tuple[str, ...]] = {
    "spheroid": ("spheroid", "f_spheroid", "f_sph"),
    "disk": ("disk", "f_disk"),
    "irregular": ("irregular", "f_irr", "irr", "f_irregular"),
    "point_source": ("point_source", "f_ps", "ps", "f_point_source"),
    "unclassifiable": ("unclassifiable", "f_unc", "unc", "f_unclassifiable"),
}
#: DeepMerge HLSP filters (3-filter and HST-only 2-filter versions).
DEEPMERGE_BANDS: tuple[str, ...] = ("F814W", "F356W", "F160W")
DEEPMERGE_BANDS_HST: tuple[str, ...] = ("F814W", "F160W")
_RGB = ("R", "G", "B")


# --------------------------------------------------------------------------------------------
# Lazily indexed image stacks
# --------------------------------------------------------------------------------------------


def _as_image(item: Any, *, channels_last: bool, scale: float | None) -> np.ndarray:
    """One ``(C, H, W)`` native-endian float32 image from an array row."""
    arr = np.asarray(item)
    if arr.ndim == 2:
        arr = arr[None]
    elif channels_last:
        arr = np.moveaxis(arr, -1, 0)
    out = np.ascontiguousarray(arr, dtype=np.float32)  # also converts big-endian -> native
    if scale is not None:
        out *= np.float32(scale)
    return out


class ArrayImages:
    """A lazily indexed ``(N, C, H, W)`` view of an array-like (ndarray, memmap, h5 dataset).

    Rows are read and converted to native float32 ``(C, H, W)`` one at a time, so a memory-mapped
    or HDF5 array is never loaded as a whole. :meth:`take` returns a sub-view without copying.

    Parameters
    ----------
    array : array-like, shape (N, C, H, W), (N, H, W, C) or (N, H, W)
        Anything with ``shape`` and integer ``__getitem__``.
    channels_last : bool
        Rows are ``(H, W, C)``.
    scale : float, optional
        Multiply pixels by this (e.g. ``1/255`` for uint8 images).
    indices : array of int, optional
        Rows of ``array`` that this view exposes, in order (default: all).
    """

    def __init__(
        self,
        array: Any,
        *,
        channels_last: bool = False,
        scale: float | None = None,
        indices: np.ndarray | None = None,
    ) -> None:
        self._array = array
        self.channels_last = bool(channels_last)
        self.scale = scale
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)

    @property
    def array(self) -> Any:
        """The underlying array-like."""
        return self._array

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, C, H, W)`` of this view."""
        shp = tuple(int(s) for s in self.array.shape)
        n = shp[0] if self.indices is None else len(self.indices)
        if len(shp) == 3:
            return (n, 1, shp[1], shp[2])
        if self.channels_last:
            return (n, shp[3], shp[1], shp[2])
        return (n, shp[1], shp[2], shp[3])

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f"image index {i} out of range for {n} images")
        i %= n
        row = i if self.indices is None else int(self.indices[i])
        return _as_image(self.array[row], channels_last=self.channels_last, scale=self.scale)

    def take(self, indices: Sequence[int] | np.ndarray) -> ArrayImages:
        """A view of rows ``indices`` (of this view), sharing the underlying array."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        base = idx if self.indices is None else self.indices[idx]
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.indices = base
        return new


class MappedArray(ArrayImages):
    """An :class:`ArrayImages` over a memory-mapped file, reopened lazily in each process.

    Pickling (e.g. to DataLoader workers started with ``spawn``) sends only the file name, never
    the pixels.

    Parameters
    ----------
    path : Path
        The file.
    kind : {"fits", "npy"}
        ``fits``: the image HDU ``hdu`` opened with ``astropy.io.fits.open(memmap=True)``;
        ``npy``: ``numpy.load(mmap_mode="r")``.
    hdu : int or str
        FITS HDU holding the ``(N, C, H, W)`` array.
    channels_last, scale, indices
        As for :class:`ArrayImages`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        kind: Literal["fits", "npy"],
        hdu: int | str = 0,
        channels_last: bool = False,
        scale: float | None = None,
        indices: np.ndarray | None = None,
    ) -> None:
        super().__init__(None, channels_last=channels_last, scale=scale, indices=indices)
        self.path = Path(path)
        self.kind = kind
        self.hdu = hdu
        self._hdul: Any = None

    @property
    def array(self) -> Any:
        """The memory-mapped array (opened on first use)."""
        if self._array is None:
            if self.kind == "npy":
                self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
            else:
                from astropy.io import fits

                self._hdul = fits.open(self.path, memmap=True, lazy_load_hdus=True)
                self._array = self._hdul[self.hdu].data
        return self._array

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_array"] = None
        state["_hdul"] = None
        return state


class FileImages:
    """Images stored one per file (FITS/PNG/JPEG), read on access with :func:`read_image`.

    Parameters
    ----------
    paths : sequence of Path
        One file per galaxy.
    nan_policy : {"raise", "zero", "median"}
        Passed to :func:`~clumpdet.data.images.read_image`.
    """

    def __init__(self, paths: Sequence[str | Path], *, nan_policy: NanPolicy = "raise") -> None:
        self.paths: tuple[Path, ...] = tuple(Path(p) for p in paths)
        self.nan_policy = nan_policy

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:
        return read_image(self.paths[int(index)], nan_policy=self.nan_policy).data

    def take(self, indices: Sequence[int] | np.ndarray) -> FileImages:
        """The files at ``indices``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return FileImages([self.paths[i] for i in idx], nan_policy=self.nan_policy)


def is_memory_mapped(array: Any) -> bool:
    """True if ``array`` (or a base it views) is backed by a memory map rather than RAM."""
    import mmap

    obj = array
    while obj is not None:
        if isinstance(obj, (np.memmap, mmap.mmap)):
            return True
        obj = getattr(obj, "base", None)
    return False


# --------------------------------------------------------------------------------------------
# The common in-memory form
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class ClassificationData:
    """Images plus labels of one galaxy-classification task.

    Attributes
    ----------
    images : ndarray (N, C, H, W) or lazily indexed array-like
        An in-memory float array, or anything with ``len`` and ``images[i] -> (C, H, W)``
        (:class:`ArrayImages`, :class:`MappedArray`, :class:`FileImages`, ``np.memmap``, an
        h5py dataset). Read items with :meth:`image`, which returns native float32.
    labels : ndarray, float32, shape (N, K)
        ``merger``: (N, 1) 0/1; ``four_class``: one-hot (N, 4); ``gz_votes``: cumulative vote
        fractions (N, 37) in :data:`clumpdet.tasks.gz_tree.ANSWER_NAMES` order; ``candels``:
        (N, 5) vote fractions.
    task : str
        A registered task (:data:`clumpdet.tasks.TASKS`).
    label_names : tuple of str
        K names.
    bands : tuple of str
        C band names.
    ids : ndarray, shape (N,)
        int64 or str galaxy ids (row numbers when the source has none).
    source : Path, tuple of Path or None
        File(s) the data came from (for messages).
    counts : ndarray, float32, shape (N, K), optional
        Vote counts per answer (for the Dirichlet-multinomial loss).
    """

    images: Any
    labels: np.ndarray
    task: str
    label_names: tuple[str, ...]
    bands: tuple[str, ...]
    ids: np.ndarray
    source: Path | tuple[Path, ...] | None = None
    counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(
                f"unknown classification task {self.task!r}; registered: {', '.join(TASKS)}"
            )
        src = self._source_text()
        labels = np.asarray(self.labels, dtype=np.float32)
        if labels.ndim == 1:
            labels = labels[:, None]
        if labels.ndim != 2 or labels.shape[1] != len(self.label_names):
            raise InputError(
                src,
                f"labels have shape {labels.shape} but {len(self.label_names)} label names "
                f"{tuple(self.label_names)}",
            )
        n_img, n_lab = len(self.images), len(labels)
        if n_img != n_lab:
            raise InputError(src, f"{n_img} images but {n_lab} labels")
        ids = np.asarray(self.ids)
        if ids.shape != (n_lab,):
            raise InputError(src, f"{n_lab} labels but {ids.shape[0] if ids.ndim else 0} ids")
        if ids.dtype.kind in "iu":
            ids = ids.astype(np.int64)
        if self.counts is not None:
            counts = np.asarray(self.counts, dtype=np.float32)
            if counts.shape != labels.shape:
                raise InputError(src, f"counts shape {counts.shape} != labels shape {labels.shape}")
            self.counts = counts
        self.labels = labels
        self.ids = ids
        self.label_names = tuple(str(n) for n in self.label_names)
        self.bands = tuple(str(b) for b in self.bands)

    def _source_text(self) -> str | None:
        if self.source is None:
            return None
        if isinstance(self.source, tuple):
            return ", ".join(map(str, self.source))
        return str(self.source)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_outputs(self) -> int:
        """K, the number of label columns."""
        return int(self.labels.shape[1])

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as a native float32 ``(C, H, W)`` array (read on demand)."""
        return _as_image(self.images[int(index)], channels_last=False, scale=None)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ClassificationData:
        """The rows ``indices`` (in that order). Lazy images stay lazy (no pixels are read)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"subset indices out of range for {n} rows")
        images = self.images
        if hasattr(images, "take") and not isinstance(images, np.ndarray):
            images = images.take(idx)
        elif isinstance(images, np.ndarray) and not is_memory_mapped(images):
            images = images[idx]
        else:  # memmap / h5-like: keep it lazy
            images = ArrayImages(images).take(idx)
        return dataclasses.replace(
            self,
            images=images,
            labels=self.labels[idx],
            ids=self.ids[idx],
            counts=None if self.counts is None else self.counts[idx],
        )

    @property
    def task_spec(self) -> Task:
        """The :class:`~clumpdet.tasks.Task` of these labels (outputs named ``label_names``)."""
        return get_task(self.task, label_names=self.label_names)

    def class_index(self) -> np.ndarray:
        """int64 (N,) class of each row (:meth:`Task.class_index`), for stratified splits.

        Binary tasks: the 0/1 label; one-hot tasks: the class index; vote tasks: the answer with
        the largest fraction (for ``gz_votes``, of Q1: smooth / features / star).
        """
        return self.task_spec.class_index(self.labels)


def _csv_rows(ids: Sequence[Any], id_column: str, lines: Sequence[int] | None = None) -> RowName:
    def name(i: int) -> str:
        line = i + 2 if lines is None else int(lines[i])
        return f"line {line} ({id_column} {ids[i]})"

    return name


def _check_labels(
    labels: np.ndarray,
    *,
    task: str,
    names: Sequence[str],
    source: str | Path,
    row: RowName,
    tol: float | None = 0.05,
) -> None:
    """Raise InputError on labels that ``task`` (outputs ``names``) cannot use."""
    get_task(task, label_names=names).check_labels(labels, source=source, row=row, tol=tol)


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------


def _need_file(path: str | Path, what: str = "file") -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(p, f"{what} not found")
    return p


def _need_dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise InputError(p, "image folder not found")
    return p


def _binary_labels(raw: np.ndarray, source: Path) -> np.ndarray:
    lab = np.asarray(raw)
    if lab.ndim == 2 and lab.shape[1] == 1:
        lab = lab[:, 0]
    if lab.ndim != 1:
        raise InputError(source, f"expected labels of shape (N,), got {lab.shape}")
    if lab.dtype.kind not in "biuf":
        raise InputError(source, f"labels must be numbers 0/1, got dtype {lab.dtype}")
    out = lab.astype(np.float32)[:, None]
    _check_labels(out, task="merger", names=("merger",), source=source, row=array_row)
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

    path = _need_file(path)
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


def _channels_last(shape: tuple[int, ...]) -> bool:
    """(N, H, W, C) when the last axis is small and smaller than axis 1."""
    return len(shape) == 4 and shape[3] <= 16 and shape[3] < shape[1]


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
    images_path = _need_file(images_path, "images file")
    labels_path = _need_file(labels_path, "labels file")
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
    view = MappedArray(images_path, kind="npy", channels_last=_channels_last(images.shape))
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


def _ids_from_strings(values: Sequence[str]) -> np.ndarray:
    """int64 ids when every value is a canonical integer, else str ids."""
    vals = [str(v).strip() for v in values]
    if vals and all(re.fullmatch(r"-?[1-9]\d{0,17}|0", v) for v in vals):
        return np.array([int(v) for v in vals], dtype=np.int64)
    return np.array(vals, dtype=str)


def _read_csv(
    path: Path, *, str_columns: Sequence[str] = (), nrows: int | None = None
) -> pd.DataFrame:
    try:
        df = pd.read_csv(
            path, dtype={c: str for c in str_columns}, skipinitialspace=True, nrows=nrows
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(path, f"not a readable CSV file ({first})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _need_columns(df: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(path, f"missing {len(missing)} column(s): {shown}")


def _float_block(df: pd.DataFrame, columns: Sequence[str], path: Path, row: RowName) -> np.ndarray:
    block = df[list(columns)].apply(pd.to_numeric, errors="coerce")
    bad = block.isna().to_numpy() & df[list(columns)].notna().to_numpy()
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(
            path, f"{row(int(r))}: {columns[c]} = {df[columns[c]].iloc[r]!r} is not a number"
        )
    return block.to_numpy(dtype=np.float32)


def _image_files(
    names: Sequence[str],
    images_dir: Path,
    csv_path: Path,
    *,
    missing: Literal["raise", "drop"] = "raise",
) -> tuple[list[Path], np.ndarray]:
    """Paths of ``images_dir / name``; missing ones raise (or are dropped, with a warning).

    Returns the paths that exist and the boolean keep-mask over ``names``.
    """
    paths = [images_dir / n for n in names]
    exists = np.array([p.is_file() for p in paths], dtype=bool)
    n_missing = int((~exists).sum())
    if n_missing:
        first = paths[int(np.argmin(exists))]
        if missing == "raise":
            raise InputError(
                first,
                f"image file not found ({n_missing} of {len(paths)} images listed in "
                f"{csv_path.name} are missing)",
            )
        warnings.warn(
            f"{images_dir}: dropping {n_missing} of {len(paths)} galaxies whose image is "
            f"missing (first: {first.name})",
            stacklevel=3,
        )
    return [p for p, e in zip(paths, exists) if e], exists


def _check_unique(ids: np.ndarray, path: Path, column: str) -> None:
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise InputError(path, f"{len(dup)} repeated {column} value(s), e.g. {dup[0]}")


def read_gz_kaggle(
    csv_path: str | Path,
    images_dir: str | Path,
    *,
    tol: float | None = 0.05,
    missing: Literal["raise", "drop"] = "raise",
) -> ClassificationData:
    """Read the Galaxy Zoo Kaggle challenge set: ``training_solutions_rev1.csv`` + JPEG folder.

    Parameters
    ----------
    csv_path : str or Path
        CSV with ``GalaxyID`` and the 37 columns ``Class1.1 ... Class11.6`` (any column order;
        extra columns ignored): cumulative vote fractions.
    images_dir : str or Path
        Folder of ``<GalaxyID>.jpg`` (424x424 RGB).
    tol : float or None
        Allowed difference between a question's sum and its parent answer
        (:func:`clumpdet.tasks.gz_tree.check_tree_consistency`); ``None`` skips the check.
    missing : {"raise", "drop"}
        Missing image files are an error (default) or dropped with a warning.

    Returns
    -------
    ClassificationData
        ``task="gz_votes"``, labels (N, 37), bands ``("R", "G", "B")``, ids the GalaxyIDs,
        images a :class:`FileImages` (JPEGs read on access as (3, H, W) float32 in [0, 1]).

    Raises
    ------
    InputError
        Missing columns, repeated ids, non-numeric/NaN/out-of-range fractions, fractions
        inconsistent with the tree (naming the line, GalaxyID and question), missing images.
    """
    csv_path = _need_file(csv_path, "label file")
    images_dir = _need_dir(images_dir)
    df = _read_csv(csv_path, str_columns=("GalaxyID",))
    _need_columns(df, ("GalaxyID", *gz_tree.ANSWER_NAMES), csv_path)
    if df.empty:
        raise InputError(csv_path, "no rows")
    if df["GalaxyID"].isna().any():
        r = int(np.argmax(df["GalaxyID"].isna().to_numpy()))
        raise InputError(csv_path, f"line {r + 2}: GalaxyID is empty")
    id_text = df["GalaxyID"].str.strip().tolist()
    ids = _ids_from_strings(id_text)
    _check_unique(ids, csv_path, "GalaxyID")
    row = _csv_rows(id_text, "GalaxyID")
    labels = _float_block(df, gz_tree.ANSWER_NAMES, csv_path, row)
    _check_labels(
        labels, task="gz_votes", names=gz_tree.ANSWER_NAMES, source=csv_path, row=row, tol=tol
    )
    paths, keep = _image_files([f"{i}.jpg" for i in id_text], images_dir, csv_path, missing=missing)
    if not keep.any():
        raise InputError(images_dir, "none of the listed images exist")
    return ClassificationData(
        images=FileImages(paths),
        labels=labels[keep],
        task="gz_votes",
        label_names=gz_tree.ANSWER_NAMES,
        bands=_RGB,
        ids=ids[keep],
        source=csv_path,
    )


def _find_column(columns: Sequence[str], wanted: str) -> str | None:
    low = {c.lower(): c for c in columns}
    return low.get(wanted.lower())


def read_gz2(
    hart16_csv: str | Path,
    mapping_csv: str | Path,
    images_dir: str | Path,
    *,
    tol: float | None = 0.05,
    missing: Literal["raise", "drop"] = "raise",
) -> ClassificationData:
    """Read Galaxy Zoo 2: ``gz2_hart16.csv`` + ``gz2_filename_mapping.csv`` + JPEG folder.

    The 37 ``*_debiased`` columns (Hart et al. 2016) are *per-question* fractions. Each
    question's answers are renormalised to sum to 1 (or left at 0 when nobody answered it) and
    multiplied by the parent answer (:func:`clumpdet.tasks.gz_tree.normalise`), giving
    Kaggle-style cumulative fractions in :data:`~clumpdet.tasks.gz_tree.ANSWER_NAMES` order
    (GZ2 task ``tNN`` is Kaggle ``ClassNN``; see :data:`~clumpdet.tasks.gz_tree.GZ2_COLUMNS`).

    Parameters
    ----------
    hart16_csv : str or Path
        Needs ``dr7objid`` (or ``objid``) and the 37 ``<stem>_debiased`` columns; the matching
        ``<stem>_count`` columns, when all present, become :attr:`ClassificationData.counts`.
    mapping_csv : str or Path
        ``objid, sample, asset_id``: the image of ``objid`` is ``<asset_id>.jpg``. An objid
        listed more than once uses its first row.
    images_dir : str or Path
        Folder of the JPEGs.
    tol : float or None
        A question whose debiased answers sum to neither ~0 nor ~1 (within ``tol``) is an error;
        ``None`` skips the check.
    missing : {"raise", "drop"}
        Missing image files are an error (default) or dropped with a warning. Galaxies with no
        mapping row are always dropped with a warning.

    Returns
    -------
    ClassificationData
        ``task="gz_votes"``, labels (N, 37) cumulative fractions, optional counts (N, 37),
        ids the dr7objids, bands ``("R", "G", "B")``, images a :class:`FileImages`.

    Raises
    ------
    InputError
        Missing columns, NaN fractions in answered questions, fractions outside [0, 1] or
        questions that do not sum to 1, no galaxy with a mapping, missing images.
    """
    hart = _need_file(hart16_csv, "GZ2 table")
    mapping = _need_file(mapping_csv, "filename mapping")
    images_dir = _need_dir(images_dir)
    head = _read_csv(hart, nrows=0).columns.tolist()
    id_col = _find_column(head, "dr7objid") or _find_column(head, "objid")
    if id_col is None:
        raise InputError(hart, "no 'dr7objid' (or 'objid') column")
    df = _read_csv(hart, str_columns=(id_col,))
    frac_cols, count_cols = [], []
    for stem in gz_tree.GZ2_COLUMNS:
        frac_cols.append(_find_column(df.columns, f"{stem}_debiased") or f"{stem}_debiased")
        count_cols.append(_find_column(df.columns, f"{stem}_count"))
    _need_columns(df, frac_cols, hart)
    if df.empty:
        raise InputError(hart, "no rows")
    mp = _read_csv(mapping, str_columns=("objid", "asset_id"))
    _need_columns(mp, ("objid", "asset_id"), mapping)
    mp = mp.dropna(subset=["objid", "asset_id"])
    asset = dict(
        zip(mp["objid"].str.strip()[::-1], mp["asset_id"].str.strip()[::-1])
    )  # reversed: the first row of a repeated objid wins
    obj_text = df[id_col].fillna("").str.strip().tolist()
    has_map = np.array([o in asset for o in obj_text], dtype=bool)
    if not has_map.any():
        raise InputError(
            mapping, f"none of the {len(df)} {id_col} values of {hart.name} are mapped"
        )
    if not has_map.all():
        warnings.warn(
            f"{mapping}: {int((~has_map).sum())} of {len(df)} galaxies have no asset_id; dropped",
            stacklevel=2,
        )
    lines = np.flatnonzero(has_map) + 2
    df = df[has_map].reset_index(drop=True)
    obj_text = [o for o, k in zip(obj_text, has_map) if k]
    ids = _ids_from_strings(obj_text)
    _check_unique(ids, hart, id_col)
    row = _csv_rows(obj_text, id_col, lines)
    per_q = _float_block(df, frac_cols, hart, row).astype(np.float64)
    counts = None
    if all(c is not None for c in count_cols):
        counts = _float_block(df, count_cols, hart, row)
    slices = gz_tree.question_slices()
    for q, sl in slices.items():
        block = per_q[:, sl]
        nan = np.isnan(block)
        if counts is not None:  # unanswered question: NaN fractions are just "no votes"
            unanswered = np.nan_to_num(counts[:, sl]).sum(axis=1) == 0
            block[nan & unanswered[:, None]] = 0.0
            nan = np.isnan(block)
        if nan.any():
            r, c = np.argwhere(nan)[0]
            raise InputError(hart, f"{row(int(r))}: {frac_cols[sl.start + c]} is NaN")
        if ((block < 0) | (block > 1 + 1e-6)).any():
            r, c = np.argwhere((block < 0) | (block > 1 + 1e-6))[0]
            raise InputError(
                hart,
                f"{row(int(r))}: {frac_cols[sl.start + c]} = {block[r, c]:g} is outside [0, 1]",
            )
        total = block.sum(axis=1)
        if tol is not None:
            wrong = (total > tol) & (np.abs(total - 1.0) > tol)
            if wrong.any():
                r = int(np.argmax(wrong))
                raise InputError(
                    hart,
                    f"{row(r)}: vote fractions inconsistent with the Galaxy Zoo tree: question "
                    f"{q} ({gz_tree.QUESTIONS[q - 1].text}) debiased answers sum to "
                    f"{total[r]:.3f}, expected 1 (or 0 if unanswered; tolerance {tol}; "
                    f"{int(wrong.sum())} row(s) affected)",
                )
        per_q[:, sl] = block
    labels = gz_tree.normalise(per_q, method="sum").astype(np.float32)
    _check_labels(labels, task="gz_votes", names=gz_tree.ANSWER_NAMES, source=hart, row=row)
    names = [f"{asset[o]}.jpg" for o in obj_text]
    paths, keep = _image_files(names, images_dir, mapping, missing=missing)
    if not keep.any():
        raise InputError(images_dir, "none of the mapped images exist")
    return ClassificationData(
        images=FileImages(paths),
        labels=labels[keep],
        task="gz_votes",
        label_names=gz_tree.ANSWER_NAMES,
        bands=_RGB,
        ids=ids[keep],
        source=(hart, mapping),
        counts=None if counts is None else np.nan_to_num(counts[keep]),
    )


def _npz_key(keys: Sequence[str], options: Sequence[str], given: str | None) -> str | None:
    if given is not None:
        return given if given in keys else None
    return next((k for k in options if k in keys), None)


def read_four_class_npz(
    path: str | Path, *, image_key: str | None = None, label_key: str | None = None
) -> ClassificationData:
    """Read the four-class Galaxy Zoo set (normal, ringed, merger, other) from an ``.npz``.

    Parameters
    ----------
    path : str or Path
        ``.npz`` with images (N, 128, 128, 3) (channels-last detected; (N, C, H, W) also read)
        and labels: one-hot (N, 4) in :data:`FOUR_CLASS_LABELS` order, or class indices (N,).
        uint8 images are scaled to [0, 1].
    image_key, label_key : str, optional
        Array names; default the first of ``images``/``x``/``X`` and ``labels``/``y``/``Y``.

    Returns
    -------
    ClassificationData
        ``task="four_class"``, one-hot labels (N, 4), ids 0..N-1, images in memory
        (:class:`ArrayImages`).

    Raises
    ------
    InputError
        Unreadable file, keys not found (naming the keys present), count mismatch, NaN labels
        or a row that is not one-hot (naming the row index).
    """
    path = _need_file(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            ik = _npz_key(keys, ("images", "x", "X"), image_key)
            lk = _npz_key(keys, ("labels", "y", "Y"), label_key)
            if ik is None or lk is None:
                want = (
                    f"{image_key!r}/{label_key!r}"
                    if image_key or label_key
                    else "images/x/X and labels/y/Y"
                )
                raise InputError(path, f"expected arrays {want}; the file has {keys}")
            images = npz[ik]
            raw = npz[lk]
    except (OSError, ValueError, EOFError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(path, f"not a readable .npz file ({exc})") from None
    if images.ndim != 4:
        raise InputError(path, f"{ik!r}: expected (N, H, W, C) images, got shape {images.shape}")
    if len(images) != len(raw):
        raise InputError(path, f"{len(images)} images ({ik!r}) but {len(raw)} labels ({lk!r})")
    if raw.ndim == 1 and raw.dtype.kind in "iu":
        if raw.min(initial=0) < 0 or raw.max(initial=0) > 3:
            r = int(np.argmax((raw < 0) | (raw > 3)))
            raise InputError(path, f"{lk!r} row {r}: class index {raw[r]} is not in 0..3")
        labels = np.eye(4, dtype=np.float32)[raw]
    elif raw.ndim == 2 and raw.shape[1] == 4:
        labels = raw.astype(np.float32)
    else:
        raise InputError(path, f"{lk!r}: expected one-hot labels (N, 4), got shape {raw.shape}")
    _check_labels(labels, task="four_class", names=FOUR_CLASS_LABELS, source=path, row=array_row)
    scale = 1.0 / 255.0 if images.dtype == np.uint8 else None
    view = ArrayImages(images, channels_last=_channels_last(images.shape), scale=scale)
    return ClassificationData(
        images=view,
        labels=labels,
        task="four_class",
        label_names=FOUR_CLASS_LABELS,
        bands=_RGB
        if view.shape[1] == 3
        else tuple(f"band{i}" for i in range(1, view.shape[1] + 1)),
        ids=np.arange(len(labels), dtype=np.int64),
        source=path,
    )


def _folder_data(
    df: pd.DataFrame,
    *,
    csv_path: Path,
    images_dir: Path,
    label_columns: Sequence[str],
    label_names: Sequence[str],
    id_column: str,
    image_pattern: str,
    task: str,
    nan_policy: NanPolicy,
    missing: Literal["raise", "drop"],
    default_bands: tuple[str, ...] | None = None,
) -> ClassificationData:
    if df.empty:
        raise InputError(csv_path, "no rows")
    if df[id_column].isna().any():
        r = int(np.argmax(df[id_column].isna().to_numpy()))
        raise InputError(csv_path, f"line {r + 2}: {id_column} is empty")
    id_text = df[id_column].str.strip().tolist()
    ids = _ids_from_strings(id_text)
    _check_unique(ids, csv_path, id_column)
    row = _csv_rows(id_text, id_column)
    labels = _float_block(df, label_columns, csv_path, row)
    _check_labels(labels, task=task, names=label_names, source=csv_path, row=row)
    try:
        names = [image_pattern.format(id=i) for i in id_text]
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"image_pattern {image_pattern!r} must use only {{id}} ({exc})") from None
    paths, keep = _image_files(names, images_dir, csv_path, missing=missing)
    if not keep.any():
        raise InputError(images_dir, "none of the listed images exist")
    first = read_image(paths[0], nan_policy=nan_policy)
    bands = first.bands
    if (
        default_bands is not None
        and not first.band_names_known
        and len(bands) == len(default_bands)
    ):
        bands = default_bands
    return ClassificationData(
        images=FileImages(paths, nan_policy=nan_policy),
        labels=labels[keep],
        task=task,
        label_names=tuple(label_names),
        bands=bands,
        ids=ids[keep],
        source=csv_path,
    )


def read_candels_csv(
    csv_path: str | Path,
    images_dir: str | Path,
    *,
    id_column: str = "ID",
    image_pattern: str = "{id}.fits",
    columns: Sequence[str] | None = None,
    band: str = "F160W",
    nan_policy: NanPolicy = "raise",
    missing: Literal["raise", "drop"] = "raise",
) -> ClassificationData:
    """Read CANDELS morphology (Huertas-Company et al. 2015): vote fractions + H-band cutouts.

    Parameters
    ----------
    csv_path : str or Path
        CSV with ``id_column`` and five vote-fraction columns (spheroid, disk,
        irregular/peculiar, point source/compact, unclassifiable), each in [0, 1]; they need not
        sum to 1 (classifiers could tick several).
    images_dir : str or Path
        Folder of FITS cutouts named by ``image_pattern``.
    id_column : str
        Id column; its text (leading zeros kept) fills ``{id}`` in ``image_pattern``.
    image_pattern : str
        File name of a galaxy's cutout, e.g. ``"{id}.fits"`` or ``"cut_{id}_H.fits.gz"``.
    columns : sequence of 5 str, optional
        The five label columns in :data:`CANDELS_LABELS` order. Default: found by name
        (case-insensitive) among :data:`CANDELS_ALIASES` (``spheroid`` or ``f_spheroid`` ...).
    band : str
        Band name given to single-plane cutouts that do not name their band.
    nan_policy : {"raise", "zero", "median"}
        NaN pixels in a cutout (see :func:`clumpdet.data.images.read_image`).
    missing : {"raise", "drop"}
        Missing cutouts are an error (default) or dropped with a warning.

    Returns
    -------
    ClassificationData
        ``task="candels"``, labels (N, 5), images a :class:`FileImages`.

    Raises
    ------
    InputError
        Missing columns, NaN or out-of-range fractions, missing cutouts, unreadable files.
    """
    csv_path = _need_file(csv_path, "label file")
    images_dir = _need_dir(images_dir)
    df = _read_csv(csv_path, str_columns=(id_column,))
    if columns is None:
        found = []
        for name in CANDELS_LABELS:
            col = next(
                (c for a in CANDELS_ALIASES[name] if (c := _find_column(df.columns, a))), None
            )
            if col is None:
                raise InputError(
                    csv_path,
                    f"no column for {name!r} (tried {', '.join(CANDELS_ALIASES[name])}); "
                    "name the five columns with columns=",
                )
            found.append(col)
        columns = found
    elif len(columns) != 5:
        raise ConfigError(f"CANDELS needs 5 label columns {CANDELS_LABELS}, got {list(columns)}")
    _need_columns(df, (id_column, *columns), csv_path)
    return _folder_data(
        df,
        csv_path=csv_path,
        images_dir=images_dir,
        label_columns=list(columns),
        label_names=CANDELS_LABELS,
        id_column=id_column,
        image_pattern=image_pattern,
        task="candels",
        nan_policy=nan_policy,
        missing=missing,
        default_bands=(band,),
    )


def read_image_folder(
    csv_path: str | Path,
    images_dir: str | Path,
    *,
    label_columns: Sequence[str],
    id_column: str,
    image_pattern: str = "{id}",
    task: str,
    nan_policy: NanPolicy = "raise",
    missing: Literal["raise", "drop"] = "raise",
) -> ClassificationData:
    """Read a generic image folder plus a CSV whose label columns are named by the caller.

    Parameters
    ----------
    csv_path : str or Path
        CSV with ``id_column`` and ``label_columns``.
    images_dir : str or Path
        Folder of FITS/PNG/JPEG files (read with :func:`clumpdet.data.images.read_image`).
    label_columns : sequence of str
        ``merger``: one 0/1 column; ``four_class``: four one-hot columns; ``gz_votes``: the 37
        cumulative fractions in Kaggle order; ``candels``: five fractions.
    id_column : str
        Id column; its text fills ``{id}`` in ``image_pattern`` (so a column of file names
        works with the default ``"{id}"``).
    image_pattern : str
        File name pattern, e.g. ``"{id}.png"``.
    task : str
        A registered task (:data:`clumpdet.tasks.TASKS`); label names are the column names.
    nan_policy, missing
        As for :func:`read_candels_csv`.

    Returns
    -------
    ClassificationData
        Images a :class:`FileImages`; bands from the first image file.

    Raises
    ------
    InputError
        Missing columns, labels that fail the task's checks, missing or unreadable images.
    ConfigError
        Unknown task, wrong number of label columns, bad pattern.
    """
    label_columns = [str(c) for c in label_columns]
    if not label_columns:
        raise ConfigError("read_image_folder: label_columns must not be empty")
    get_task(task, label_names=label_columns)  # checks the task and the number of columns
    csv_path = _need_file(csv_path, "label file")
    images_dir = _need_dir(images_dir)
    df = _read_csv(csv_path, str_columns=(id_column,))
    _need_columns(df, (id_column, *label_columns), csv_path)
    return _folder_data(
        df,
        csv_path=csv_path,
        images_dir=images_dir,
        label_columns=label_columns,
        label_names=label_columns,
        id_column=id_column,
        image_pattern=image_pattern,
        task=task,
        nan_policy=nan_policy,
        missing=missing,
    )


#: ``source`` names of :func:`load_data` (config ``data.source``).
SOURCES: tuple[str, ...] = (
    "deepmerge_fits",
    "deepmerge_npy",
    "gz_kaggle",
    "gz2",
    "four_class_npz",
    "candels",
    "folder",
)


def load_data(
    *,
    source: str,
    path: str | Path | None = None,
    labels: str | Path | None = None,
    images_dir: str | Path | None = None,
    mapping: str | Path | None = None,
    label_columns: Sequence[str] = (),
    task: str | None = None,
    id_column: str | None = None,
    image_pattern: str | None = None,
) -> ClassificationData:
    """Dispatch to the reader of ``source`` with config-style arguments.

    =================  ===================================================================
    source             arguments
    =================  ===================================================================
    deepmerge_fits     ``path`` (HLSP FITS)
    deepmerge_npy      ``path`` (images .npy), ``labels`` (labels .npy)
    gz_kaggle          ``labels`` or ``path`` (CSV), ``images_dir``
    gz2                ``labels`` or ``path`` (hart16 CSV), ``mapping``, ``images_dir``
    four_class_npz     ``path``
    candels            ``labels`` or ``path`` (CSV), ``images_dir``; optional
                       ``label_columns`` (5), ``id_column`` (``ID``), ``image_pattern``
    folder             ``labels`` or ``path`` (CSV), ``images_dir``, ``label_columns``,
                       ``task``; optional ``id_column`` (``id``), ``image_pattern`` (``{id}``)
    =================  ===================================================================

    Raises
    ------
    ConfigError
        Unknown source or a required argument missing.
    InputError
        From the readers.
    """

    def need(**kw: Any) -> None:
        missing = [k for k, v in kw.items() if v in (None, "", ())]
        if missing:
            raise ConfigError(f"data source {source!r} needs {', '.join(missing)}")

    csv = labels if labels not in (None, "") else path
    if source == "deepmerge_fits":
        need(path=path)
        return read_deepmerge_fits(path)  # type: ignore[arg-type]
    if source == "deepmerge_npy":
        need(path=path, labels=labels)
        return read_deepmerge_npy(path, labels)  # type: ignore[arg-type]
    if source == "gz_kaggle":
        need(labels=csv, images_dir=images_dir)
        return read_gz_kaggle(csv, images_dir)  # type: ignore[arg-type]
    if source == "gz2":
        need(labels=csv, mapping=mapping, images_dir=images_dir)
        return read_gz2(csv, mapping, images_dir)  # type: ignore[arg-type]
    if source == "four_class_npz":
        need(path=path)
        return read_four_class_npz(path)  # type: ignore[arg-type]
    if source == "candels":
        need(labels=csv, images_dir=images_dir)
        return read_candels_csv(
            csv,  # type: ignore[arg-type]
            images_dir,  # type: ignore[arg-type]
            id_column=id_column or "ID",
            image_pattern=image_pattern or "{id}.fits",
            columns=list(label_columns) or None,
        )
    if source == "folder":
        need(labels=csv, images_dir=images_dir, label_columns=tuple(label_columns), task=task)
        return read_image_folder(
            csv,  # type: ignore[arg-type]
            images_dir,  # type: ignore[arg-type]
            label_columns=label_columns,
            id_column=id_column or "id",
            image_pattern=image_pattern or "{id}",
            task=task,  # type: ignore[arg-type]
        )
    raise ConfigError(f"unknown data source {source!r}; choose from {', '.join(SOURCES)}")


# --------------------------------------------------------------------------------------------
# Augmentation, splits and the Dataset
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GalaxyAugmentation:
    """Geometric augmentation for galaxy cutouts; never touches pixel values' scale or colour.

    Parameters
    ----------
    rot90 : bool
        Rotate by a random multiple of 90 degrees (exact, no interpolation).
    flips : bool
        Random horizontal flip (with ``rot90`` this covers all 8 dihedral views).
    rotate : bool
        Rotate by a uniform random angle in [0, 360) degrees (bilinear, reflect padding).
    zoom : float
        Maximum scale jitter: the scale is log-uniform in ``[1 / (1 + zoom), 1 + zoom]``
        (0 disables; Dieleman et al. used about 1.3).
    shift : float
        Maximum translation as a fraction of the image size (0 disables).

    Notes
    -----
    Rotation, zoom and shift are applied together with one ``grid_sample`` (bilinear,
    ``padding_mode="reflection"``) that keeps the image size; with all three off only exact
    pixel permutations are used.
    """

    rot90: bool = True
    flips: bool = True
    rotate: bool = False
    zoom: float = 0.0
    shift: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.zoom) and 0 <= self.zoom <= 1):
            raise ConfigError(f"augmentation zoom must be in [0, 1], got {self.zoom}")
        if not (math.isfinite(self.shift) and 0 <= self.shift <= 0.5):
            raise ConfigError(f"augmentation shift must be in [0, 0.5], got {self.shift}")

    def __call__(
        self, image: torch.Tensor, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Augment one ``(C, H, W)`` float tensor; returns a new tensor of the same shape."""

        def rand(n: int = 1) -> torch.Tensor:
            return torch.rand(n, generator=generator, dtype=torch.float64)

        x = image
        if self.flips and rand().item() < 0.5:
            x = torch.flip(x, dims=(2,))
        if self.rot90:
            k = int(rand().item() * 4) % 4
            if k and x.shape[1] == x.shape[2]:
                x = torch.rot90(x, k, dims=(1, 2))
            elif k == 2:
                x = torch.flip(x, dims=(1, 2))
        if not (self.rotate or self.zoom > 0 or self.shift > 0):
            return x.contiguous()
        angle = float(rand().item() * 2 * math.pi) if self.rotate else 0.0
        log_z = math.log1p(self.zoom)
        scale = math.exp((2 * float(rand().item()) - 1) * log_z) if self.zoom > 0 else 1.0
        tx, ty = ((2 * rand(2) - 1) * 2 * self.shift).tolist() if self.shift > 0 else (0.0, 0.0)
        h, w = x.shape[1], x.shape[2]
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        # output -> input map in pixel units is R / scale; in normalised units D^-1 (R/s) D
        theta = torch.tensor(
            [[cos, -sin * h / w, tx], [sin * w / h, cos, ty]], dtype=x.dtype
        ).unsqueeze(0)
        grid = torch.nn.functional.affine_grid(theta, [1, *x.shape], align_corners=False)
        out = torch.nn.functional.grid_sample(
            x.unsqueeze(0), grid, mode="bilinear", padding_mode="reflection", align_corners=False
        )
        return out[0]


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    fr = [float(f) for f in fractions]
    if not fr or any(not (f > 0 and math.isfinite(f)) for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be positive and sum to 1, got {list(fractions)}")
    return fr


def stratified_split(
    labels_1d: Sequence[int] | np.ndarray,
    *,
    fractions: Sequence[float] = (0.8, 0.2),
    seed: int = 0,
) -> tuple[np.ndarray, ...]:
    """Split row indices into parts with the same class mix, deterministically.

    Each class's rows are permuted with ``numpy.random.default_rng(seed)`` and cut at
    ``round(cumsum(fractions) * n_class)``, so every part gets (to within one row) its share
    of every class.

    Parameters
    ----------
    labels_1d : array-like, shape (N,)
        Class of each row (ints or strings). A 2-D array (one-hot or fractions) is reduced
        with ``argmax`` over axis 1.
    fractions : sequence of float
        E.g. ``(0.8, 0.2)`` or ``(0.7, 0.1, 0.2)``; positive, summing to 1.
    seed : int
        Random seed.

    Returns
    -------
    tuple of ndarray of int64
        Sorted row indices of each part; together they hold every row once.

    Raises
    ------
    ConfigError
        Bad fractions.
    """
    fr = _check_fractions(fractions)
    lab = np.asarray(labels_1d)
    if lab.ndim == 2:
        lab = lab.argmax(axis=1)
    if lab.ndim != 1:
        raise InputError(None, f"stratified_split: expected labels of shape (N,), got {lab.shape}")
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(fr)
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for cls in np.unique(lab):
        rows = np.flatnonzero(lab == cls)
        rows = rows[rng.permutation(len(rows))]
        edges = [0, *np.round(cuts * len(rows)).astype(int).tolist()]
        edges[-1] = len(rows)
        for k in range(len(fr)):
            parts[k].append(rows[edges[k] : edges[k + 1]])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)


class ClassificationDataset(Dataset):
    """torch Dataset of ``(image, target)`` (and optionally ``counts``) for a classifier.

    Each item: read image ``i`` -> ``preprocessing`` (band selection, stretch and, with
    ``standardise``, mean/std) -> ``augmentation`` -> ``center_crop`` -> ``resize``.

    Parameters
    ----------
    data : ClassificationData
        The rows (use :meth:`ClassificationData.subset` for a split).
    preprocessing : Preprocessing, optional
        Bands are selected by name from ``data.bands``; if the names differ but the count
        matches, planes are taken in order. ``None``: pixels as read.
    standardise : bool
        Apply the preprocessing's mean/std (``Preprocessing.__call__``) or only the stretch
        (``Preprocessing.stretch_only``).
    center_crop : int, optional
        Side of a central square crop, pixels (Dieleman: 207 of 424).
    resize : int, optional
        Final side, pixels (bilinear with antialiasing; Dieleman: 69, then 45 px views).
    augmentation : GalaxyAugmentation, optional
        Applied before the crop, so rotated corners come from real pixels.
    return_counts : bool
        Items are ``(image, target, counts)``; needs ``data.counts``.
    cache : bool
        Keep preprocessed images (before augmentation) in memory after their first read.
    seed : int, optional
        Seed of the augmentation stream (each DataLoader worker reseeds from its own torch
        seed). Default: torch's global generator.

    Notes
    -----
    Items are ``image`` float32 tensor ``(C, H', W')`` and ``target`` float32 ``(K,)``
    (``counts`` float32 ``(K,)``).
    """

    def __init__(
        self,
        data: ClassificationData,
        *,
        preprocessing: Preprocessing | None = None,
        standardise: bool = True,
        center_crop: int | None = None,
        resize: int | None = None,
        augmentation: GalaxyAugmentation | None = None,
        return_counts: bool = False,
        cache: bool = False,
        seed: int | None = None,
    ) -> None:
        self.data = data
        self.preprocessing = preprocessing
        self.standardise = standardise
        for name, value in (("center_crop", center_crop), ("resize", resize)):
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name} must be a positive number of pixels, got {value}")
        self.center_crop = None if center_crop is None else int(center_crop)
        self.resize = None if resize is None else int(resize)
        self.augmentation = augmentation
        if return_counts and data.counts is None:
            raise ConfigError(
                f"return_counts: {data._source_text() or 'the data'} has no vote counts"
            )
        self.return_counts = return_counts
        self.cache = cache
        self._cache: dict[int, np.ndarray] = {}
        self._by_name = True
        if preprocessing is not None:
            if all(b in data.bands for b in preprocessing.bands):
                self._by_name = True
            elif len(preprocessing.bands) == len(data.bands):
                self._by_name = False
            else:
                raise InputError(
                    data._source_text(),
                    f"preprocessing bands {preprocessing.bands} are not among the data's "
                    f"bands {data.bands}",
                )
        self._generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        self._worker_seeded: int | None = None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def n_channels(self) -> int:
        """Channels of the network input."""
        return self.preprocessing.n_bands if self.preprocessing else len(self.data.bands)

    @property
    def image_size(self) -> tuple[int, int]:
        """``(H, W)`` of the items (reads image 0 when neither crop nor resize fix it)."""
        if self.resize is not None:
            return (self.resize, self.resize)
        h, w = self._raw(0).shape[1:]
        if self.center_crop is not None:
            return (min(h, self.center_crop), min(w, self.center_crop))
        return (h, w)

    def _raw(self, index: int) -> np.ndarray:
        cached = self._cache.get(index)
        if cached is not None:
            return cached
        img = self.data.image(index)
        prep = self.preprocessing
        if prep is not None:
            if self._by_name:
                from clumpdet.data.images import ImageData

                src = ImageData(data=img, bands=self.data.bands)
            else:
                src = img
            img = prep(src) if self.standardise else prep.stretch_only(src)
        img = np.ascontiguousarray(img, dtype=np.float32)
        if self.cache:
            self._cache[index] = img
        return img

    def load_image(self, index: int) -> torch.Tensor:
        """Image ``index`` preprocessed, cropped and resized, without augmentation."""
        return self._finish(torch.from_numpy(np.array(self._raw(index), copy=True)))

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        if self.center_crop is not None:
            h, w = x.shape[1:]
            s = self.center_crop
            top, left = max(0, (h - s) // 2), max(0, (w - s) // 2)
            x = x[:, top : top + s, left : left + s]
        if self.resize is not None and tuple(x.shape[1:]) != (self.resize, self.resize):
            x = torch.nn.functional.interpolate(
                x.unsqueeze(0),
                size=(self.resize, self.resize),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )[0]
        return x.contiguous()

    def _seed_worker(self) -> None:
        info = torch.utils.data.get_worker_info()
        if self._generator is None or info is None or self._worker_seeded == info.seed:
            return
        self._generator.manual_seed(int(info.seed % 2**63))
        self._worker_seeded = info.seed

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        x = torch.from_numpy(np.array(self._raw(index), copy=True))
        if self.augmentation is not None:
            self._seed_worker()
            x = self.augmentation(x, generator=self._generator)
        x = self._finish(x)
        target = torch.from_numpy(np.array(self.data.labels[index], dtype=np.float32))
        if self.return_counts:
            counts = torch.from_numpy(np.array(self.data.counts[index], dtype=np.float32))
            return x, target, counts
        return x, target
