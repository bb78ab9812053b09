"""COCO truth / results reading and validation (clumpdet.data.coco)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clumpdet.data.coco import (
    CLUMP_CATEGORIES,
    load_coco,
    load_predictions,
    validate_predictions,
    write_coco,
    write_predictions,
)
from clumpdet.errors import InputError


def _doc() -> dict[str, Any]:
    images = [
        {"id": 1, "width": 100, "height": 80, "file_name": "images/000001.fits"},
        {"id": 2, "width": 100, "height": 80, "file_name": "images/000002.fits"},
    ]
    anns = [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [10.0, 10.0, 12.0, 12.0]},
        {"id": 11, "image_id": 1, "category_id": 2, "bbox": [50.0, 40.0, 20.0, 20.0]},
        {"id": 12, "image_id": 2, "category_id": 1, "bbox": [0.0, 0.0, 9.0, 9.0]},
    ]
    return {"images": images, "annotations": anns, "categories": copy.deepcopy(CLUMP_CATEGORIES)}


def _write(tmp_path: Path, doc: Any, name: str = "annotations.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def _expect_error(path: Path, fragment: str, **kw: Any) -> str:
    with pytest.raises(InputError) as ei:
        load_coco(path, **kw)
    msg = str(ei.value)
    assert str(path) in msg
    assert fragment in msg, msg
    assert "\n" not in msg
    return msg


def test_write_then_load_roundtrip_and_pycocotools(tmp_path: Path) -> None:
    d = _doc()
    p = write_coco(tmp_path / "t" / "annotations.json", images=d["images"],
                   annotations=d["annotations"])  # fmt: skip
    doc = load_coco(p)
    assert doc["_root"] == tmp_path / "t"
    assert [im["id"] for im in doc["images"]] == [1, 2]
    assert doc["annotations"][1]["bbox"] == [50.0, 40.0, 20.0, 20.0]
    assert [c["name"] for c in doc["categories"]] == ["clump", "odd_clump"]

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        c = COCO(str(p))
    assert sorted(c.getImgIds()) == [1, 2]
    assert len(c.getAnnIds(imgIds=[1])) == 2
    assert c.loadCats([2])[0]["name"] == "odd_clump"


def _mutate(fn):
    def make() -> dict[str, Any]:
        d = _doc()
        fn(d)
        return d

    return make


MALFORMED = {
    "top_level_list": (lambda: [1, 2], "top level must be a JSON object"),
    "missing_categories": (
        _mutate(lambda d: d.pop("categories")),
        "missing top-level key(s) categories",
    ),
    "images_not_list": (_mutate(lambda d: d.update(images={})), "'images' must be a list"),
    "image_missing_width": (
        _mutate(lambda d: d["images"][1].pop("width")),
        "images[1] lacks required key(s) width",
    ),
    "image_bad_height": (_mutate(lambda d: d["images"][0].update(height=0)), "height must be > 0"),
    "ann_missing_bbox": (
        _mutate(lambda d: d["annotations"][2].pop("bbox")),
        "annotations[2] lacks required key(s) bbox",
    ),
    "cat_missing_name": (
        _mutate(lambda d: d["categories"][0].pop("name")),
        "categories[0] lacks required key(s) name",
    ),
    "dup_image": (_mutate(lambda d: d["images"][1].update(id=1)), "duplicate image id 1"),
    "dup_ann": (_mutate(lambda d: d["annotations"][1].update(id=10)), "duplicate annotation id 10"),
    "dup_cat": (_mutate(lambda d: d["categories"][1].update(id=1)), "duplicate category id 1"),
    "dup_cat_name": (
        _mutate(lambda d: d["categories"][1].update(name="clump")),
        "duplicate category name",
    ),
    "string_id": (_mutate(lambda d: d["annotations"][0].update(id="a")), "id must be an integer"),
    "unknown_image": (
        _mutate(lambda d: d["annotations"][1].update(image_id=7)),
        "annotations[1] (id 11) references unknown image_id 7",
    ),
    "unknown_cat": (
        _mutate(lambda d: d["annotations"][0].update(category_id=3)),
        "references unknown category_id 3",
    ),
    "bbox_3": (
        _mutate(lambda d: d["annotations"][0].update(bbox=[1, 2, 3])),
        "bbox must be a list of 4 numbers",
    ),
    "bbox_nan": (
        _mutate(lambda d: d["annotations"][0].update(bbox=[1, 2, float("nan"), 3])),
        "4 finite numbers",
    ),
    "bbox_str": (
        _mutate(lambda d: d["annotations"][0].update(bbox=[1, 2, "3", 3])),
        "4 finite numbers",
    ),
    "bbox_w0": (_mutate(lambda d: d["annotations"][0].update(bbox=[1, 2, 0, 3])), "w=0 h=3"),
    "bbox_hneg": (
        _mutate(lambda d: d["annotations"][0].update(bbox=[1, 2, 3, -1])),
        "width and height must be > 0",
    ),
    "bbox_right": (
        _mutate(lambda d: d["annotations"][0].update(bbox=[90, 2, 11.5, 3])),
        "lies outside image 1 (100x80 px",
    ),
    "bbox_left": (
        _mutate(lambda d: d["annotations"][0].update(bbox=[-1.5, 2, 5, 3])),
        "lies outside image 1",
    ),
    "bbox_bottom": (
        _mutate(lambda d: d["annotations"][2].update(bbox=[5, 75, 5, 6.5])),
        "lies outside image 2",
    ),
    "snr_string": (
        _mutate(lambda d: d["annotations"][0].update(snr="high")),
        "snr must be a number",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_load_coco_rejects_malformed(tmp_path: Path, case: str) -> None:
    make, fragment = MALFORMED[case]
    _expect_error(_write(tmp_path, make()), fragment)


def test_load_coco_not_json_truncated_empty_missing(tmp_path: Path) -> None:
    good = json.dumps(_doc())
    p = tmp_path / "trunc.json"
    p.write_text(good[: len(good) // 2])
    _expect_error(p, "not valid JSON (truncated?)")
    p = tmp_path / "empty.json"
    p.write_text("")
    _expect_error(p, "file is empty")
    _expect_error(tmp_path / "nope.json", "file not found")
    _expect_error(tmp_path, "is a directory; expected a JSON file")


def test_load_coco_bbox_tolerance_and_extra_fields(tmp_path: Path) -> None:
    d = _doc()
    # 0.9 px over the right edge and 0.5 px over the top: rounding, accepted
    d["annotations"][0]["bbox"] = [89.0, -0.5, 11.9, 5.0]
    d["annotations"][0].update(flux_ratio=0.05, snr=None)
    doc = load_coco(_write(tmp_path, d))
    assert doc["annotations"][0]["flux_ratio"] == 0.05


def test_load_coco_check_files(tmp_path: Path) -> None:
    p = _write(tmp_path, _doc())
    assert load_coco(p)["_root"] == tmp_path  # files not checked by default
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "000001.fits").write_bytes(b"x")
    msg = _expect_error(p, "image file 'images/000002.fits' not found", check_files=True)
    assert str(tmp_path) in msg
    (tmp_path / "images" / "000002.fits").write_bytes(b"x")
    assert len(load_coco(p, check_files=True)["images"]) == 2


# ----------------------------------------------------------------------------- predictions


def _preds() -> list[dict[str, Any]]:
    return [
        {"image_id": 1, "category_id": 1, "bbox": [10, 10, 12, 12], "score": 0.9},
        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 9, 9], "score": -3.5},
        {"image_id": 2, "category_id": 1, "bbox": [95, 70, 20, 20], "score": 7.0},
    ]


def test_load_predictions_valid_and_empty(tmp_path: Path) -> None:
    truth = load_coco(_write(tmp_path, _doc()))
    p = tmp_path / "pred.json"
    p.write_text(json.dumps(_preds()))
    preds = load_predictions(p, coco=truth)
    assert len(preds) == 3
    assert preds[0]["bbox"] == [10.0, 10.0, 12.0, 12.0]
    assert isinstance(preds[0]["bbox"][0], float)
    assert preds[1]["score"] == -3.5  # any finite float is a valid score
    p.write_text("[]")
    assert load_predictions(p, coco=truth) == []


PRED_MALFORMED = {
    "not_list": (lambda p: {"annotations": p}, "must be a JSON list"),
    "not_object": (lambda p: [*p, 5], "prediction 3 must be an object"),
    "missing_score": (
        lambda p: [p[0], {k: v for k, v in p[1].items() if k != "score"}],
        "prediction 1 lacks required key(s) score",
    ),
    "nan_score": (
        lambda p: [p[0], {**p[1], "score": float("nan")}],
        "prediction 1: score must be a finite number",
    ),
    "inf_bbox": (
        lambda p: [{**p[0], "bbox": [1, 2, float("inf"), 3]}],
        "prediction 0: bbox must hold 4 finite numbers",
    ),
    "w0": (
        lambda p: [{**p[0], "bbox": [1, 2, 0, 3]}],
        "prediction 0: bbox width and height must be > 0",
    ),
    "unknown_image": (
        lambda p: [p[0], {**p[1], "image_id": 999}],
        "prediction 1 references unknown image_id 999",
    ),
    "unknown_cat": (
        lambda p: [{**p[0], "category_id": 0}],
        "prediction 0 references unknown category_id 0",
    ),
}


@pytest.mark.parametrize("case", sorted(PRED_MALFORMED))
def test_load_predictions_rejects_malformed(tmp_path: Path, case: str) -> None:
    truth = load_coco(_write(tmp_path, _doc()))
    make, fragment = PRED_MALFORMED[case]
    p = tmp_path / "pred.json"
    p.write_text(json.dumps(make(_preds())))
    with pytest.raises(InputError) as ei:
        load_predictions(p, coco=truth)
    msg = str(ei.value)
    assert msg.startswith(f"{p}: ")
    assert fragment in msg, msg
    assert "\n" not in msg


def test_load_predictions_not_json(tmp_path: Path) -> None:
    truth = load_coco(_write(tmp_path, _doc()))
    p = tmp_path / "pred.json"
    p.write_text('[{"image_id": 1, "categ')
    with pytest.raises(InputError, match=r"pred\.json: not valid JSON"):
        load_predictions(p, coco=truth)


def test_write_predictions_roundtrip_numpy_and_atomic(tmp_path: Path) -> None:
    truth = load_coco(_write(tmp_path, _doc()))
    preds = [
        {"image_id": np.int64(1), "category_id": np.int32(2),
         "bbox": np.array([1.5, 2.0, 3.0, 4.0], dtype=np.float32), "score": np.float32(0.25)},
    ]  # fmt: skip
    out = write_predictions(tmp_path / "sub" / "pred.json", preds)
    back = load_predictions(out, coco=truth)
    assert back == [{"image_id": 1, "category_id": 2, "bbox": [1.5, 2.0, 3.0, 4.0], "score": 0.25}]
    # in-memory validation accepts the same numpy records
    assert validate_predictions(preds, coco=truth)[0]["image_id"] == 1
    # a bad record raises and leaves neither the file nor a temporary behind
    bad = [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": float("nan")}]
    with pytest.raises(InputError, match="score must be a finite number"):
        write_predictions(tmp_path / "bad" / "pred.json", bad)
    assert not (tmp_path / "bad" / "pred.json").exists()
    # a failure while writing (unserialisable extra field) leaves no file and no temporary
    odd = [{"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5, "x": object()}]
    with pytest.raises(TypeError):
        write_predictions(tmp_path / "odd" / "pred.json", odd)
    assert list((tmp_path / "odd").iterdir()) == []


@pytest.mark.parametrize(
    "bad",
    [
        "../secret.fits",
        "images/../../secret.fits",
        "images/..",
        "/etc/passwd",
        "\\\\server\\share\\x.fits",
        "..\\secret.fits",
        "C:\\data\\x.fits",
        "c:x.fits",
    ],
)
def test_file_name_outside_the_folder_is_refused(tmp_path: Path, bad: str) -> None:
    """An annotation file cannot make the package read outside its folder."""
    d = _doc()
    d["images"][1]["file_name"] = bad
    msg = _expect_error(_write(tmp_path, d), "images[1] (id 2): file_name")
    assert repr(bad) in msg and "relative path inside the annotation file's folder" in msg


def test_file_name_with_dots_inside_the_folder_is_fine(tmp_path: Path) -> None:
    d = _doc()
    d["images"][0]["file_name"] = "images/./a..b/..hidden.fits"
    assert load_coco(_write(tmp_path, d))["images"][0]["file_name"].endswith("..hidden.fits")
