"""Detection evaluation: COCO AP/AR (pycocotools) plus completeness / purity, curves and plots."""

from __future__ import annotations

from clumpdet.evaluation.coco import AREA_RANGES, coco_metrics
from clumpdet.evaluation.detection import (
    DetectionEvaluator,
    binned_completeness,
    evaluate_detections,
    to_json_safe,
    wilson_interval,
)
from clumpdet.evaluation.matching import (
    MatchResult,
    box_iou,
    centre_distance,
    f1_score,
    match_detections,
    match_points,
)

__all__ = [
    "AREA_RANGES",
    "DetectionEvaluator",
    "MatchResult",
    "binned_completeness",
    "box_iou",
    "centre_distance",
    "coco_metrics",
    "evaluate_detections",
    "f1_score",
    "match_detections",
    "match_points",
    "to_json_safe",
    "wilson_interval",
]
