"""The four-class Galaxy Zoo set (normal, ringed, merger, other) from an ``.npz`` file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clumpdet.data.containers import ArrayImages, ClassificationData
from clumpdet.data.readers.common import (
    RGB,
    SOURCES,
    SourceArgs,
    channels_last,
    check_labels,
    need_file,
)
from clumpdet.errors import InputError
from clumpdet.tasks.base import array_row
from clumpdet.tasks.four_class import FOUR_CLASS_LABELS


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
    path = need_file(path)
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
    check_labels(labels, task="four_class", names=FOUR_CLASS_LABELS, source=path, row=array_row)
    scale = 1.0 / 255.0 if images.dtype == np.uint8 else None
    view = ArrayImages(images, channels_last=channels_last(images.shape), scale=scale)
    return ClassificationData(
        images=view,
        labels=labels,
        task="four_class",
        label_names=FOUR_CLASS_LABELS,
        bands=RGB if view.shape[1] == 3 else tuple(f"band{i}" for i in range(1, view.shape[1] + 1)),
        ids=np.arange(len(labels), dtype=np.int64),
        source=path,
    )


@SOURCES.register("four_class_npz", help="four-class Galaxy Zoo .npz (images + one-hot labels)")
def _load_npz(args: SourceArgs) -> ClassificationData:
    args.need("path")
    args.refuse("id_column", "image_pattern", "image_bands", "split_column")
    return read_four_class_npz(args.path)  # type: ignore[arg-type]
