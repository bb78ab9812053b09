"""PNG plots of detection metrics (matplotlib, Agg; no pyplot global state).

Every function takes the metrics dict of :meth:`DetectionEvaluator.evaluate` (or one of its
curves) and writes one PNG atomically; :func:`plot_source_comparison` takes several methods'
:func:`clumpdet.evaluation.deblending.evaluate_sources` results on a blended-field set.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from clumpdet.utils import atomic_path, format_number

_COLOURS = {"completeness": "tab:blue", "purity": "tab:orange", "f1": "tab:green"}
_CLASS_COLOURS = ["tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]


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
    c, p, f1 = (format_number(metrics[k]) for k in ("completeness", "purity", "f1"))
    best_at = format_number(best["threshold"], digits=2)
    ax.set_title(
        f"Completeness / purity vs score threshold ({_rule(metrics)})\n"
        f"at {thr:g}: C={c} P={p} F1={f1}; best F1={format_number(best['f1'])} at {best_at}",
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
            label = f"all classes (AP50={format_number(ap)})"
        else:
            ap = metrics["per_class"][name]["AP50"]
            colour, lw = _CLASS_COLOURS[(k - 1) % len(_CLASS_COLOURS)], 1.5
            label = f"{name} (AP50={format_number(ap)})"
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
    ap, ap50, ap75 = (format_number(metrics[k]) for k in ("AP", "AP50", "AP75"))
    ax.set_title(
        f"COCO precision-recall at IoU {pr['iou_threshold']:g}, all scores\n"
        f"AP={ap} AP50={ap50} AP75={ap75} (curves end at the highest recall reached)",
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


# --------------------------------------------------------------------------- blended fields


def _filled_bins(cur: Mapping[str, Any] | None) -> tuple[np.ndarray, ...] | None:
    """``(centre, fraction, low, high)`` of the bins of a binned curve that hold data, or None."""
    if not cur:
        return None
    x = _arr(cur["bin_centres"])
    f, lo, hi = _arr(cur["fraction"]), _arr(cur["low"]), _arr(cur["high"])
    ok = np.isfinite(f)
    return (x[ok], f[ok], lo[ok], hi[ok]) if ok.any() else None


def _draw_binned(ax: Any, curves: list[tuple[str, str, Mapping[str, Any]]]) -> bool:
    """Fraction with Wilson band per method; False when no curve has data."""
    drawn = False
    for name, colour, cur in curves:
        bins = _filled_bins(cur)
        if bins is None:
            continue
        x, f, lo, hi = bins
        ax.fill_between(x, lo, hi, color=colour, alpha=0.15, lw=0)
        ax.plot(x, f, "o-", color=colour, lw=1.8, ms=3.5, label=name)
        drawn = True
    return drawn


def _plot_edges(cur: Mapping[str, Any]) -> np.ndarray:
    """Bin edges with an open (infinite) last edge replaced by a drawable one."""
    edges = np.asarray(cur["bin_edges"], dtype=float).copy()
    if not math.isfinite(edges[-1]):
        c = float(cur["bin_centres"][-1])
        edges[-1] = c + (c - edges[-2])
    return edges


def _bin_axis(ax: Any, curves: list[Mapping[str, Any] | None]) -> None:
    """Limit the x axis to the bins any curve populates; mark an open last bin."""
    curves = [c for c in curves if c]
    if not curves:
        return
    edges = _plot_edges(curves[0])
    filled = np.zeros(edges.size - 1, dtype=bool)
    for cur in curves:
        filled |= np.asarray(cur["n"]) > 0
    if not filled.any():
        return
    first, last = int(np.argmax(filled)), int(filled.size - 1 - np.argmax(filled[::-1]))
    ax.set_xlim(edges[first], edges[last + 1])
    open_edge = float(curves[0]["bin_edges"][-2])
    if not math.isfinite(curves[0]["bin_edges"][-1]) and last == filled.size - 1:
        ax.axvspan(edges[-2], edges[-1], color="0.5", alpha=0.08, lw=0)
        ax.text(0.5 * (edges[-2] + edges[-1]), 0.02, f"≥ {open_edge:g}\n(isolated)",
                ha="center", va="bottom", fontsize=8, color="0.35")  # fmt: skip


def _count_bars(ax: Any, cur: Mapping[str, Any] | None, label: str) -> None:
    if not cur:
        return
    edges = _plot_edges(cur)
    n = np.asarray(cur["n"], dtype=float)
    ax2 = ax.twinx()
    ax2.bar(edges[:-1], n, width=np.diff(edges), align="edge", color="0.88", edgecolor="0.75",
            lw=0.5)  # fmt: skip
    ax2.set_ylabel(label, color="0.45", fontsize=9)
    ax2.tick_params(axis="y", colors="0.45", labelsize=8)
    ax2.set_ylim(0, max(1.0, float(n.max()) if n.size else 1.0) * 1.3)
    ax.set_zorder(ax2.get_zorder() + 1)
    ax.patch.set_visible(False)


def _finish(ax: Any, *, xlabel: str, ylabel: str, title: str, drawn: bool) -> None:
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(loc="lower left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def plot_source_comparison(results: Mapping[str, Mapping[str, Any]], out: str | Path) -> list[Path]:
    """PNGs comparing methods on the same axes (matplotlib Agg, written atomically).

    Parameters
    ----------
    results : mapping of str to dict
        Method name to :func:`evaluate_sources` output.
    out : str or Path
        Output directory (created).

    Returns
    -------
    list of Path
        ``completeness_purity_vs_mag.png``, ``completeness_purity_vs_separation.png``,
        ``pair_deblending_vs_separation.png`` and ``precision_recall.png`` (68% Wilson bands
        and error bars; grey bars: labelled truth per bin).
    """
    from matplotlib import colormaps

    from clumpdet.evaluation.deblending import class_order

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cmap = colormaps["tab10"]
    methods = [(str(name), cmap(k % 10), res) for k, (name, res) in enumerate(results.items())]
    first = next(iter(results.values()), {})
    thr = (first.get("matching") or {}).get("score_threshold")
    op = "all detections" if thr is None else f"score ≥ {thr:g}"
    paths: list[Path] = []

    panels = (
        ("mag", "magnitude", "completeness_purity_vs_mag.png",
         "r magnitude of the labelled object (AB)", "measured r magnitude of the detection (AB)"),
        ("sep", "separation", "completeness_purity_vs_separation.png",
         "nearest-neighbour separation of the labelled object (PSF FWHM)",
         "separation of the matched (else nearest) object (PSF FWHM)"),
    )  # fmt: skip
    for key, what, fname, xlabel_c, xlabel_p in panels:
        fig = _figure((12.0, 4.8))
        ax_c, ax_p = fig.subplots(1, 2)
        comp = [(n, c, r.get(f"completeness_vs_{key}")) for n, c, r in methods]
        pur = [(n, c, r.get(f"purity_vs_{key}")) for n, c, r in methods]
        _count_bars(ax_c, next((c for _, _, c in comp if c), None), "labelled objects per bin")
        drawn_c = _draw_binned(ax_c, comp)
        drawn_p = _draw_binned(ax_p, pur)
        _finish(ax_c, xlabel=xlabel_c, ylabel="completeness",
                title=f"Completeness vs {what} ({op})", drawn=drawn_c)  # fmt: skip
        _finish(ax_p, xlabel=xlabel_p, ylabel="purity",
                title=f"Purity vs {what} ({op}; ignored detections excluded)",
                drawn=drawn_p)  # fmt: skip
        _bin_axis(ax_c, [c for _, _, c in comp])
        _bin_axis(ax_p, [c for _, _, c in pur])
        paths.append(_save(fig, out / fname))

    fig = _figure((7.0, 4.8))
    ax = fig.add_subplot()
    pair_curves = [(n, c, (r.get("pair_deblending") or {}).get("vs_sep")) for n, c, r in methods]
    _count_bars(ax, next((c for _, _, c in pair_curves if c), None), "labelled pairs per bin")
    drawn = False
    k_drawn = [n for n, _, c in pair_curves if c]
    for n, colour, cur in pair_curves:
        bins = _filled_bins(cur)
        if bins is None:
            continue
        x, f, lo, hi = bins
        width = np.diff(_arr(cur["bin_edges"])[:2])[0] if len(cur["bin_centres"]) > 1 else 1.0
        dodge = (k_drawn.index(n) - (len(k_drawn) - 1) / 2) * 0.08 * width
        pairs = next(r for m, _, r in methods if m == n)["pair_deblending"]
        rate_close = format_number(pairs["rate_close"], digits=2)
        label = f"{n} (<{pairs['close_pair_fwhm']:g} FWHM: {rate_close})"
        yerr = np.clip([f - lo, hi - f], 0.0, None)  # rounding at 0 and 1
        ax.errorbar(x + dodge, f, yerr=yerr, fmt="o-",
                    color=colour, lw=1.5, ms=4, capsize=3, label=label)  # fmt: skip
        drawn = True
    _finish(ax, xlabel="pair separation (PSF FWHM)", ylabel="fraction of pairs deblended",
            title="Pair deblending: both members detected", drawn=drawn)  # fmt: skip
    _bin_axis(ax, [c for _, _, c in pair_curves])
    paths.append(_save(fig, out / "pair_deblending_vs_separation.png"))

    classes = class_order(results) or ["(none)"]
    fig = _figure((5.2 * len(classes), 4.8))
    axes = np.atleast_1d(fig.subplots(1, len(classes)))
    for ax, cname in zip(axes, classes):
        drawn = False
        target = 0.8
        for n, colour, res in methods:
            pc = (res.get("per_class") or {}).get(cname)
            if not pc:
                continue
            target = pc["target_recall"]
            r, p = _arr(pc["curve"]["recall"]), _arr(pc["curve"]["precision"])
            if r.size == 0:
                continue
            par = pc["precision_at_recall"]
            max_r = format_number(pc["max_recall"], digits=2)
            at = (
                f"P@R{target:g}={format_number(par, digits=2)}"
                if par is not None
                else f"P@R{target:g} n/a (max recall {max_r})"
            )
            ap = format_number(pc["ap"], digits=2)
            ax.plot(r, p, "-", color=colour, lw=1.8, label=f"{n}: {at}, AP={ap}")
            ax.plot(r[-1], p[-1], "o", color=colour, ms=4)
            drawn = True
        ax.axvline(target, color="0.4", ls="--", lw=1.2, label=f"recall {target:g}")
        ax.set_xlim(0, 1.02)
        _finish(ax, xlabel=f"recall ({cname}, class-aware)", ylabel="precision",
                title=f"{cname}: precision-recall (all scores)", drawn=drawn)  # fmt: skip
    paths.append(_save(fig, out / "precision_recall.png"))
    return paths
