"""The Clump Scout / Popp et al. label table ``local_ids,label,x1,y1,x2,y2``."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from clumpdet.errors import InputError
from clumpdet.utils import atomic_write

if TYPE_CHECKING:
    import pandas as pd

LABEL_COLUMNS: tuple[str, ...] = ("local_ids", "label", "x1", "y1", "x2", "y2")
#: Valid values of the ``label`` column: 1 clump, 2 odd clump.
LABEL_VALUES: tuple[int, ...] = (1, 2)


def write_labels_csv(path: str | Path, rows: Iterable[Sequence[float | int]]) -> Path:
    """Write label rows ``(local_id, label, x1, y1, x2, y2)`` atomically (pixels, xyxy)."""
    with atomic_write(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(LABEL_COLUMNS)
        for local_id, label, x1, y1, x2, y2 in rows:
            w.writerow([int(local_id), int(label), *(f"{v:.3f}" for v in (x1, y1, x2, y2))])
    return Path(path)


def _parse_int(text: str) -> int | None:
    """Integer value of ``text`` ("3" or "3.0"); ``None`` if it is not an integer."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value.is_integer() else None


def read_labels_csv(path: str | Path) -> pd.DataFrame:
    """Read and validate a Popp et al. label table ``local_ids,label,x1,y1,x2,y2``.

    One row per box; boxes are xyxy float pixels (docs/conventions.md); ``local_ids`` is the
    image id. Images without clumps have no rows. Extra columns are kept (as strings).

    Parameters
    ----------
    path : str or Path
        CSV file with a header line.

    Returns
    -------
    pandas.DataFrame
        Columns ``local_ids`` (int64), ``label`` (int64), ``x1, y1, x2, y2`` (float64), then any
        extra columns; one row per box, in file order (possibly zero rows).

    Raises
    ------
    InputError
        Missing file, missing header columns (listed), or a malformed row: wrong number of
        fields, non-numeric or non-finite value, label not in {1, 2}, ``x2 <= x1`` or
        ``y2 <= y1``. The message names the file and the 1-based line number.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    cols: dict[str, list] = {c: [] for c in LABEL_COLUMNS}
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise InputError(path, "empty file; expected header " + ",".join(LABEL_COLUMNS))
            header = [h.strip() for h in header]
            missing = [c for c in LABEL_COLUMNS if c not in header]
            if missing:
                raise InputError(
                    path,
                    f"missing column(s) {', '.join(missing)} in header {','.join(header)}; "
                    f"expected {','.join(LABEL_COLUMNS)}",
                )
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:
                raise InputError(path, f"duplicate column(s) {', '.join(dupes)} in header")
            extra = [h for h in header if h not in LABEL_COLUMNS]
            for c in extra:
                cols[c] = []
            pos = {h: i for i, h in enumerate(header)}
            for row in reader:
                line = reader.line_num
                if not row or all(not f.strip() for f in row):
                    continue
                if len(row) != len(header):
                    raise InputError(
                        path, f"line {line}: expected {len(header)} fields, found {len(row)}"
                    )
                values = {c: row[pos[c]].strip() for c in LABEL_COLUMNS}
                for c in ("local_ids", "label"):
                    v = _parse_int(values[c])
                    if v is None:
                        raise InputError(path, f"line {line}: {c} {values[c]!r} is not an integer")
                    cols[c].append(v)
                if cols["label"][-1] not in LABEL_VALUES:
                    raise InputError(
                        path,
                        f"line {line}: label {cols['label'][-1]} is not one of "
                        f"{list(LABEL_VALUES)} (1 clump, 2 odd clump)",
                    )
                box = []
                for c in ("x1", "y1", "x2", "y2"):
                    try:
                        v = float(values[c])
                    except ValueError:
                        raise InputError(
                            path, f"line {line}: {c} {values[c]!r} is not a number"
                        ) from None
                    if not math.isfinite(v):
                        raise InputError(path, f"line {line}: {c} is {values[c]!r}, not finite")
                    box.append(v)
                x1, y1, x2, y2 = box
                if x2 <= x1 or y2 <= y1:
                    raise InputError(
                        path,
                        f"line {line}: empty or inverted box (x1={x1:g}, y1={y1:g}, "
                        f"x2={x2:g}, y2={y2:g}); need x2 > x1 and y2 > y1",
                    )
                for c, v in zip(("x1", "y1", "x2", "y2"), box):
                    cols[c].append(v)
                for c in extra:
                    cols[c].append(row[pos[c]])
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not a UTF-8 text file ({exc.reason})") from None
    except csv.Error as exc:
        raise InputError(path, f"not a valid CSV file ({exc})") from None
    df = pd.DataFrame(
        {
            "local_ids": np.asarray(cols["local_ids"], dtype=np.int64),
            "label": np.asarray(cols["label"], dtype=np.int64),
            **{c: np.asarray(cols[c], dtype=np.float64) for c in ("x1", "y1", "x2", "y2")},
            **{c: pd.Series(cols[c], dtype=object) for c in extra},
        }
    )
    return df


def labels_to_targets(
    df: pd.DataFrame, *, image_ids: Iterable[int] | None = None
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Group a label table by image into detection targets.

    Parameters
    ----------
    df : pandas.DataFrame
        As returned by :func:`read_labels_csv`.
    image_ids : iterable of int, optional
        Also include these images, with empty targets where they have no rows (the CSV omits
        clump-free images).

    Returns
    -------
    dict
        ``local_id -> (boxes, labels)`` with ``boxes`` float32 ``(N, 4)`` xyxy pixels and
        ``labels`` int64 ``(N,)``; ``N`` may be 0. Rows keep their file order.
    """
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    ids = df["local_ids"].to_numpy(dtype=np.int64)
    boxes = df[["x1", "y1", "x2", "y2"]].to_numpy(dtype=np.float32).reshape(-1, 4)
    labels = df["label"].to_numpy(dtype=np.int64)
    order = np.argsort(ids, kind="stable")  # group rows by image, keeping file order within
    uniq, starts = np.unique(ids[order], return_index=True)
    first_row = {int(u): int(order[st]) for u, st in zip(uniq, starts)}
    groups = np.split(order, starts[1:]) if len(order) else []
    by_id = {int(u): g for u, g in zip(uniq, groups)}
    for i in sorted(by_id, key=first_row.__getitem__):  # images in order of first appearance
        sel = by_id[i]
        out[i] = (np.ascontiguousarray(boxes[sel]), np.ascontiguousarray(labels[sel]))
    for i in image_ids or ():
        out.setdefault(int(i), (np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)))
    return out
