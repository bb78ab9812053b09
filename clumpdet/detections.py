"""The per-image detection container shared by learned and classical detectors."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass
class Detections:
    """Detections in one image.

    Attributes
    ----------
    boxes : ndarray, float32, shape (N, 4)
        ``xyxy`` pixels (docs/conventions.md: pixel centres at ``i + 0.5``).
    labels : ndarray, int64, shape (N,)
        1-based class labels (1 clump, 2 odd clump for the clump task).
    scores : ndarray, float32, shape (N,)
        Confidence; higher is more certain.
    """

    boxes: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros((0, 4), dtype=np.float32)
    )
    labels: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scores: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def above(self, threshold: float) -> Detections:
        """The detections with ``score >= threshold``."""
        return self.select(self.scores >= threshold)

    def select(self, keep: np.ndarray) -> Detections:
        """The detections picked by ``keep`` (boolean mask or indices, shape (N,) or (K,))."""
        return Detections(self.boxes[keep], self.labels[keep], self.scores[keep])


def coco_results(
    detections: Sequence[Detections], image_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """COCO results records for every detection (write them with ``write_predictions``).

    Parameters
    ----------
    detections : sequence of Detections
        One per image.
    image_ids : sequence of int
        The COCO image id of each.

    Returns
    -------
    list of dict
        ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}`` (pixels, plain floats).
    """
    if len(detections) != len(image_ids):
        raise ValueError(f"{len(detections)} detections for {len(image_ids)} image ids")
    out = []
    for iid, det in zip(image_ids, detections):
        for box, lab, sc in zip(det.boxes, det.labels, det.scores):
            x1, y1, x2, y2 = (float(v) for v in box)
            out.append(
                {
                    "image_id": int(iid),
                    "category_id": int(lab),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(sc),
                }
            )
    return out
