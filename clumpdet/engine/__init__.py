"""Training loops (Lightning) and checkpoints."""

from clumpdet.engine.checkpoint import (
    DetectorBundle,
    load_detector_checkpoint,
    save_detector_checkpoint,
)
from clumpdet.engine.config import TrainConfig

__all__ = [
    "DetectorBundle",
    "TrainConfig",
    "load_detector_checkpoint",
    "save_detector_checkpoint",
]
