"""``merger``: DeepMerge's merger / non-merger task (Ciprijanovic et al. 2020)."""

from __future__ import annotations

from clumpdet.tasks.base import TASKS
from clumpdet.tasks.binary import BinaryTask


@TASKS.register("merger", help="merger or not (DeepMerge); sigmoid + cross-entropy")
class MergerTask(BinaryTask):
    """One logit; ``sigmoid`` gives P(merger). Simulated by ``clumpdet simulate mergers``."""

    name = "merger"
    simulator = "mergers"
    default_label_names = ("merger",)
    names_from_data = False

    @property
    def negative_name(self) -> str:
        return "non-merger"

    @property
    def positive_name(self) -> str:
        return "merger"

    def sim_columns(self) -> tuple[str, ...]:
        return ("MergerLabel",)
