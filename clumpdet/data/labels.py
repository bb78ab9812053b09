"""The Clump Scout / Popp et al. label table ``local_ids,label,x1,y1,x2,y2``."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

from clumpdet.utils import atomic_write

LABEL_COLUMNS: tuple[str, ...] = ("local_ids", "label", "x1", "y1", "x2", "y2")


def write_labels_csv(path: str | Path, rows: Iterable[Sequence[float | int]]) -> Path:
    """Write label rows ``(local_id, label, x1, y1, x2, y2)`` atomically (pixels, xyxy)."""
    with atomic_write(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(LABEL_COLUMNS)
        for local_id, label, x1, y1, x2, y2 in rows:
            w.writerow([int(local_id), int(label), *(f"{v:.3f}" for v in (x1, y1, x2, y2))])
    return Path(path)
