"""A folder of image files (FITS/PNG/JPEG, one file per galaxy or per band) plus a label CSV."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from clumpdet.data.containers import ClassificationData, FileImages
from clumpdet.data.images import NanPolicy
from clumpdet.data.readers.common import (
    SOURCES,
    Missing,
    SourceArgs,
    check_labels,
    float_block,
    image_files,
    need_columns,
    need_dir,
    need_file,
    read_csv,
    table_ids,
)
from clumpdet.errors import ConfigError, InputError
from clumpdet.tasks import get_task
from clumpdet.tasks.base import RowName

#: Values of a ``data.split_column``.
SPLIT_VALUES: tuple[str, ...] = ("train", "val", "test")


def class_column(
    values: pd.Series, *, column: str, path: Path, row: RowName
) -> tuple[np.ndarray, tuple[str, ...]]:
    """One-hot labels ``(N, K)`` and class names from one column of class values.

    Integer values ``0..K-1`` are class indices (names ``"0"`` ... ``"K-1"``); any other values
    are class names (sorted). Raises InputError on an empty cell or a negative index.
    """
    text = values.astype("string").str.strip()
    if text.isna().any() or (text == "").any():
        r = int(np.argmax((text.isna() | (text == "")).to_numpy()))
        raise InputError(path, f"{row(r)}: {column} is empty")
    as_int = pd.to_numeric(text, errors="coerce")
    if as_int.notna().all() and (as_int == as_int.round()).all():
        index = as_int.to_numpy(dtype=np.int64)
        if index.min() < 0:
            r = int(np.argmin(index))
            raise InputError(path, f"{row(r)}: {column} = {index[r]} is not a class index >= 0")
        names = tuple(str(i) for i in range(int(index.max()) + 1))
    else:
        names = tuple(sorted(set(text.tolist())))
        index = np.searchsorted(np.array(names), text.to_numpy(dtype=str))
    if len(names) < 2:
        raise InputError(path, f"{column}: one class only ({names[0]!r}); need at least two")
    return np.eye(len(names), dtype=np.float32)[index], names


def split_values(values: pd.Series, *, column: str, path: Path, row: RowName) -> np.ndarray:
    """``train``/``val``/``test`` (str, (N,)) of each row; anything else raises InputError."""
    text = values.astype("string").str.strip().str.lower().fillna("")
    bad = ~text.isin(SPLIT_VALUES).to_numpy()
    if bad.any():
        r = int(np.argmax(bad))
        raise InputError(
            path,
            f"{row(r)}: {column} is {values.iloc[r]!r}, expected one of {', '.join(SPLIT_VALUES)} "
            f"({int(bad.sum())} such row(s))",
        )
    return text.to_numpy(dtype=str)


def _file_names(
    id_text: Sequence[str], image_pattern: str, image_bands: Sequence[str]
) -> list[str] | list[tuple[str, ...]]:
    uses_band = "{band}" in image_pattern
    if image_bands and not uses_band:
        raise ConfigError(
            f"data.image_pattern {image_pattern!r}: one file per band (data.image_bands) needs "
            "{band} in the pattern"
        )
    if uses_band and not image_bands:
        raise ConfigError(
            f"data.image_pattern {image_pattern!r} uses {{band}}: list the bands in "
            "data.image_bands"
        )
    try:
        if image_bands:
            return [tuple(image_pattern.format(id=i, band=b) for b in image_bands) for i in id_text]
        return [image_pattern.format(id=i) for i in id_text]
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"data.image_pattern {image_pattern!r} must use only {{id}} and {{band}} ({exc})"
        ) from None


def folder_data(
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
    missing: Missing,
    image_bands: Sequence[str] = (),
    split_column: str | None = None,
    default_bands: tuple[str, ...] | None = None,
) -> ClassificationData:
    """:class:`ClassificationData` of the rows of ``df`` (a label table read from ``csv_path``).

    With ``image_bands`` each galaxy has one single-plane file per band (``{band}`` in
    ``image_pattern``), stacked in that order and named by those bands. One label column of
    class values is one-hot encoded for tasks with :attr:`Task.one_column_classes`.
    """
    id_text, ids, row = table_ids(df, id_column, csv_path)
    if len(label_columns) == 1 and get_task(task).one_column_classes:
        labels, label_names = class_column(
            df[label_columns[0]], column=label_columns[0], path=csv_path, row=row
        )
    else:
        labels = float_block(df, label_columns, csv_path, row)
    check_labels(labels, task=task, names=label_names, source=csv_path, row=row)
    split = None
    if split_column is not None:
        need_columns(df, (split_column,), csv_path)
        split = split_values(df[split_column], column=split_column, path=csv_path, row=row)
    names = _file_names(id_text, image_pattern, tuple(image_bands))
    paths, keep = image_files(names, images_dir, csv_path, missing=missing)
    images = FileImages(paths, nan_policy=nan_policy)
    first = images.read(0)
    bands = first.bands
    if image_bands:
        if len(bands) != len(image_bands):
            raise InputError(
                paths[0][0],
                f"{len(bands)} planes in the {len(image_bands)} per-band files "
                f"{[p.name for p in paths[0]]}; each file must hold one band",
            )
        bands = tuple(image_bands)
    elif (
        default_bands is not None
        and not first.band_names_known
        and len(bands) == len(default_bands)
    ):
        bands = default_bands
    return ClassificationData(
        images=images,
        labels=labels[keep],
        task=task,
        label_names=tuple(label_names),
        bands=bands,
        ids=ids[keep],
        source=csv_path,
        split=None if split is None else split[keep],
    )


def read_image_folder(
    csv_path: str | Path,
    images_dir: str | Path,
    *,
    label_columns: Sequence[str],
    id_column: str,
    image_pattern: str = "{id}",
    image_bands: Sequence[str] = (),
    task: str,
    nan_policy: NanPolicy = "raise",
    missing: Missing = "error",
    split_column: str | None = None,
) -> ClassificationData:
    """Read a generic image folder plus a CSV whose label columns are named by the caller.

    Parameters
    ----------
    csv_path : str or Path
        CSV with ``id_column`` and ``label_columns``.
    images_dir : str or Path
        Folder of FITS/PNG/JPEG files (read with :func:`clumpdet.data.images.read_image`).
    label_columns : sequence of str
        ``binary``/``merger``: one 0/1 column (any name, e.g. ``is_ring``); ``multiclass``: K
        one-hot columns, or one column of class indices ``0..K-1`` or class names;
        ``four_class``: four one-hot columns; ``gz_votes``: the 37 cumulative fractions in
        Kaggle order; ``candels``: five fractions.
    id_column : str
        Id column; its text fills ``{id}`` in ``image_pattern`` (so a column of file names
        works with the default ``"{id}"``).
    image_pattern : str
        File name pattern, e.g. ``"{id}.png"``, or ``"{id}_{band}.fits"`` with ``image_bands``.
    image_bands : sequence of str
        One single-band file per galaxy and band: the values of ``{band}``, which also name
        the bands.
    task : str
        A registered task (:data:`clumpdet.tasks.TASKS`); label names are the column names
        (or, for one column of classes, the class values).
    nan_policy : {"raise", "zero", "median"}
        NaN pixels (see :func:`clumpdet.data.images.read_image`).
    missing : {"error", "drop"}
        Missing image files are an error (default) or dropped with a warning.
    split_column : str, optional
        Column of ``train``/``val``/``test`` giving each galaxy's split.

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
    if not (len(label_columns) == 1 and get_task(task).one_column_classes):
        get_task(task, label_names=label_columns)  # checks the task and the number of columns
    csv_path = need_file(csv_path, "label file")
    images_dir = need_dir(images_dir)
    df = read_csv(csv_path, str_columns=(id_column,))
    need_columns(df, (id_column, *label_columns), csv_path)
    return folder_data(
        df,
        csv_path=csv_path,
        images_dir=images_dir,
        label_columns=label_columns,
        label_names=label_columns,
        id_column=id_column,
        image_pattern=image_pattern,
        image_bands=image_bands,
        task=task,
        nan_policy=nan_policy,
        missing=missing,
        split_column=split_column,
    )


@SOURCES.register("folder", help="label CSV + folder of FITS/PNG/JPEG files (any task)")
def _load_folder(args: SourceArgs) -> ClassificationData:
    args.need("csv", "images_dir", "label_columns", "task")
    return read_image_folder(
        args.csv,  # type: ignore[arg-type]
        args.images_dir,  # type: ignore[arg-type]
        label_columns=args.label_columns,
        id_column=args.id_column or "id",
        image_pattern=args.image_pattern or "{id}",
        image_bands=args.image_bands,
        task=args.task,  # type: ignore[arg-type]
        missing=args.missing,
        split_column=args.split_column,
    )
