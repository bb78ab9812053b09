"""Tables, plots and the markdown summary of a backbone-transfer grid.

See :mod:`clumpdet.experiments.transfer` for the grid and its output layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clumpdet.utils import atomic_path, atomic_write, markdown_table

#: Columns of ``results.csv`` (in order). ``epochs`` / ``step_budget``: what the budget allowed;
#: ``epochs_run`` / ``steps``: what the cell used; ``best_epoch``: the epoch (from 0) of the
#: restored weights; ``stopped_epoch``: the epoch (from 0) at which early stopping ended it
#: (empty when it used the whole budget); ``purity_at_c90``: the best purity at completeness
#: >= 0.9; ``val_f1``: validation F1 of the restored weights.
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
    "purity_at_c90",
    "clump_completeness",
    "clump_purity",
    "val_f1",
    "wall_s",
    "epochs",
    "step_budget",
    "val_every",
    "patience",
    "epochs_run",
    "steps",
    "best_epoch",
    "early_stopped",
    "stopped_epoch",
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


#: Metrics tabulated and plotted per backbone x trainable x size.
METRICS = ("completeness", "purity", "f1", "AP50", "purity_at_c90")


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[df["status"] == "ok"].copy()
    for c in (*METRICS, "wall_s", "epochs_run", "steps", "stopped_epoch", "train_size"):
        if c in ok:
            ok[c] = pd.to_numeric(ok[c], errors="coerce")
    if "f1" in ok and "completeness" in ok:  # nothing found is F1 0 (cells from before it: null)
        ok.loc[ok["f1"].isna() & (ok["completeness"] == 0), "f1"] = 0.0
    return ok


def mean_interval(values: Any, level: float = 0.68) -> tuple[float, float, float]:
    """Mean and its ``level`` confidence interval (Student t) over seeds.

    Parameters
    ----------
    values : array-like
        One value per seed (NaN ignored).
    level : float
        Two-sided coverage (0.68: about the mean ± its standard error for many seeds).

    Returns
    -------
    (mean, low, high) : tuple of float
        ``low == high == mean`` for a single value; all NaN for none.
    """
    from scipy import stats

    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=float)
    if v.size == 0:
        return (math.nan, math.nan, math.nan)
    m = float(v.mean())
    if v.size == 1:
        return (m, m, m)
    half = float(stats.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return (m, m - half, m + half)


def _fmt_interval(values: Any) -> str:
    m, lo, hi = mean_interval(values)
    if not math.isfinite(m):
        return "–"
    if lo == hi:
        return f"{m:.3f}"
    return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"


def crossing_size(sizes: Sequence[float], means: Sequence[float], target: float) -> float:
    """Smallest training size at which a learning curve reaches ``target``.

    Linear interpolation in log(size) between the last size below ``target`` and the first at or
    above it.

    Parameters
    ----------
    sizes : sequence of float
        Training-set sizes, increasing.
    means : sequence of float
        The curve's value at each size (NaN: not measured, skipped).
    target : float
        Value to reach.

    Returns
    -------
    float
        The size; ``sizes[0]`` when the first size already reaches it (an upper bound on the
        true crossing); ``inf`` when no size reaches it.
    """
    pts = [(float(n), float(m)) for n, m in zip(sizes, means) if math.isfinite(float(m))]
    for k, (n, m) in enumerate(pts):
        if m >= target:
            if k == 0:
                return n
            n0, m0 = pts[k - 1]
            frac = (target - m0) / (m - m0) if m > m0 else 1.0
            return float(math.exp(math.log(n0) + frac * (math.log(n) - math.log(n0))))
    return math.inf


def _resample_means(groups: list[np.ndarray], rng: np.random.Generator | None) -> list[float]:
    out = []
    for g in groups:
        if g.size == 0:
            out.append(math.nan)
        elif rng is None:
            out.append(float(g.mean()))
        else:
            out.append(float(rng.choice(g, size=g.size, replace=True).mean()))
    return out


def data_saving_factors(
    df: pd.DataFrame,
    *,
    metric: str = "f1",
    reference: str | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Data-saving factor of every backbone x trainable curve against the scratch reference.

    The target is the reference curve's mean ``metric`` at the largest training size; a curve's
    *size to target* is :func:`crossing_size` of its mean curve, and its factor is the largest
    size divided by that size (2 = it needs half the labels that scratch needs). The 68 %
    interval comes from a bootstrap over seeds: each cell's seeds (the reference's at the
    largest size too) are resampled with replacement.

    Parameters
    ----------
    df : pandas.DataFrame
        Results table (:data:`RESULT_COLUMNS`); only ``ok`` cells are used.
    metric : str
        Column of the target (default ``f1``).
    reference : str or None
        ``backbone/trainable`` of the reference; default the ``scratch`` backbone's trainable
        setting with the highest mean ``metric`` at the largest size (or the first curve when
        there is no ``scratch``).
    n_boot : int
        Bootstrap resamples.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        One row per curve: ``backbone, trainable, reference, target, target_low, target_high,
        size_to_target, factor, factor_low, factor_high, reached, lower_bound, largest_size``.
        ``factor`` is ``inf``-free: a curve that reaches the target at its smallest size has
        ``lower_bound=True`` (the factor is at least that value); one that never reaches it has
        ``reached=False`` and factor 0 (needs more than the largest size); one that was not
        run up to the largest size (``measured_to``) and has not reached it there has factor
        NaN (undetermined).
    """
    ok = _ok(df)
    cols = ["backbone", "trainable", "reference", "target", "target_low", "target_high",
            "size_to_target", "factor", "factor_low", "factor_high", "reached", "lower_bound",
            "measured_to", "largest_size"]  # fmt: skip
    if ok.empty:
        return pd.DataFrame(columns=cols)
    sizes = sorted(float(n) for n in ok["train_size"].unique())
    if len(sizes) < 2:  # a factor needs a curve
        return pd.DataFrame(columns=cols)
    largest = sizes[-1]
    curves: dict[tuple[str, str], list[np.ndarray]] = {}
    for (bb, tr), g in ok.groupby(["backbone", "trainable"], sort=False):
        by = {
            float(n): v[metric].dropna().to_numpy(dtype=float) for n, v in g.groupby("train_size")
        }
        curves[(str(bb), str(tr))] = [by.get(n, np.array([])) for n in sizes]
    if reference is None:
        scratch = [k for k in curves if k[0] == "scratch" and curves[k][-1].size]
        pool = scratch or [k for k in curves if curves[k][-1].size]
        if not pool:
            return pd.DataFrame(columns=cols)
        ref = max(pool, key=lambda k: float(curves[k][-1].mean()))
    else:
        ref = tuple(reference.split("/", 1))  # type: ignore[assignment]
        if ref not in curves or not curves[ref][-1].size:
            return pd.DataFrame(columns=cols)
    ref_last = curves[ref][-1]
    target, t_lo, t_hi = mean_interval(ref_last)
    rng = np.random.default_rng(seed)
    rows = []

    for key, groups in curves.items():
        if not any(g.size for g in groups):  # no finite value at any size: nothing to say
            continue
        # a curve not measured up to the largest size that has not reached the target by its
        # own largest size is undetermined (it may reach it at a size that was not run)
        measured = max(n for n, g in zip(sizes, groups) if g.size)

        def factor_of(n_star: float, measured: float = measured) -> float:
            if math.isfinite(n_star):
                return largest / n_star
            return 0.0 if measured >= largest else math.nan

        n_star = crossing_size(sizes, _resample_means(groups, None), target)
        boots = np.empty(n_boot)
        for i in range(n_boot):
            t_b = float(rng.choice(ref_last, size=ref_last.size, replace=True).mean())
            f_b = factor_of(crossing_size(sizes, _resample_means(groups, rng), t_b))
            boots[i] = largest / measured if math.isnan(f_b) else f_b  # censored: below that
        point = factor_of(n_star)
        if math.isnan(point) or ref_last.size < 2 or any(0 < g.size < 2 for g in groups):
            boots[:] = math.nan  # one seed somewhere: no interval, not a zero-width one
        rows.append(
            {
                "backbone": key[0],
                "trainable": key[1],
                "reference": f"{ref[0]}/{ref[1]}",
                "target": target,
                "target_low": t_lo,
                "target_high": t_hi,
                "size_to_target": n_star if math.isfinite(n_star) else math.nan,
                "factor": point,
                "factor_low": float(np.quantile(boots, 0.16)),
                "factor_high": float(np.quantile(boots, 0.84)),
                "reached": math.isfinite(n_star),
                "measured_to": int(measured),
                "lower_bound": bool(math.isfinite(n_star) and n_star <= sizes[0]),
                "largest_size": int(largest),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _fmt_factor(value: float, *, upper_cap: float) -> str:
    if math.isnan(value):
        return "–"
    if value <= 0:
        return "< 1"
    if value >= upper_cap - 1e-9:
        return f"≥ {upper_cap:.3g}"
    return f"{value:.2f}"


def saving_verdict(factors: pd.DataFrame, *, label: str = "F1") -> list[str]:
    """Plain sentences: does each pretrained trunk save labels against the scratch reference?

    A curve *saves labels* when the lower end of its 68 % factor interval is above 1, *costs
    labels* when the upper end is below 1, and otherwise the data cannot tell. ``label`` names
    the factor's metric in the sentences.
    """
    if factors.empty:
        return [
            "No data-saving factor yet: it needs finished cells at two or more training sizes, "
            "the reference's at the largest."
        ]
    lines = []
    ref = factors["reference"].iloc[0]
    n_max = int(factors["largest_size"].iloc[0])
    what = f"scratch's {n_max}-image {label}"
    for r in factors.itertuples():
        if f"{r.backbone}/{r.trainable}" == ref:
            continue
        cap = n_max / r.size_to_target if r.lower_bound else math.inf
        f = _fmt_factor(r.factor, upper_cap=cap)
        interval = (
            f"{_fmt_factor(r.factor_low, upper_cap=cap)} – "
            f"{_fmt_factor(r.factor_high, upper_cap=cap)}"
        )
        if math.isnan(r.factor):
            verdict = (
                f"undetermined: below {what} at {r.measured_to} images, its largest finished size"
            )
        elif math.isnan(r.factor_low):
            verdict = (
                f"factor {f}, no interval: a single seed at some size, so the data cannot say "
                "whether it saves labels"
            )
        elif r.factor_low > 1:
            verdict = f"saves labels: it reaches {what} with {f}x fewer images (68 %: {interval})"
        elif r.factor_high < 1:
            verdict = f"saves no labels: it does not reach {what} (factor {f}, 68 %: {interval})"
        else:
            verdict = f"no clear saving: the factor's 68 % interval ({interval}) spans 1"
        lines.append(f"- **{r.backbone} / {r.trainable}**: {verdict}.")
    return lines or ["Only the reference curve finished: nothing to compare."]


def plot_transfer_results(df: pd.DataFrame, *, out: str | Path) -> list[Path]:
    """Learning curves and a per-backbone bar chart at the largest size (PNG).

    Parameters
    ----------
    df : pandas.DataFrame
        The results table of :func:`clumpdet.experiments.transfer.run_transfer_grid`.
    out : str or Path
        Directory for ``learning_curves.png`` (F1, AP50, completeness, purity and purity at
        completeness 0.9 vs training size, one line per backbone x trainable: mean over seeds,
        band: its 68 % confidence interval; the dotted lines are the scratch reference F1 and
        AP50 at the largest size) and ``backbones_at_largest_size.png`` (grouped bars, mean
        with 68 % error bars).

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
    metrics = ("f1", "AP50", "completeness", "purity", "purity_at_c90")
    titles = {"purity_at_c90": "purity at completeness 0.9"}
    fig, axes = plt.subplots(2, 3, figsize=(17, 8.4), constrained_layout=True)
    axes, legend_ax = axes.ravel()[: len(metrics)], axes.ravel()[-1]
    for (bb, tr), g in ok.groupby(["backbone", "trainable"], sort=False):
        per = g.groupby("train_size")
        x = np.array(sorted(per.groups), dtype=float)
        line = None
        for ax, m in zip(axes, metrics):
            stats = np.array([mean_interval(per.get_group(n)[m]) for n in x])
            if np.isfinite(stats[:, 0]).any():
                style = "o--" if tr in ("frozen",) else "o-"
                kw = {"color": line.get_color()} if line is not None else {}
                (ln,) = ax.plot(x, stats[:, 0], style, label=f"{bb} / {tr}", **kw)
                line = line or ln
                ax.fill_between(x, stats[:, 1], stats[:, 2], color=ln.get_color(), alpha=0.18, lw=0)
    for ax, m in zip(axes[:2], metrics[:2]):  # the data-saving targets of F1 and AP50
        factors = data_saving_factors(df, metric=m, n_boot=1)
        if not factors.empty:
            label = f"target: {factors['reference'].iloc[0]} at largest size"
            ax.axhline(factors["target"].iloc[0], color="k", ls=":", lw=1, label=label)
    n_seeds = ok["seed"].nunique()
    sizes = sorted(int(s) for s in ok["train_size"].unique())
    for ax, m in zip(axes, metrics):
        vals = pd.to_numeric(ok[m], errors="coerce")
        if not vals.notna().any():
            ax.text(0.5, 0.5, "no cell reaches it", ha="center", transform=ax.transAxes)
        # AP50 of small CPU runs is far below 1: scale its axis to the data
        top = max(0.2, 1.3 * float(vals.max())) if m == "AP50" and vals.notna().any() else 1.02
        ax.set(xscale="log", xlabel="training images", ylabel=m, ylim=(0, min(top, 1.02)))
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.set_xlim(min(sizes) / 1.25, max(sizes) * 1.25)  # the same on an empty panel
        ax.minorticks_off()
        ax.set_title(f"{titles.get(m, m)} (mean, 68 % CI over {n_seeds} seed(s))", fontsize=10)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    legend_ax.axis("off")
    legend_ax.legend(handles, labels, title="backbone / trainable", loc="center", fontsize=9)
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
    bars = ("completeness", "purity", "f1")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    for ax, m in zip(axes, bars):
        for j, tr in enumerate(trainables):
            stats = []
            for bb in backbones:
                sel = at[(at["trainable"] == tr) & (at["backbone"] == bb)][m]
                stats.append(mean_interval(sel))
            st = np.array(stats, dtype=float)
            err = np.nan_to_num(np.abs(st[:, 1:] - st[:, :1]).T)
            xs = np.arange(len(backbones)) + (j - (len(trainables) - 1) / 2) * width
            ax.bar(xs, st[:, 0], width, yerr=err, capsize=3, label=tr)
        ax.set_xticks(np.arange(len(backbones)), backbones, fontsize=8)
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


def _stop_text(g: pd.DataFrame) -> str:
    """``k/n`` cells stopped early, with their mean stopping epoch (1-based)."""
    stopped = pd.to_numeric(g["stopped_epoch"], errors="coerce").dropna()
    if stopped.empty:
        return f"0/{len(g)}"
    return f"{len(stopped)}/{len(g)} (ep {stopped.mean() + 1:.0f})"


def _factor_lines(df: pd.DataFrame, *, metric: str, label: str, reference: str | None) -> list[str]:
    """Markdown lines of one data-saving-factor table (``metric``, named ``label``)."""
    factors = data_saving_factors(df, metric=metric, reference=reference)
    if factors.empty:
        return [saving_verdict(factors, label=label)[0], ""]
    ref = factors["reference"].iloc[0]
    n_max = int(factors["largest_size"].iloc[0])
    t, lo, hi = factors[["target", "target_low", "target_high"]].iloc[0]
    lines = [
        f"Target: the {label} of `{ref}` at {n_max} training images, {t:.3f} (68 % CI "
        f"[{lo:.3f}, {hi:.3f}]). Size to target: the smallest training set whose mean {label} "
        "reaches it (log-linear interpolation between measured sizes); factor = "
        f"{n_max} / that size (> 1: fewer labels than scratch; '< 1': not reached within "
        f"{n_max}); 68 % interval from a bootstrap over seeds.",
        "",
    ]
    rows = []
    for r in factors.itertuples():
        cap = n_max / r.size_to_target if r.lower_bound else math.inf
        size = (f"> {r.measured_to}") if not r.reached else (
            ("≤ " if r.lower_bound else "") + f"{r.size_to_target:.0f}"
        )  # fmt: skip
        rows.append([
            r.backbone, r.trainable, size, _fmt_factor(r.factor, upper_cap=cap),
            f"{_fmt_factor(r.factor_low, upper_cap=cap)} – "
            f"{_fmt_factor(r.factor_high, upper_cap=cap)}",
        ])  # fmt: skip
    header = ["backbone", "trainable", "size to target", "factor", "68 % interval"]
    return [*lines, markdown_table(header, rows), "", *saving_verdict(factors, label=label), ""]


def write_transfer_summary(
    df: pd.DataFrame,
    *,
    out: str | Path,
    command: str | None = None,
    classification: pd.DataFrame | None = None,
    reference: str | None = None,
) -> Path:
    """Write a markdown summary: data-saving factors, then every curve point with its 68 % CI.

    Parameters
    ----------
    df : pandas.DataFrame
        The results table of :func:`clumpdet.experiments.transfer.run_transfer_grid`.
    out : str or Path
        The markdown file.
    command : str, optional
        Command line that produced it (recorded verbatim).
    classification : pandas.DataFrame, optional
        The classification table, summarised as mean ± std over seeds.
    reference : str, optional
        ``backbone/trainable`` of the data-saving reference (see :func:`data_saving_factors`).
    """
    ok = _ok(df)
    lines = ["# Backbone-transfer grid", ""]
    lines += ["## Data-saving factor", ""]
    lines += _factor_lines(df, metric="f1", label="F1", reference=reference)
    lines += [
        "### The same by AP50",
        "",
        "AP50 needs no score threshold: at small training sizes a detector's scores often stay "
        "below the operating threshold (F1 = 0) while its ranking already improves, so this "
        "factor is the steadier of the two.",
        "",
    ]
    lines += _factor_lines(df, metric="AP50", label="AP50", reference=reference)
    lines += [
        "## Learning curves",
        "",
        "Mean over seeds with its 68 % confidence interval (Student t; one seed shows its "
        "value). P@C0.9: best purity at completeness >= 0.9. Steps: mean optimiser steps used "
        "(budget in brackets); stopped: cells ended by early stopping (mean epoch, from 1); "
        "wall_s: mean seconds per cell (train + test).",
        "",
    ]
    rows = []
    for (bb, tr, n), g in ok.groupby(["backbone", "trainable", "train_size"], sort=False):
        budget = pd.to_numeric(g["step_budget"], errors="coerce").mean()
        rows.append([
            bb, tr, int(n), len(g), *(_fmt_interval(g[c]) for c in METRICS),
            f"{g['epochs_run'].mean():.1f}" if g["epochs_run"].notna().any() else "–",
            (f"{g['steps'].mean():.0f}" if g["steps"].notna().any() else "–")
            + (f" ({budget:.0f})" if math.isfinite(budget) else ""),
            _stop_text(g), f"{g['wall_s'].mean():.0f}",
        ])  # fmt: skip
    header = ["backbone", "trainable", "train size", "seeds", "completeness", "purity", "f1",
              "AP50", "P@C0.9", "epochs", "steps", "stopped", "wall_s"]  # fmt: skip
    lines += [markdown_table(header, rows)]
    skipped = df[df["status"] != "ok"]
    if not skipped.empty:
        lines += ["", "## Cells not run", ""]
        reasons: dict[str, list[str]] = {}
        for r in skipped.itertuples():
            reasons.setdefault(str(r.status), []).append(str(r.cell_id))
        for why, ids in reasons.items():
            shown = ", ".join(f"`{c}`" for c in ids[:6]) + (" ..." if len(ids) > 6 else "")
            lines.append(f"- {len(ids)} cell(s): {why} ({shown})")
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
