"""Training-curve plot from a Lightning ``CSVLogger`` metrics file."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from clumpdet.utils import atomic_path


def plot_training_curves(
    metrics_csv: str | Path, out_png: str | Path, *, monitor: str, mode: str = "max"
) -> Path:
    """Plot training loss (per epoch) and validation metrics against epoch.

    Parameters
    ----------
    metrics_csv : path
        Lightning ``CSVLogger`` file with ``epoch``, ``train/loss_epoch`` and ``val/*`` columns.
    out_png : path
        Output PNG.
    monitor : str
        The metric that selected the best checkpoint (marked on the plot).
    """
    df = pd.read_csv(metrics_csv)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    total = "train/loss_epoch" if "train/loss_epoch" in df else "train/loss"
    if total in df:
        tr = df.dropna(subset=[total])
        ax1.plot(tr["epoch"] + 1, tr[total], "o-", label="total")
        for col in sorted(
            c
            for c in df.columns
            if c.startswith("train/loss_") and "epoch" not in c and c != "train/loss_step"
        ):
            part = df.dropna(subset=[col])
            ax1.plot(part["epoch"] + 1, part[col], "-", alpha=0.7, label=col.split("/", 1)[1])
    ax1.set(xlabel="epoch", ylabel="training loss", title="Training loss", yscale="log")
    ax1.legend(fontsize=8)
    val_cols = [c for c in df.columns if c.startswith("val/")]
    best_txt = ""
    for col in val_cols:
        v = df.dropna(subset=[col])
        ax2.plot(v["epoch"] + 1, v[col], "o-", label=col.split("/", 1)[1], ms=3)
        if col == monitor and len(v):
            i = v[col].idxmax() if mode == "max" else v[col].idxmin()
            ax2.axvline(v.loc[i, "epoch"] + 1, color="k", ls=":", lw=1)
            best_txt = f" (best {monitor.split('/', 1)[1]}={v.loc[i, col]:.3f})"
    ax2.set(xlabel="epoch", ylabel="value", title="Validation" + best_txt)
    if val_cols and float(df[val_cols].max().max()) <= 1.0:
        ax2.set_ylim(0, 1.02)
    ax2.legend(fontsize=8)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(out_png)
