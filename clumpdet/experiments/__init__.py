"""Experiment runners built on the library (backbone-transfer grids and learning curves)."""

from __future__ import annotations

from clumpdet.experiments.transfer import (
    TransferConfig,
    cell_id,
    epochs_for_size,
    plot_transfer_results,
    run_transfer_grid,
    write_transfer_summary,
)

__all__ = [
    "TransferConfig",
    "cell_id",
    "epochs_for_size",
    "plot_transfer_results",
    "run_transfer_grid",
    "write_transfer_summary",
]
