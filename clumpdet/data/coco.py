"""COCO annotation and results files: writing (here) and validated reading."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from clumpdet.errors import InputError
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


#: Tolerance, in pixels, for truth boxes that poke out of their image (rounding of box corners).
BBOX_TOLERANCE_PX: float = 1.0

_SINGULAR = {"images": "image", "annotations": "annotation", "categories": "category"}
_REQUIRED_TOP = ("images", "annotations", "categories")
_REQUIRED_IMAGE = ("id", "width", "height", "file_name")
_REQUIRED_ANN = ("id", "image_id", "category_id", "bbox")
_REQUIRED_CAT = ("id", "name")
_REQUIRED_PRED = ("image_id", "category_id", "bbox", "score")
_OPTIONAL_NUMERIC_ANN = ("flux_ratio", "snr", "area")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v)


def _read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into a one-line :class:`InputError`."""
    if path.is_dir():
        raise InputError(path, "is a directory; expected a JSON file (e.g. DIR/annotations.json)")
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read file ({exc.__class__.__name__}: {exc})") from None
    if not text.strip():
        raise InputError(path, "file is empty (expected JSON)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            path, f"not valid JSON (truncated?): {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _inside_root(file_name: str) -> bool:
    """Whether ``file_name`` stays inside the image root: relative, with no ``..`` part.

    Both ``/`` and ``\\`` separate parts, and Windows drives (``C:``) count as absolute, so a
    file written on one system is judged the same on every other.
    """
    parts = re.split(r"[\\/]", file_name)
    if file_name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", file_name):
        return False
    return ".." not in parts


def _check_bbox(bbox: Any, where: str, src: Path | None) -> tuple[float, float, float, float]:
    """Return ``bbox`` as 4 floats or raise: 4 finite numbers, positive width and height."""
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
        raise InputError(
            src, f"{where}: bbox must be a list of 4 numbers [x, y, w, h], got {bbox!r}"
        )
    if not all(_finite(v) for v in bbox):
        raise InputError(src, f"{where}: bbox must hold 4 finite numbers, got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise InputError(src, f"{where}: bbox width and height must be > 0, got w={w:g} h={h:g}")
    return x, y, w, h


def _check_records(
    records: Any, key: str, required: Sequence[str], src: Path | None
) -> dict[int, dict[str, Any]]:
    """Check a list of records for required keys, integer ids and duplicate ids."""
    if not isinstance(records, list):
        raise InputError(src, f"'{key}' must be a list, got {type(records).__name__}")
    by_id: dict[int, dict[str, Any]] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise InputError(src, f"{key}[{i}] must be an object, got {type(rec).__name__}")
        missing = [k for k in required if k not in rec]
        if missing:
            raise InputError(src, f"{key}[{i}] lacks required key(s) {', '.join(missing)}")
        rid = rec["id"]
        if not _is_int(rid):
            raise InputError(src, f"{key}[{i}]: id must be an integer, got {rid!r}")
        if rid in by_id:
            raise InputError(src, f"{key}[{i}]: duplicate {_SINGULAR[key]} id {rid}")
        by_id[rid] = rec
    return by_id


def validate_coco(
    doc: Any, *, path: str | Path | None = None, check_files: bool = False
) -> dict[str, Any]:
    """Validate an in-memory COCO instances dict (see :func:`load_coco` for the rules).

    Parameters
    ----------
    doc : dict
        Parsed COCO document.
    path : str or Path, optional
        File the document came from; named in error messages and used as the image root
        (its directory) when ``check_files`` is true.
    check_files : bool
        Also require every ``images[*].file_name`` to exist under the image root.

    Returns
    -------
    dict
        ``doc`` itself (not copied).

    Raises
    ------
    InputError
        On the first problem found, naming the file and the record.
    """
    src = None if path is None else Path(path)
    if not isinstance(doc, dict):
        raise InputError(src, f"top level must be a JSON object, got {type(doc).__name__}")
    missing = [k for k in _REQUIRED_TOP if k not in doc]
    if missing:
        raise InputError(src, f"missing top-level key(s) {', '.join(missing)} (not a COCO file?)")
    images = _check_records(doc["images"], "images", _REQUIRED_IMAGE, src)
    cats = _check_records(doc["categories"], "categories", _REQUIRED_CAT, src)
    for i, im in enumerate(doc["images"]):
        for k in ("width", "height"):
            if not _finite(im[k]) or im[k] <= 0:
                raise InputError(
                    src, f"images[{i}] (id {im['id']}): {k} must be > 0, got {im[k]!r}"
                )
        if not isinstance(im["file_name"], str) or not im["file_name"]:
            raise InputError(src, f"images[{i}] (id {im['id']}): file_name must be a string")
        if not _inside_root(im["file_name"]):
            raise InputError(
                src,
                f"images[{i}] (id {im['id']}): file_name {im['file_name']!r} must be a relative "
                "path inside the annotation file's folder (no absolute path, no '..')",
            )
    names: dict[str, int] = {}
    for i, c in enumerate(doc["categories"]):
        if not isinstance(c["name"], str) or not c["name"]:
            raise InputError(src, f"categories[{i}] (id {c['id']}): name must be a string")
        if c["name"] in names:
            raise InputError(src, f"categories[{i}]: duplicate category name {c['name']!r}")
        names[c["name"]] = c["id"]
    _check_records(doc["annotations"], "annotations", _REQUIRED_ANN, src)
    tol = BBOX_TOLERANCE_PX
    for i, a in enumerate(doc["annotations"]):
        where = f"annotations[{i}] (id {a['id']})"
        im = images.get(a["image_id"]) if _is_int(a["image_id"]) else None
        if im is None:
            raise InputError(src, f"{where} references unknown image_id {a['image_id']!r}")
        _check_category(a["category_id"], cats, where, src)
        x, y, w, h = _check_bbox(a["bbox"], where, src)
        if x < -tol or y < -tol or x + w > im["width"] + tol or y + h > im["height"] + tol:
            raise InputError(
                src,
                f"{where}: bbox [{x:g}, {y:g}, {w:g}, {h:g}] lies outside image {im['id']} "
                f"({im['width']}x{im['height']} px, tolerance {tol:g} px)",
            )
        for k in _OPTIONAL_NUMERIC_ANN:
            if k in a and a[k] is not None and not _is_number(a[k]):
                raise InputError(src, f"{where}: {k} must be a number or null, got {a[k]!r}")
    if check_files:
        root = Path(".") if src is None else src.parent
        missing_files = [
            im["file_name"] for im in doc["images"] if not (root / im["file_name"]).is_file()
        ]
        if missing_files:
            more = f" and {len(missing_files) - 1} more" if len(missing_files) > 1 else ""
            raise InputError(src, f"image file {missing_files[0]!r} not found under {root}{more}")
    return doc


def load_coco(path: str | Path, *, check_files: bool = False) -> dict[str, Any]:
    """Read and validate a COCO instances (truth) file.

    Parameters
    ----------
    path : str or Path
        COCO JSON. ``images[*].file_name`` is relative to the JSON's directory, which is the
        image root (docs/conventions.md).
    check_files : bool
        Also require every listed image file to exist.

    Returns
    -------
    dict
        The COCO document plus ``"_root"``: the image root as a :class:`~pathlib.Path`.
        Boxes stay ``[x, y, w, h]`` in pixels (corner of the first pixel at 0, 0).

    Raises
    ------
    InputError
        One line naming the file and the problem: not JSON or truncated; an image
        ``file_name`` that is absolute or climbs out of the JSON's folder with ``..`` (an
        annotation file never makes the package read outside its folder); missing top-level keys
        (``images``, ``annotations``, ``categories``); records missing required keys (image: id,
        width, height, file_name; annotation: id, image_id, category_id, bbox; category: id,
        name); duplicate ids or category names; an annotation referencing an unknown image or
        category; a bbox that is not 4 finite numbers, has w <= 0 or h <= 0, or lies outside
        its image by more than :data:`BBOX_TOLERANCE_PX`; with ``check_files``, a missing image.
    """
    path = Path(path)
    doc = validate_coco(_read_json(path), path=path, check_files=check_files)
    doc["_root"] = path.parent
    return doc


def load_predictions(path: str | Path, *, coco: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Read and validate a COCO results (predictions) file against its truth.

    Parameters
    ----------
    path : str or Path
        JSON list of ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` (pixels).
        An empty list is valid (no detections). Scores may be any finite float.
    coco : dict
        The truth, as returned by :func:`load_coco`; image and category ids must exist there.

    Returns
    -------
    list of dict
        The predictions, with ``image_id``/``category_id`` as int, ``bbox`` as 4 floats and
        ``score`` as float; other keys are kept.

    Raises
    ------
    InputError
        Not a JSON list; an entry missing keys; non-finite bbox or score; w <= 0 or h <= 0;
        an unknown image_id (``prediction 12 references unknown image_id 999``) or category_id.
    """
    path = Path(path)
    return validate_predictions(_read_json(path), coco=coco, path=path)


def validate_predictions(
    predictions: Any, *, coco: Mapping[str, Any], path: str | Path | None = None
) -> list[dict[str, Any]]:
    """Validate in-memory COCO results against their truth (rules of :func:`load_predictions`).

    Parameters
    ----------
    predictions : list of mappings
        COCO results records; numpy/torch scalars are accepted and converted.
    coco : dict
        The truth document.
    path : str or Path, optional
        File the predictions came from, named in error messages.

    Returns
    -------
    list of dict
        Normalised copies of the records.
    """
    path = None if path is None else Path(path)
    data = predictions if isinstance(predictions, (dict, str)) else _jsonable(predictions)
    if not isinstance(data, list):
        raise InputError(
            path, f"COCO results must be a JSON list of detections, got {type(data).__name__}"
        )
    image_ids = {im["id"] for im in coco["images"]}
    cat_ids = {c["id"] for c in coco["categories"]}
    out: list[dict[str, Any]] = []
    for i, p in enumerate(data):
        where = f"prediction {i}"
        if not isinstance(p, dict):
            raise InputError(path, f"{where} must be an object, got {type(p).__name__}")
        bbox = _check_prediction(p, where, path, image_ids=image_ids, cat_ids=cat_ids)
        rec = dict(p)
        rec.update(
            image_id=int(p["image_id"]),
            category_id=int(p["category_id"]),
            bbox=list(bbox),
            score=float(p["score"]),
        )
        out.append(rec)
    return out


def _check_category(category_id: Any, cats: Collection[int], where: str, src: Path | None) -> None:
    if not _is_int(category_id) or category_id not in cats:
        raise InputError(
            src,
            f"{where} references unknown category_id {category_id!r} (categories: {sorted(cats)})",
        )


def _check_prediction(
    p: Mapping[str, Any],
    where: str,
    path: Path | None,
    *,
    image_ids: Collection[int] | None = None,
    cat_ids: Collection[int] | None = None,
) -> tuple[float, float, float, float]:
    """Check one COCO results record (keys, ids when given, bbox, score); returns its bbox."""
    missing = [k for k in _REQUIRED_PRED if k not in p]
    if missing:
        raise InputError(path, f"{where} lacks required key(s) {', '.join(missing)}")
    if image_ids is not None and (not _is_int(p["image_id"]) or p["image_id"] not in image_ids):
        raise InputError(path, f"{where} references unknown image_id {p['image_id']!r}")
    if cat_ids is not None:
        _check_category(p["category_id"], cat_ids, where, path)
    bbox = _check_bbox(p["bbox"], where, path)
    if not _finite(p["score"]):
        raise InputError(path, f"{where}: score must be a finite number, got {p['score']!r}")
    return bbox


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "tolist"):  # numpy / torch scalars and arrays
        return _jsonable(v.tolist())
    return v


def write_predictions(path: str | Path, predictions: Sequence[Mapping[str, Any]]) -> Path:
    """Write predictions as a COCO results JSON list, atomically.

    Parameters
    ----------
    path : str or Path
        Output JSON path.
    predictions : sequence of mappings
        ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` records (pixels);
        numpy/torch scalars and arrays are converted to plain JSON values.

    Returns
    -------
    Path
        ``path``.
    """
    records = [_jsonable(p) for p in predictions]
    for i, p in enumerate(records):
        _check_prediction(p, f"prediction {i}", Path(path))
    with atomic_write(path, "w") as fh:
        json.dump(records, fh, allow_nan=False)
    return Path(path)
