"""Tables, plots and the markdown summary of a backbone-transfer grid.

See :mod:`clumpdet.experiments.transfer` for the grid and its output layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from clumpdet.utils import atomic_path, atomic_write, markdown_table

#: Columns of ``results.csv`` (in order).
RESULT_COLUMNS = (
    "cell_id",
    "backbone",
    "trainable",
    "trainable_stages",
    "train_size",
    "n_train",
    "seed",
    "status",
    "completeness",
    "purity",
    "f1",
    "AP50",
    "clump_completeness",
    "clump_purity",
    "wall_s",
    "epochs",
    "checkpoint",
)

#: Columns of ``classification.csv`` (in order).
CLASSIFICATION_COLUMNS = (
    "cell_id",
    "task",
    "backbone",
    "trainable",
    "trainable_stages",
    "seed",
    "status",
    "accuracy",
    "auc",
    "rmse",
    "wall_s",
    "checkpoint",
)


def write_table(df: pd.DataFrame, out: Path, stem: str) -> None:
    """Write ``OUT/<stem>.csv`` and, when a parquet engine is installed, ``OUT/<stem>.parquet``."""
    with atomic_path(out / f"{stem}.csv") as tmp:
        df.to_csv(tmp, index=False)
    try:
        with atomic_path(out / f"{stem}.parquet") as tmp:
            df.to_parquet(tmp, index=False)
    except ImportError:  # no parquet engine: the CSV is the table
        pass


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[df["status"] == "ok"].copy()
    for c in ("completeness", "purity", "f1", "AP50", "wall_s"):
        ok[c] = pd.to_numeric(ok[c], errors="coerce")
    return ok


def plot_transfer_results(df: pd.DataFrame, *, out: str | Path) -> list[Path]:
    """Learning curves and a per-backbone bar chart of completeness and purity (PNG).

    Parameters
    ----------
    df : pandas.DataFrame
        The results table of :func:`clumpdet.experiments.transfer.run_transfer_grid`.
    out : str or Path
        Directory for ``learning_curves.png`` (completeness and purity vs training size, one
        line per backbone x trainable: mean over seeds, min-max band) and
        ``backbones_at_largest_size.png`` (grouped bars, mean with std error bars).

    Returns
    -------
    list of Path
        The files written (none when no cell succeeded).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    ok = _ok(df)
    if ok.empty:
        return []
    written = []
    metrics = ("completeness", "purity")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for (bb, tr), g in ok.groupby(["backbone", "trainable"], sort=False):
        agg = g.groupby("train_size")[list(metrics)].agg(["mean", "min", "max"]).sort_index()
        x = agg.index.to_numpy(dtype=float)
        for ax, m in zip(axes, metrics):
            (line,) = ax.plot(x, agg[(m, "mean")], "o-", label=f"{bb} / {tr}")
            ax.fill_between(
                x, agg[(m, "min")], agg[(m, "max")], color=line.get_color(), alpha=0.2, lw=0
            )
    n_seeds = ok["seed"].nunique()
    sizes = sorted(int(s) for s in ok["train_size"].unique())
    for ax, m in zip(axes, metrics):
        ax.set(xscale="log", xlabel="training images", ylabel=m, ylim=(0, 1.02))
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set_title(f"{m} (mean; band: min-max over {n_seeds} seed(s))", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, title="backbone / trainable")
    path = out / "learning_curves.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    written.append(path)

    largest = ok["train_size"].max()
    at = ok[ok["train_size"] == largest]
    backbones = list(dict.fromkeys(at["backbone"]))
    trainables = list(dict.fromkeys(at["trainable"]))
    width = 0.8 / max(len(trainables), 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, m in zip(axes, metrics):
        for j, tr in enumerate(trainables):
            g = at[at["trainable"] == tr].groupby("backbone")[m].agg(["mean", "std"])
            g = g.reindex(backbones)
            xs = np.arange(len(backbones)) + (j - (len(trainables) - 1) / 2) * width
            ax.bar(xs, g["mean"], width, yerr=g["std"].fillna(0.0), capsize=3, label=tr)
        ax.set_xticks(np.arange(len(backbones)), backbones)
        ax.set_xlim(-0.5, len(backbones) - 0.5)
        ax.set(ylabel=m, ylim=(0, 1.02), title=f"{m} at {largest} training images")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(title="trainable", fontsize=8)
    path = out / "backbones_at_largest_size.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def _pm(values: pd.Series) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return "–"
    if len(v) == 1:
        return f"{v.iloc[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def write_transfer_summary(
    df: pd.DataFrame,
    *,
    out: str | Path,
    command: str | None = None,
    classification: pd.DataFrame | None = None,
) -> Path:
    """Write a markdown summary: mean ± std over seeds per backbone x trainable x size.

    Parameters
    ----------
    df : pandas.DataFrame
        The results table of :func:`clumpdet.experiments.transfer.run_transfer_grid`.
    out : str or Path
        The markdown file.
    command : str, optional
        Command line that produced it (recorded verbatim).
    classification : pandas.DataFrame, optional
        The classification table, summarised the same way.
    """
    ok = _ok(df)
    cols = ("completeness", "purity", "f1", "AP50")
    rows = [
        [bb, tr, int(n), len(g), *(_pm(g[c]) for c in cols), f"{g['wall_s'].mean():.0f}"]
        for (bb, tr, n), g in ok.groupby(["backbone", "trainable", "train_size"], sort=False)
    ]
    lines = [
        "# Backbone-transfer grid",
        "",
        "Mean ± std over seeds (sample std; a single seed shows its value). "
        "wall_s: mean seconds per cell (train + test).",
        "",
        markdown_table(["backbone", "trainable", "train size", "seeds", *cols, "wall_s"], rows),
    ]
    skipped = df[df["status"] != "ok"]
    if not skipped.empty:
        lines += ["", "## Cells not run", ""]
        lines += [f"- `{r.cell_id}`: {r.status}" for r in skipped.itertuples()]
    if classification is not None and not classification.empty:
        okc = classification[classification["status"] == "ok"]
        rows = [
            [task, bb, tr, len(g), _pm(g["accuracy"]), _pm(g["auc"]), _pm(g["rmse"])]
            for (task, bb, tr), g in okc.groupby(["task", "backbone", "trainable"], sort=False)
        ]
        header = ["task", "backbone", "trainable", "seeds", "accuracy", "auc", "rmse"]
        lines += ["", "## Classification heads", "", markdown_table(header, rows)]
        bad = classification[classification["status"] != "ok"]
        lines += [f"- `{r.cell_id}`: {r.status}" for r in bad.itertuples()]
    lines += ["", f"Total cell wall time: {pd.to_numeric(df['wall_s']).sum():.0f} s", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    out = Path(out)
    with atomic_write(out, "w") as fh:
        fh.write("\n".join(lines))
    return out
