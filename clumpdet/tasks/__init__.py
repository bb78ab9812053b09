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

Adding a task is one module in this package holding a :class:`Task` subclass registered with
``@TASKS.register("name")``: every module here is imported when the package is, so the task is
then known to configs (``model.task``), readers and the trainer. The Galaxy Zoo decision tree is
:mod:`clumpdet.tasks.gz_tree`; the vote losses are :mod:`clumpdet.tasks.losses`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

import torch

from clumpdet.tasks.base import TASKS, Task, VoteFractionTask

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")  # registers the task it defines

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
