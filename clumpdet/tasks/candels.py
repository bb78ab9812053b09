"""``candels``: CANDELS visual morphology (Huertas-Company et al. 2015), 5 vote fractions."""

from __future__ import annotations

from clumpdet.tasks.base import TASKS, VoteFractionTask

#: Label names of the CANDELS morphology task, in column order.
CANDELS_LABELS: tuple[str, ...] = (
    "spheroid",
    "disk",
    "irregular",
    "point_source",
    "unclassifiable",
)


@TASKS.register("candels", help="5 CANDELS morphology vote fractions; softmax + MSE")
class CandelsTask(VoteFractionTask):
    """5 softmax fractions trained with MSE. Simulated by ``clumpdet simulate morphology``."""

    name = "candels"
    simulator = "morphology"
    default_label_names = CANDELS_LABELS
    fixed_outputs = 5
