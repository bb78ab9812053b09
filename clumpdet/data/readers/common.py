"""Helpers shared by the classification readers: files, CSV columns, ids, labels, row names.

Bad input raises :class:`~clumpdet.errors.InputError` naming the file and the problem. CSV rows
are named by their *line* in the file (the header is line 1) and their id; array rows by their
0-based index.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from clumpdet.errors import ConfigError, InputError
from clumpdet.registry import Registry
from clumpdet.tasks import get_task
from clumpdet.tasks.base import RowName

#: Band names of colour JPEG/PNG cutouts.
RGB: tuple[str, ...] = ("R", "G", "B")

#: Missing image files: an error, or the galaxy is dropped with a warning.
Missing = Literal["error", "drop"]

#: ``data.source`` name -> loader ``fn(args: SourceArgs) -> ClassificationData``.
SOURCES: Registry = Registry("data source")


@dataclasses.dataclass(frozen=True)
class SourceArgs:
    """Config-style arguments of a data source (the ``data`` keys of a classifier config).

    Attributes
    ----------
    source : str
        The :data:`SOURCES` name.
    path, labels, images_dir, mapping : str, Path or None
        Files of the source (see :func:`clumpdet.data.readers.load_data`).
    label_columns : tuple of str
        Label columns of CSV sources.
    task : str or None
        Task name (:data:`clumpdet.tasks.TASKS`).
    id_column, image_pattern : str or None
        Id column and image file-name pattern (``{id}``, and ``{band}`` with ``image_bands``).
    image_bands : tuple of str
        One image file per band: the names that fill ``{band}``.
    missing : {"error", "drop"}
        Missing image files.
    split_column : str or None
        Column with ``train``/``val``/``test`` per row.
    """

    source: str
    path: str | Path | None = None
    labels: str | Path | None = None
    images_dir: str | Path | None = None
    mapping: str | Path | None = None
    label_columns: tuple[str, ...] = ()
    task: str | None = None
    id_column: str | None = None
    image_pattern: str | None = None
    image_bands: tuple[str, ...] = ()
    missing: Missing = "error"
    split_column: str | None = None

    @property
    def csv(self) -> str | Path | None:
        """The label table: ``labels``, else ``path``."""
        return self.labels if self.labels not in (None, "") else self.path

    def need(self, *names: str) -> None:
        """Raise ConfigError naming the arguments in ``names`` that are not given."""
        values = {n: (self.csv if n == "csv" else getattr(self, n)) for n in names}
        missing = [
            ("labels" if n == "csv" else n) for n, v in values.items() if v in (None, "", ())
        ]
        if missing:
            raise ConfigError(f"data source {self.source!r} needs {', '.join(missing)}")

    def refuse(self, *names: str) -> None:
        """Raise ConfigError for the arguments in ``names`` that this source cannot use."""
        given = [n for n in names if getattr(self, n) not in (None, "", ())]
        if given:
            raise ConfigError(
                f"data source {self.source!r} does not use data.{', data.'.join(given)}"
            )


def csv_rows(ids: Sequence[Any], id_column: str, lines: Sequence[int] | None = None) -> RowName:
    def name(i: int) -> str:
        line = i + 2 if lines is None else int(lines[i])
        return f"line {line} ({id_column} {ids[i]})"

    return name


def check_labels(
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


def need_file(path: str | Path, what: str = "file") -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(p, f"{what} not found")
    return p


def need_dir(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise InputError(p, "image folder not found")
    return p


def channels_last(shape: tuple[int, ...]) -> bool:
    """(N, H, W, C) when the last axis is small and smaller than axis 1."""
    return len(shape) == 4 and shape[3] <= 16 and shape[3] < shape[1]


def ids_from_strings(values: Sequence[str]) -> np.ndarray:
    """int64 ids when every value is a canonical integer, else str ids."""
    vals = [str(v).strip() for v in values]
    if vals and all(re.fullmatch(r"-?[1-9]\d{0,17}|0", v) for v in vals):
        return np.array([int(v) for v in vals], dtype=np.int64)
    return np.array(vals, dtype=str)


def read_csv(
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


def need_columns(df: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(path, f"missing {len(missing)} column(s): {shown}")


def float_block(df: pd.DataFrame, columns: Sequence[str], path: Path, row: RowName) -> np.ndarray:
    block = df[list(columns)].apply(pd.to_numeric, errors="coerce")
    bad = block.isna().to_numpy() & df[list(columns)].notna().to_numpy()
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise InputError(
            path, f"{row(int(r))}: {columns[c]} = {df[columns[c]].iloc[r]!r} is not a number"
        )
    return block.to_numpy(dtype=np.float32)


def image_files(
    names: Sequence[str] | Sequence[tuple[str, ...]],
    images_dir: Path,
    csv_path: Path,
    *,
    missing: Missing = "error",
) -> tuple[list[Any], np.ndarray]:
    """Paths of ``images_dir / name``; missing ones raise (or are dropped, with a warning).

    A name may be a tuple of file names (one file per band): the galaxy is missing when any of
    them is. Returns the paths (a Path or a tuple of Paths per galaxy) that exist and the
    boolean keep-mask over ``names``; none existing is an error.
    """
    paths: list[Any] = [
        images_dir / n if isinstance(n, str) else tuple(images_dir / b for b in n) for n in names
    ]
    files = [(p,) if isinstance(p, Path) else p for p in paths]
    exists = np.array([all(f.is_file() for f in fs) for fs in files], dtype=bool)
    n_missing = int((~exists).sum())
    if n_missing:
        first = next(f for f in files[int(np.argmin(exists))] if not f.is_file())
        if missing == "error":
            raise InputError(
                first,
                f"image file not found ({n_missing} of {len(paths)} images listed in "
                f"{csv_path.name} are missing)",
            )
        if not exists.any():
            raise InputError(images_dir, f"none of the images listed in {csv_path.name} exist")
        warnings.warn(
            f"{images_dir}: dropping {n_missing} of {len(paths)} galaxies whose image is "
            f"missing (first: {first.name})",
            stacklevel=3,
        )
    return [p for p, e in zip(paths, exists) if e], exists


def table_ids(df: pd.DataFrame, column: str, path: Path) -> tuple[list[str], np.ndarray, RowName]:
    """The ids of a label table: their stripped texts, ids and a namer of rows.

    Parameters
    ----------
    df : DataFrame
        The table read from ``path`` (``column`` read as text).
    column : str
        Its id column.
    path : Path
        The file (for messages).

    Returns
    -------
    texts : list of str
        The ids as written (leading zeros kept; they name image files).
    ids : ndarray, shape (N,)
        :func:`ids_from_strings` of the texts.
    row : callable
        :func:`csv_rows` of the texts: ``row(i)`` names line ``i + 2`` and its id.

    Raises
    ------
    InputError
        No rows, an empty id (naming its line) or repeated ids.
    """
    if df.empty:
        raise InputError(path, "no rows")
    if df[column].isna().any():
        r = int(np.argmax(df[column].isna().to_numpy()))
        raise InputError(path, f"line {r + 2}: {column} is empty")
    texts = df[column].str.strip().tolist()
    ids = ids_from_strings(texts)
    check_unique(ids, path, column)
    return texts, ids, csv_rows(texts, column)


def check_unique(ids: np.ndarray, path: Path, column: str) -> None:
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise InputError(path, f"{len(dup)} repeated {column} value(s), e.g. {dup[0]}")


def find_column(columns: Sequence[str], wanted: str) -> str | None:
    low = {c.lower(): c for c in columns}
    return low.get(wanted.lower())
