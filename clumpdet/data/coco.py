"""COCO annotation and results files: writing (here) and validated reading."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clumpdet.utils import atomic_write

#: COCO categories of the clump task (0 is background and is not listed).
CLUMP_CATEGORIES: list[dict[str, Any]] = [
    {"id": 1, "name": "clump", "supercategory": "clump"},
    {"id": 2, "name": "odd_clump", "supercategory": "clump"},
]


def write_coco(
    path: str | Path,
    *,
    images: Sequence[Mapping[str, Any]],
    annotations: Sequence[Mapping[str, Any]],
    categories: Sequence[Mapping[str, Any]] = CLUMP_CATEGORIES,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write a COCO instances file atomically.

    Parameters
    ----------
    path : str or Path
        Output JSON path.
    images, annotations, categories : sequences of mappings
        COCO records. Annotation ``bbox`` is ``[x, y, w, h]`` in pixels (docs/conventions.md).
    info : mapping, optional
        COCO ``info`` block (generator, version, date ...).
    """
    doc = {
        "info": dict(info or {}),
        "licenses": [],
        "images": [dict(im) for im in images],
        "annotations": [dict(a) for a in annotations],
        "categories": [dict(c) for c in categories],
    }
    with atomic_write(path, "w") as fh:
        json.dump(doc, fh)
    return Path(path)
