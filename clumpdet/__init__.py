"""clumpdet: find giant star-forming clumps and deblend sources in galaxy images.

The public API is re-exported lazily so that ``import clumpdet`` stays fast and does not
import torch until a model is needed.
"""

from __future__ import annotations

from clumpdet.utils import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "ClumpdetError": "clumpdet.errors",
    "InputError": "clumpdet.errors",
    "ConfigError": "clumpdet.errors",
    "simulate_clumps": "clumpdet.sim",
    "ClumpSimConfig": "clumpdet.sim",
    "read_image": "clumpdet.data",
    "load_coco": "clumpdet.data",
    "Preprocessing": "clumpdet.data",
    "evaluate_detections": "clumpdet.evaluation",
    "list_backbones": "clumpdet.models",
    "find_clumps": "clumpdet.baselines",
    "run_classical_baseline": "clumpdet.baselines",
    "Predictor": "clumpdet.inference.predictor",
    "load_detector": "clumpdet.checkpoints",
}

__all__ = ["__version__", *sorted(_LAZY)]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
