"""``four_class``: the four-class Galaxy Zoo task (normal, ringed, merger, other)."""

from __future__ import annotations

from clumpdet.tasks.base import TASKS
from clumpdet.tasks.multiclass import MulticlassTask

#: Classes of the four-class task, in one-hot column order.
FOUR_CLASS_LABELS: tuple[str, ...] = ("normal", "ringed", "merger", "other")


@TASKS.register("four_class", help="normal / ringed / merger / other; softmax + cross-entropy")
class FourClassTask(MulticlassTask):
    """4 logits; softmax + cross-entropy. Simulated by ``clumpdet simulate four_class``."""

    name = "four_class"
    simulator = "four_class"
    default_label_names = FOUR_CLASS_LABELS
    fixed_outputs = 4
    names_from_data = False
