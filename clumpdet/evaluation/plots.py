"""PNG plots of detection metrics (matplotlib, Agg; no pyplot global state).

Every function takes the metrics dict of :meth:`DetectionEvaluator.evaluate` (or one of its
curves) and writes one PNG atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clumpdet.utils import atomic_path

_COLOURS = {"completeness": "tab:blue", "purity": "tab:orange", "f1": "tab:green"}
_CLASS_COLOURS = ["tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def _arr(xs: Any) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in xs], dtype=np.float64)


def _rule(metrics: Mapping[str, Any]) -> str:
    m = metrics["matching"]
    if m["rule"] == "iou":
        return f"IoU ≥ {m['iou_threshold']:g}"
    return f"centre distance ≤ {m['centre_radius']:g} px"


def _figure(size: tuple[float, float] = (6.4, 4.8)) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=110, layout="constrained")


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_threshold_curves(metrics: Mapping[str, Any], path: str | Path) -> Path:
    """Completeness, purity and F1 versus score threshold, with the operating and best-F1 cuts.

    Parameters
    ----------
    metrics : mapping
        Metrics dict (needs ``curves.threshold``, ``best_f1``, ``score_threshold``).
    path : str or Path
        Output PNG.
    """
    cur = metrics["curves"]["threshold"]
    t = np.asarray(cur["thresholds"], dtype=float)
    fig = _figure()
    ax = fig.add_subplot()
    for key, style in (("completeness", "-"), ("purity", "-"), ("f1", "--")):
        label = "F1" if key == "f1" else key.capitalize()
        ax.plot(t, _arr(cur[key]), style, color=_COLOURS[key], lw=2, label=label)
    thr = metrics["score_threshold"]
    best = metrics["best_f1"]
    ax.axvline(thr, color="0.4", ls=":", lw=1.5, label=f"operating threshold {thr:g}")
    if best["threshold"] is not None and math.isfinite(best["threshold"]):
        ax.axvline(best["threshold"], color=_COLOURS["f1"], ls=":", lw=1.5,
                   label=f"best F1 at {best['threshold']:.2f}")  # fmt: skip
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("score threshold")
    ax.set_ylabel("fraction")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=9)
    ax.set_title(
        f"Completeness / purity vs score threshold ({_rule(metrics)})\n"
        f"at {thr:g}: C={_fmt(metrics['completeness'])} P={_fmt(metrics['purity'])} "
        f"F1={_fmt(metrics['f1'])}; best F1={_fmt(best['f1'])} at {_fmt(best['threshold'], 2)}",
        fontsize=10,
    )
    return _save(fig, Path(path))


def plot_binned_completeness(
    metrics: Mapping[str, Any], curve: Mapping[str, Any], path: str | Path, *, xlabel: str
) -> Path:
    """Completeness in bins of a truth property, with 68% Wilson intervals and truth counts.

    Parameters
    ----------
    metrics : mapping
        Metrics dict (for the title: overall completeness, threshold, matching rule).
    curve : mapping
        A curve from :func:`~clumpdet.evaluation.detection.binned_completeness`.
    path : str or Path
        Output PNG.
    xlabel : str
        Name of the binned property.
    """
    edges = np.asarray(curve["bin_edges"], dtype=float)
    x = np.asarray(curve["bin_centres"], dtype=float)
    c = _arr(curve["completeness"])
    lo, hi = _arr(curve["completeness_low"]), _arr(curve["completeness_high"])
    n = np.asarray(curve["n_true"], dtype=float)
    fig = _figure()
    ax = fig.add_subplot()
    ax2 = ax.twinx()
    ax2.bar(edges[:-1], n, width=np.diff(edges), align="edge", color="0.85", edgecolor="0.7",
            label="true clumps per bin")  # fmt: skip
    ax2.set_ylabel("true clumps per bin", color="0.4")
    ax2.tick_params(axis="y", colors="0.4")
    ax2.set_ylim(0, max(1.0, float(n.max())) * 1.25)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)
    ok = np.isfinite(c)
    yerr = [np.clip(c[ok] - lo[ok], 0, None), np.clip(hi[ok] - c[ok], 0, None)]
    ax.errorbar(x[ok], c[ok], yerr=yerr, fmt="o-",
                color=_COLOURS["completeness"], lw=2, capsize=3,
                label="completeness (68% interval)")  # fmt: skip
    overall = metrics["completeness"]
    if overall is not None and math.isfinite(overall):
        ax.axhline(overall, color=_COLOURS["completeness"], ls=":", lw=1,
                   label=f"overall {overall:.3f}")  # fmt: skip
    if curve.get("scale", "log") == "log":
        ax.set_xscale("log")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("completeness")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    n_tot = int(n.sum())
    excl = curve.get("n_excluded", 0)
    ax.set_title(
        f"Completeness vs {xlabel}\nscore ≥ {metrics['score_threshold']:g}, {_rule(metrics)}; "
        f"{n_tot} clumps" + (f" ({excl} without a value)" if excl else ""),
        fontsize=10,
    )
    return _save(fig, Path(path))


def plot_precision_recall(metrics: Mapping[str, Any], path: str | Path) -> Path:
    """COCO precision-recall curves at IoU 0.5, all classes and per class, with AP50.

    Parameters
    ----------
    metrics : mapping
        Metrics dict (needs ``curves.precision_recall``, ``AP50``, ``per_class``).
    path : str or Path
        Output PNG.
    """
    pr = metrics["curves"]["precision_recall"]
    r = np.asarray(pr["recall"], dtype=float)
    fig = _figure()
    ax = fig.add_subplot()
    n_plotted = 0
    for k, (name, prec) in enumerate(pr["precision"].items()):
        p = _arr(prec)
        if not (np.nan_to_num(p) > 0).any():  # no truth, or nothing ever matched
            continue
        n_plotted += 1
        if name == "all":
            ap, colour, lw = metrics["AP50"], "black", 2.5
            label = f"all classes (AP50={_fmt(ap)})"
        else:
            ap = metrics["per_class"][name]["AP50"]
            colour, lw = _CLASS_COLOURS[(k - 1) % len(_CLASS_COLOURS)], 1.5
            label = f"{name} (AP50={_fmt(ap)})"
        # COCO sets precision to 0 beyond the highest recall reached: end the curve there.
        end = int(np.flatnonzero(np.nan_to_num(p) > 0)[-1]) + 1
        ax.plot(r[:end], p[:end], color=colour, lw=lw, label=label)
        ax.plot(r[end - 1], p[end - 1], "o", color=colour, ms=4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall (class-aware)")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    if n_plotted:
        ax.legend(loc="lower left", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no curve: no truth, or no detection matched at this IoU",
                ha="center", va="center", transform=ax.transAxes)  # fmt: skip
    ax.set_title(
        f"COCO precision-recall at IoU {pr['iou_threshold']:g}, all scores\n"
        f"AP={_fmt(metrics['AP'])} AP50={_fmt(metrics['AP50'])} AP75={_fmt(metrics['AP75'])} "
        "(curves end at the highest recall reached)",
        fontsize=10,
    )
    return _save(fig, Path(path))


def write_plots(metrics: Mapping[str, Any], out: str | Path) -> list[Path]:
    """Write every available plot into directory ``out``; return the paths written.

    Writes ``completeness_purity_vs_threshold.png``, ``precision_recall.png`` and, when the
    truth carried those fields, ``completeness_vs_flux_ratio.png`` and
    ``completeness_vs_snr.png``.
    """
    out = Path(out)
    curves = metrics["curves"]
    paths = [
        plot_threshold_curves(metrics, out / "completeness_purity_vs_threshold.png"),
        plot_precision_recall(metrics, out / "precision_recall.png"),
    ]
    if curves.get("completeness_vs_flux_ratio"):
        paths.append(
            plot_binned_completeness(
                metrics,
                curves["completeness_vs_flux_ratio"],
                out / "completeness_vs_flux_ratio.png",
                xlabel="clump / host flux ratio",
            )
        )
    if curves.get("completeness_vs_snr"):
        paths.append(
            plot_binned_completeness(
                metrics,
                curves["completeness_vs_snr"],
                out / "completeness_vs_snr.png",
                xlabel="clump S/N",
            )
        )
    return paths
