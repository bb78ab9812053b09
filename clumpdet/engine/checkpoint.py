"""Lightning training checkpoints (``RUN/checkpoints/*.ckpt``), read with ``weights_only=True``.

Model checkpoints for use (detectors, classifiers, backbones) live in :mod:`clumpdet.checkpoints`;
this module only serves the training loops: restoring the best epoch and checking ``--resume``
files. A Lightning checkpoint of these loops holds tensors, plain containers and numbers only
(model, optimiser, scheduler, loop and callback state), so it loads without unpickling objects;
a file that needs more is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from clumpdet.errors import CheckpointError, InputError
from clumpdet.utils import load_torch_file


def read_lightning_checkpoint(path: str | Path) -> dict:
    """Load a Lightning ``.ckpt`` with ``weights_only=True`` and check that it is one.

    Raises
    ------
    InputError
        ``"<path>: checkpoint to resume from not found"``.
    CheckpointError
        Unreadable (or needing to unpickle objects), or not a Lightning checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "checkpoint to resume from not found")
    obj = load_torch_file(path, what="Lightning checkpoint")
    if not isinstance(obj, Mapping) or "pytorch-lightning_version" not in obj:
        raise CheckpointError(
            path, "is not a Lightning training checkpoint (RUN/checkpoints/*.ckpt)"
        )
    if not isinstance(obj.get("state_dict"), Mapping):
        raise CheckpointError(path, "Lightning checkpoint holds no state_dict")
    return dict(obj)


def restore_best_weights(module: torch.nn.Module, callback) -> str:
    """Load the best (else last) weights a Lightning ``ModelCheckpoint`` saved into ``module``.

    Read with ``weights_only=True`` (:func:`read_lightning_checkpoint`). Returns the path used,
    or ``""`` when nothing was saved.
    """
    path = callback.best_model_path or callback.last_model_path
    if path:
        module.load_state_dict(read_lightning_checkpoint(path)["state_dict"])
    return path
