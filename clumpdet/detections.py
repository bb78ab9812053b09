"""The per-image detection container shared by learned and classical detectors."""

from __future__ import annotations

import dataclasses

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
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.labels[keep], self.scores[keep])
