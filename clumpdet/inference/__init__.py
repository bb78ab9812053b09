"""Using trained models: tiled detection, catalogues, overlays and classifier predictions.

Nothing here imports the training package (:mod:`clumpdet.engine`); models are loaded from
:mod:`clumpdet.checkpoints`.
"""

from clumpdet.inference.catalogue import build_catalogue, write_catalogue
from clumpdet.inference.classifier import predict_with_checkpoints
from clumpdet.inference.predictor import CocoPredictions, Predictor
from clumpdet.inference.run import run_detection

__all__ = [
    "CocoPredictions",
    "Predictor",
    "build_catalogue",
    "predict_with_checkpoints",
    "run_detection",
    "write_catalogue",
]
