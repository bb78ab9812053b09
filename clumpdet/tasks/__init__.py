"""Galaxy-classification tasks: one :class:`Task` object per task, registered in :data:`TASKS`.

========== ===================================================== ==========================
task       outputs                                               simulator
========== ===================================================== ==========================
merger     1 logit, P(merger) by sigmoid (DeepMerge)              ``mergers``
gz_votes   37 Galaxy Zoo fractions through the decision tree      ``morphology``
candels    5 CANDELS morphology fractions (softmax)               ``morphology``
four_class 4 logits: normal, ringed, merger, other (softmax)      ``four_class``
binary     1 logit for any 0/1 column, named by the data          none
multiclass K logits for any K classes, named by the data          none
========== ===================================================== ==========================

The Galaxy Zoo decision tree is :mod:`clumpdet.tasks.gz_tree`; the vote losses are
:mod:`clumpdet.tasks.losses`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clumpdet.tasks import binary, candels, four_class, gz_votes, merger, multiclass  # noqa: F401
from clumpdet.tasks.base import TASKS, Task, VoteFractionTask

__all__ = [
    "TASKS",
    "Task",
    "VoteFractionTask",
    "get_task",
    "label_names",
    "predict_from_outputs",
]


def get_task(name: str, *, label_names: Sequence[str] = ()) -> Task:
    """The registered task ``name`` with outputs ``label_names`` (default: the task's own).

    Raises
    ------
    RegistryError
        Unknown name (the message lists the registered tasks).
    ConfigError
        ``label_names`` of the wrong length for the task.
    """
    return TASKS.get(name)(label_names=label_names)


def label_names(task: str) -> tuple[str, ...]:
    """Default output names of ``task`` (empty for tasks named by their data)."""
    return get_task(task).label_names


def predict_from_outputs(
    task: str, outputs: torch.Tensor, *, dirichlet: bool = False
) -> torch.Tensor:
    """Probabilities or vote fractions ``(B, K)`` from the raw outputs ``(B, K)`` of ``task``."""
    return get_task(task).predict(outputs, dirichlet=dirichlet)
