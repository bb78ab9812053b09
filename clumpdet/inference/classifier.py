"""Galaxy-classifier predictions: ensembles of models or checkpoints, with optional TTA."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clumpdet.checkpoints import load_classifier
from clumpdet.errors import ConfigError
from clumpdet.tasks import predict_from_outputs


@torch.inference_mode()
def predict_arrays(
    models: Sequence[nn.Module],
    loader: Iterable,
    *,
    task: str,
    dirichlet: bool = False,
    tta: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions averaged over an ensemble of models and, with ``tta``, the 8 dihedral views.

    Parameters
    ----------
    models : sequence of nn.Module
        Classifiers of the same task, in eval mode.
    loader : iterable
        Batches ``(x, y, ...)``: preprocessed ``x`` of shape ``(B, C, S, S)`` and targets ``y``
        of shape ``(B, K)``.
    task : str
        The classification task (how outputs become probabilities or vote fractions).
    dirichlet : bool
        Outputs are Dirichlet concentrations (vote-count models).
    tta : bool
        Also average over the 4 rotations of the image and of its mirror.

    Returns
    -------
    targets, predictions : ndarray, shape (N, K)
    """
    ys, ps = [], []
    for batch in loader:
        x, y = batch[0], batch[1]
        views = [x]
        if tta:
            views = [torch.rot90(v, k, dims=(2, 3)) for v in (x, x.flip(3)) for k in range(4)]
        acc = None
        for model in models:
            for v in views:
                pr = predict_from_outputs(task, model(v), dirichlet=dirichlet)
                acc = pr if acc is None else acc + pr
        ps.append((acc / (len(models) * len(views))).cpu().numpy())
        ys.append(y.cpu().numpy())
    return np.concatenate(ys), np.concatenate(ps)


def predict_with_checkpoints(
    checkpoints: Sequence[str | Path],
    images: np.ndarray,
    *,
    tta: bool = False,
    batch_size: int = 64,
) -> np.ndarray:
    """Average the predictions of several classifier checkpoints (Dieleman's model averaging).

    Parameters
    ----------
    checkpoints : sequence of path
        ``classifier.pt`` files of the same task (e.g. different seeds).
    images : ndarray, shape (N, C, H, W)
        Raw images in the checkpoints' bands (each checkpoint applies its own preprocessing).
    tta : bool
        Also average over the 8 rotations/flips of each image.
    batch_size : int
        Images per forward pass.

    Returns
    -------
    ndarray, shape (N, K)
        Probabilities or vote fractions.

    Raises
    ------
    ConfigError
        No checkpoints, or checkpoints of different tasks.
    """
    if not checkpoints:
        raise ConfigError("predict_with_checkpoints: give at least one checkpoint")
    total = None
    tasks = set()
    for path in checkpoints:
        bundle = load_classifier(path)
        tasks.add(bundle.task)
        pre = bundle.preprocessing
        x = torch.from_numpy(np.stack([pre(np.asarray(im)) for im in images]))
        size = bundle.image_size
        if x.shape[-1] != size:
            x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        loader = [
            (x[i : i + batch_size], torch.zeros(len(x[i : i + batch_size]), 1))
            for i in range(0, len(x), batch_size)
        ]
        _, p = predict_arrays(
            [bundle.model],
            loader,
            task=bundle.task,
            dirichlet=bool(bundle.model_config.dirichlet),
            tta=tta,
        )
        total = p if total is None else total + p
    if len(tasks) > 1:
        raise ConfigError(
            f"predict_with_checkpoints: checkpoints of different tasks {sorted(tasks)}"
        )
    return total / len(checkpoints)
