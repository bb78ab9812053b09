"""The common in-memory form of galaxy-classification data and its lazily read image stacks.

Every reader (:mod:`clumpdet.data.readers`) returns a :class:`ClassificationData`: images
``(N, C, H, W)`` (an in-memory array or a lazily indexed one, so the ~2 GB DeepMerge file never
has to fit in RAM), float32 labels ``(N, K)``, optional vote counts, ids, band and label names,
and optionally an explicit train/val/test assignment per row.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clumpdet.data.images import ImageData, NanPolicy, read_image
from clumpdet.errors import ConfigError, InputError
from clumpdet.tasks import TASKS, Task, get_task


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


def _harmless_fits_warnings() -> tuple[type[Warning], ...]:
    """Warnings astropy raises when it fixes a non-standard FITS header (pixels are unaffected)."""
    from astropy.io.fits.verify import VerifyWarning
    from astropy.wcs import FITSFixedWarning

    return (VerifyWarning, FITSFixedWarning)


class FileImages:
    """Images stored one per file (FITS/PNG/JPEG) or one file per band, read on access.

    Known-harmless FITS header warnings (astropy ``VerifyWarning`` / ``FITSFixedWarning``: a
    non-standard card that astropy fixes while reading) are silenced; the first time one occurs
    a single warning says what was fixed (once per image set and process). Other warnings pass
    through.

    Parameters
    ----------
    paths : sequence of Path or of tuples of Path
        One file per galaxy, or a tuple of single-band files per galaxy (stacked in order; all
        of the same size).
    nan_policy : {"raise", "zero", "median"}
        Passed to :func:`~clumpdet.data.images.read_image`.
    """

    def __init__(
        self,
        paths: Sequence[str | Path | tuple[str | Path, ...]],
        *,
        nan_policy: NanPolicy = "raise",
    ) -> None:
        self.paths: tuple[Path | tuple[Path, ...], ...] = tuple(
            Path(p) if isinstance(p, (str, Path)) else tuple(Path(b) for b in p) for p in paths
        )
        self.nan_policy = nan_policy
        self._told = [False]  # shared by take() views: report fixed headers once

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, index: int) -> ImageData:
        """Image ``index`` as :class:`~clumpdet.data.images.ImageData` (with band names)."""
        path = self.paths[int(index)]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = read_image(
                path if isinstance(path, Path) else list(path), nan_policy=self.nan_policy
            )
        harmless = _harmless_fits_warnings()
        fixed = [w for w in caught if issubclass(w.category, harmless)]
        for w in caught:
            if not issubclass(w.category, harmless):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if fixed and not self._told[0]:
            self._told[0] = True
            texts = [" ".join(str(w.message).split()) for w in fixed]
            boilerplate = ("Verification reported errors", "zero-based indexing")
            texts = [t for t in texts if not any(b in t for b in boilerplate)] or texts
            name = path if isinstance(path, Path) else path[0]
            what = texts[0].removeprefix(f"{name}: ")
            if len(what) > 200:
                what = what[:197] + "..."
            warnings.warn(
                f"{name}: astropy fixed a non-standard FITS header ({what}); the pixels are read "
                "as usual and such header warnings are not repeated for the other files",
                stacklevel=2,
            )
        return image

    def __getitem__(self, index: int) -> np.ndarray:
        return self.read(index).data

    def take(self, indices: Sequence[int] | np.ndarray) -> FileImages:
        """The files at ``indices``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        new = FileImages([self.paths[i] for i in idx], nan_policy=self.nan_policy)
        new._told = self._told
        return new


def is_memory_mapped(array: Any) -> bool:
    """True if ``array`` (or a base it views) is backed by a memory map rather than RAM."""
    import mmap

    obj = array
    while obj is not None:
        if isinstance(obj, (np.memmap, mmap.mmap)):
            return True
        obj = getattr(obj, "base", None)
    return False


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
    split : ndarray of str, shape (N,), optional
        ``"train"``, ``"val"`` or ``"test"`` per row when the source assigns the split
        (``data.split_column``).
    input : dict, optional
        What the pixels are, as a checkpoint ``input`` record (:mod:`clumpdet.checkpoints`),
        when the reader knows it without an image file: a simulated folder's float arrays are
        ``{"kind": "fits", "unit": <the simulator's unit>}``. ``None``: the trainer derives it
        from the first image file (:class:`FileImages`), or records it as unknown.
    """

    images: Any
    labels: np.ndarray
    task: str
    label_names: tuple[str, ...]
    bands: tuple[str, ...]
    ids: np.ndarray
    source: Path | tuple[Path, ...] | None = None
    counts: np.ndarray | None = None
    split: np.ndarray | None = None
    input: dict[str, str] | None = None

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
        if self.split is not None:
            split = np.asarray(self.split, dtype=str)
            if split.shape != (n_lab,):
                raise InputError(src, f"{n_lab} labels but split of shape {split.shape}")
            self.split = split
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
            split=None if self.split is None else self.split[idx],
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
