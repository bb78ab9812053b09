"""Experiment runners built on the library (backbone-transfer grids and learning curves)."""

from __future__ import annotations

from clumpdet.experiments.transfer import run_transfer_grid
from clumpdet.experiments.transfer_config import TransferConfig, cell_id, cell_schedule
from clumpdet.experiments.transfer_report import (
    data_saving_factors,
    plot_transfer_results,
    write_transfer_summary,
)

__all__ = [
    "TransferConfig",
    "cell_id",
    "cell_schedule",
    "data_saving_factors",
    "plot_transfer_results",
    "run_transfer_grid",
    "write_transfer_summary",
]
