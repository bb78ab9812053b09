"""COCO detection metrics (pycocotools ``COCOeval``, ``iouType="bbox"``) with clump-sized areas.

COCO's default area ranges (small < 32^2, large > 96^2 px^2) put every clump in "small"; real
Galaxy Zoo: Clump Scout boxes are 9-28 px a side (Adams et al. 2022, ApJ 931, 16; Popp et al.
2024), so the ranges here are defined by box side: small < 12 px, medium 12-24 px, large > 24 px
(``area = w * h`` of the box, bounds inclusive as in COCOeval). All numbers are read from
``COCOeval.eval["precision"/"recall"]`` directly, not from ``summarize()``, whose printout
hard-codes COCO's ranges.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Area ranges in px^2 keyed by name, with the box side bounds (px) they stand for.
AREA_RANGES: dict[str, tuple[float, float]] = {
    "all": (0.0, 1e10),
    "small": (0.0, 12.0**2),
    "medium": (12.0**2, 24.0**2),
    "large": (24.0**2, 1e10),
}

#: Maximum detections per image for AR (and AP uses the last one).
MAX_DETS: tuple[int, ...] = (1, 10, 100)


def area_ranges_description() -> dict[str, dict[str, float | None]]:
    """JSON-ready description of :data:`AREA_RANGES` (px^2 and box side in px; null = no bound)."""
    out: dict[str, dict[str, float | None]] = {}
    for name, (lo, hi) in AREA_RANGES.items():
        hi_ = None if hi >= 1e10 else hi
        out[name] = {
            "min_area_px2": lo,
            "max_area_px2": hi_,
            "min_side_px": math.sqrt(lo),
            "max_side_px": None if hi_ is None else math.sqrt(hi_),
        }
    return out


def _mean_valid(x: np.ndarray) -> float:
    v = x[x > -1]
    return float(np.mean(v)) if v.size else math.nan


def coco_metrics(
    *,
    images: Sequence[Mapping[str, Any]],
    categories: Sequence[Mapping[str, Any]],
    truth: Sequence[Mapping[str, Any]],
    predictions: Sequence[Mapping[str, Any]],
    image_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Run ``COCOeval`` (bbox) silently and read AP / AR per area range and per class.

    Parameters
    ----------
    images : sequence of mappings
        COCO image records (``id``, ``width``, ``height``).
    categories : sequence of mappings
        COCO categories (``id``, ``name``).
    truth : sequence of mappings
        Truth annotations (``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]`` px). Every
        annotation is a real object: ``iscrowd`` is not supported and is set to 0; ``area`` is
        recomputed as ``w * h`` so that the area ranges mean box sides.
    predictions : sequence of mappings
        COCO results (``image_id``, ``category_id``, ``bbox``, ``score``); may be empty.
    image_ids : sequence of int, optional
        Images to evaluate (default: all ``images``). Images without truth count: their
        detections are false positives.

    Returns
    -------
    dict
        ``AP`` (IoU 0.50:0.95), ``AP50``, ``AP75``, ``AP_small``/``AP_medium``/``AP_large``,
        ``AR1``, ``AR10``, ``AR`` (maxDets 100), ``AR_small``/``AR_medium``/``AR_large``,
        ``per_class`` {name: {AP, AP50, AP75, AR}} and ``precision_recall`` (the IoU 0.5
        precision at COCO's 101 recall points, per class and averaged). A metric without any
        truth to score against (e.g. no large clumps) is NaN.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cats = [{"id": int(c["id"]), "name": str(c["name"])} for c in categories]
    ims = [{"id": int(im["id"]), "width": im["width"], "height": im["height"]} for im in images]
    gt_anns = []
    for k, a in enumerate(truth, start=1):
        x, y, w, h = (float(v) for v in a["bbox"])
        gt_anns.append(
            {
                "id": k,
                "image_id": int(a["image_id"]),
                "category_id": int(a["category_id"]),
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
            }
        )
    dt_anns = []
    for k, p in enumerate(predictions, start=1):
        x, y, w, h = (float(v) for v in p["bbox"])
        dt_anns.append(
            {
                "id": k,
                "image_id": int(p["image_id"]),
                "category_id": int(p["category_id"]),
                "bbox": [x, y, w, h],
                "score": float(p["score"]),
                "area": w * h,
                "iscrowd": 0,
            }
        )

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        gt = COCO()
        gt.dataset = {"images": ims, "categories": cats, "annotations": gt_anns}
        gt.createIndex()
        dt = COCO()
        dt.dataset = {"images": ims, "categories": cats, "annotations": dt_anns}
        dt.createIndex()
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.params.imgIds = sorted(int(i) for i in (image_ids if image_ids is not None else gt.imgs))
        ev.params.catIds = [c["id"] for c in cats]
        ev.params.areaRng = [list(v) for v in AREA_RANGES.values()]
        ev.params.areaRngLbl = list(AREA_RANGES)
        ev.params.maxDets = list(MAX_DETS)
        ev.evaluate()
        ev.accumulate()

    params = ev.params
    t = len(params.iouThrs)
    k_n = len(params.catIds)
    a_n = len(params.areaRng)
    m_n = len(params.maxDets)
    r_n = len(params.recThrs)
    if not ev.evalImgs or "precision" not in ev.eval:  # no images at all
        precision = -np.ones((t, r_n, k_n, a_n, m_n))
        recall = -np.ones((t, k_n, a_n, m_n))
    else:
        precision = ev.eval["precision"]  # (T, R, K, A, M)
        recall = ev.eval["recall"]  # (T, K, A, M)
    i50 = int(np.argmin(np.abs(params.iouThrs - 0.5)))
    i75 = int(np.argmin(np.abs(params.iouThrs - 0.75)))
    area_idx = {name: i for i, name in enumerate(AREA_RANGES)}
    a_all = area_idx["all"]
    m_last = m_n - 1

    out: dict[str, Any] = {
        "AP": _mean_valid(precision[:, :, :, a_all, m_last]),
        "AP50": _mean_valid(precision[i50, :, :, a_all, m_last]),
        "AP75": _mean_valid(precision[i75, :, :, a_all, m_last]),
    }
    for name in ("small", "medium", "large"):
        out[f"AP_{name}"] = _mean_valid(precision[:, :, :, area_idx[name], m_last])
    for m, md in enumerate(params.maxDets):
        key = "AR" if m == m_last else f"AR{md}"
        out[key] = _mean_valid(recall[:, :, a_all, m])
    for name in ("small", "medium", "large"):
        out[f"AR_{name}"] = _mean_valid(recall[:, :, area_idx[name], m_last])

    per_class: dict[str, dict[str, float]] = {}
    pr_curves: dict[str, list[float]] = {}
    pr50 = precision[i50, :, :, a_all, m_last]  # (R, K)
    for k, c in enumerate(cats):
        per_class[c["name"]] = {
            "AP": _mean_valid(precision[:, :, k, a_all, m_last]),
            "AP50": _mean_valid(precision[i50, :, k, a_all, m_last]),
            "AP75": _mean_valid(precision[i75, :, k, a_all, m_last]),
            "AR": _mean_valid(recall[:, k, a_all, m_last]),
        }
        col = pr50[:, k]
        pr_curves[c["name"]] = [float(v) if v > -1 else math.nan for v in col]
    valid = pr50 > -1
    with np.errstate(invalid="ignore", divide="ignore"):
        avg = np.where(valid, pr50, 0).sum(axis=1) / valid.sum(axis=1)
    pr_curves = {"all": [float(v) for v in avg], **pr_curves}
    out["per_class"] = per_class
    out["precision_recall"] = {
        "iou_threshold": float(params.iouThrs[i50]),
        "recall": [float(r) for r in params.recThrs],
        "precision": pr_curves,
    }
    return out
