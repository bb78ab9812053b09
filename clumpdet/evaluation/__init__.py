"""Detection evaluation: COCO AP/AR (pycocotools) plus completeness / purity, curves and plots."""

from __future__ import annotations

from clumpdet.evaluation.coco import AREA_RANGES, coco_metrics
from clumpdet.evaluation.detection import (
    DetectionEvaluator,
    binned_completeness,
    evaluate_detections,
    to_json_safe,
)
from clumpdet.evaluation.matching import (
    MatchResult,
    box_iou,
    centre_distance,
    f1_score,
    match_detections,
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
    "to_json_safe",
]
