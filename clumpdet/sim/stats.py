"""Compare the truth of simulated clump data sets with the real Clump Scout statistics.

The reference numbers are the Clump Scout statistics (46,164 aggregated volunteer boxes on 19,956
clumpy galaxies; Adams et al. 2022; Popp et al. 2024). ``tools/sim_statistics.py`` is the command
line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clumpdet.errors import InputError
from clumpdet.sim.clumps.config import CLUMP_SCOUT_COUNTS, ClumpSimConfig
from clumpdet.sim.clumps.writer import iter_scene_records

#: Percentiles used for every distribution summary.
PERCENTILES: tuple[int, ...] = (5, 25, 50, 75, 95)

#: Real Clump Scout box statistics (Adams et al. 2022; Popp et al. 2024), pixels of the 200 px
#: crop.
REAL_CLUMP_SCOUT: dict[str, Any] = {
    "n_boxes": 46164,
    "n_clumpy_galaxies": 19956,
    "counts_per_galaxy": {str(k): int(v) for k, v in enumerate(CLUMP_SCOUT_COUNTS, 1)},
    "mean_boxes_per_clumpy_galaxy": 46164 / 19956,
    "box_side_px": [9.1, 13.0, 16.6, 20.8, 27.5],
    "centre_distance_px": [25.0, 39.0, 52.0, 67.0, 98.0],
    "class_fraction": {"clump": 0.724, "odd_clump": 0.276},
}


def truth_tables(
    images: list[dict[str, Any]], annotations: list[dict[str, Any]]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per image and one row per box from COCO records of a simulation.

    Returns
    -------
    images : DataFrame
        ``image_id, width, height, n_boxes, psf_fwhm, host_mag_r, host_hlr``.
    boxes : DataFrame
        ``image_id, label, kind, side, cx, cy, distance, flux_ratio, snr`` (pixels; ``side`` is
        the longer side of the clipped box, ``distance`` that of the box centre from the frame
        centre).
    """
    im = pd.DataFrame(
        {
            "image_id": [r["id"] for r in images],
            "width": [r["width"] for r in images],
            "height": [r["height"] for r in images],
            "psf_fwhm": [r.get("psf_fwhm", np.nan) for r in images],
            "host_mag_r": [r.get("host", {}).get("mag_r", np.nan) for r in images],
            "host_hlr": [r.get("host", {}).get("hlr", np.nan) for r in images],
        }
    )
    size = {r["id"]: (r["width"], r["height"]) for r in images}
    rows = []
    for a in annotations:
        x, y, w, h = a["bbox"]
        cx, cy = x + w / 2.0, y + h / 2.0
        fw, fh = size[a["image_id"]]
        rows.append(
            {
                "image_id": a["image_id"],
                "label": int(a["category_id"]),
                "kind": a.get("kind", ""),
                "side": max(w, h),
                "cx": cx,
                "cy": cy,
                "distance": float(np.hypot(cx - fw / 2.0, cy - fh / 2.0)),
                "flux_ratio": a.get("flux_ratio", np.nan),
                "snr": a.get("snr", np.nan),
            }
        )
    cols = ["image_id", "label", "kind", "side", "cx", "cy", "distance", "flux_ratio", "snr"]
    bx = pd.DataFrame(rows, columns=cols)
    counts = bx.groupby("image_id").size()
    im["n_boxes"] = im["image_id"].map(counts).fillna(0).astype(int)
    return im, bx


#: Side of the Clump Scout subject images (Popp et al. crop their central 200 x 200).
SUBJECT_SIZE = 400


def load_sim_truth(
    sim_dir: str | Path, *, frame: str = "fits"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Truth tables of a directory written by :func:`clumpdet.sim.simulate_clumps`.

    Parameters
    ----------
    sim_dir : path
        The simulation directory.
    frame : {"fits", "colour"}
        ``"colour"`` reads the colour set (``DIR/colour/``, GZ2 framing) and rescales its pixel
        quantities (box side, centre, distance) to the 400 px Clump Scout subject frame, the
        frame the real box statistics were measured in.
    """
    root = Path(sim_dir) / ("colour" if frame == "colour" else "")
    path = root / "annotations.json"
    if not path.is_file():
        raise InputError(path, "not found; expected a simulation directory (simulate clumps)")
    try:
        doc = json.loads(path.read_text())
        images, boxes = truth_tables(doc["images"], doc["annotations"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a clumpdet COCO truth file ({exc})") from None
    if frame == "colour" and len(images):
        f = images.set_index("image_id")["width"].rdiv(SUBJECT_SIZE)
        k = boxes["image_id"].map(f).to_numpy(dtype=float)
        for col in ("side", "cx", "cy", "distance"):
            boxes[col] = boxes[col].to_numpy(dtype=float) * k
    return images, boxes


def simulate_truth(
    *,
    n: int,
    seed: int,
    config: ClumpSimConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate ``n`` scenes in memory (same images as ``simulate_clumps``) -> truth tables."""
    images, anns = [], []
    for image, a in iter_scene_records(
        n=n, seed=seed, config=config, workers=workers, progress=progress
    ):
        images.append(image)
        anns.extend(a)
    return truth_tables(images, anns)


def _pct(values: Any) -> list[float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [float("nan")] * len(PERCENTILES)
    return [round(float(x), 3) for x in np.percentile(v, PERCENTILES)]


def summarize_truth(images: pd.DataFrame, boxes: pd.DataFrame) -> dict[str, Any]:
    """Simulated vs real statistics (JSON-ready).

    Returns
    -------
    dict
        ``n_images, n_boxes, empty_fraction``; ``counts_per_galaxy`` (fractions of clumpy galaxies
        with 1..9+ boxes, sim and real) and its mean; percentiles (5/25/50/75/95) of ``box_side_px``
        and ``centre_distance_px`` (sim and real); ``class_fraction`` (sim and real);
        ``flux_ratio`` and ``snr`` percentiles per kind (sim only); ``clumpy_fraction`` (sim and
        real) and ``snr_below_10_fraction`` (sim).
    """
    clumpy = images[images["n_boxes"] > 0]
    real = REAL_CLUMP_SCOUT
    real_total = sum(real["counts_per_galaxy"].values())
    kmax = max(9, int(clumpy["n_boxes"].max()) if len(clumpy) else 0)
    sim_counts = {
        str(k): round(float((clumpy["n_boxes"] == k).mean()), 4) if len(clumpy) else 0.0
        for k in range(1, kmax + 1)
    }
    n = len(boxes)
    out: dict[str, Any] = {
        "n_images": len(images),
        "n_boxes": n,
        "empty_fraction": round(float((images["n_boxes"] == 0).mean()), 4),
        "counts_per_galaxy": {
            "sim": sim_counts,
            "real": {k: round(v / real_total, 4) for k, v in real["counts_per_galaxy"].items()},
        },
        "mean_boxes_per_clumpy_galaxy": {
            "sim": round(float(clumpy["n_boxes"].mean()), 3) if len(clumpy) else float("nan"),
            "real": round(real["mean_boxes_per_clumpy_galaxy"], 3),
        },
        "percentiles": list(PERCENTILES),
        "box_side_px": {"sim": _pct(boxes["side"]), "real": real["box_side_px"]},
        "centre_distance_px": {
            "sim": _pct(boxes["distance"]),
            "real": real["centre_distance_px"],
        },
        "class_fraction": {
            "sim": {
                "clump": round(float((boxes["label"] == 1).mean()), 4) if n else float("nan"),
                "odd_clump": round(float((boxes["label"] == 2).mean()), 4) if n else float("nan"),
            },
            "real": real["class_fraction"],
        },
        "clumpy_fraction": {
            "sim": round(float((images["n_boxes"] > 0).mean()), 4),
            "real": 0.127,  # Adams et al. 2022, 3 % u-band flux cut
        },
        "snr_below_10_fraction": (
            round(float((boxes["snr"] < 10).mean()), 4) if n else float("nan")
        ),
        "flux_ratio": {"all": _pct(boxes["flux_ratio"])},
        "snr": {"all": _pct(boxes["snr"])},
        "host_mag_r": _pct(images["host_mag_r"]),
        "psf_fwhm_arcsec": _pct(images["psf_fwhm"]),
    }
    for kind, grp in boxes.groupby("kind"):
        out["flux_ratio"][str(kind)] = _pct(grp["flux_ratio"])
        out["snr"][str(kind)] = _pct(grp["snr"])
    return out


def plot_truth_statistics(
    summary: dict[str, Any], boxes: pd.DataFrame, path: str | Path, *, dpi: int = 100
) -> Path:
    """Six-panel PNG: counts per galaxy, box sides, centre distances, classes, flux ratio, S/N.

    Real Clump Scout numbers are drawn in black (histogram / percentile markers), the simulation
    in colour.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clumpdet.utils import atomic_path

    sim_c, real_c = "tab:blue", "black"
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    ax = axes[0, 0]
    cs, cr = summary["counts_per_galaxy"]["sim"], summary["counts_per_galaxy"]["real"]
    ks = np.arange(1, 10)
    ax.bar(ks - 0.2, [cs.get(str(k), 0.0) for k in ks], 0.4, color=sim_c, label="simulated")
    ax.bar(ks + 0.2, [cr.get(str(k), 0.0) for k in ks], 0.4, color="0.6", label="Clump Scout")
    ax.set(xlabel="boxes per clumpy galaxy", ylabel="fraction of clumpy galaxies", xticks=ks)
    ax.legend()

    def pct_panel(ax: Any, col: str, key: str, xlabel: str, bins: Any) -> None:
        ax.hist(boxes[col], bins=bins, color=sim_c, alpha=0.6, density=True, label="simulated")
        for i, (s, r) in enumerate(zip(summary[key]["sim"], summary[key]["real"])):
            real_label = "Clump Scout 5/25/50/75/95%" if i == 0 else None
            ax.axvline(r, color=real_c, ls="--", lw=1, label=real_label)
            ax.axvline(s, color=sim_c, ls=":", lw=1.2, label="simulated" if i == 0 else None)
        ax.set(xlabel=xlabel, ylabel="density")
        ax.legend(fontsize=8)

    pct_panel(axes[0, 1], "side", "box_side_px", "box side (px)", np.arange(0, 45, 1.0))
    dist_label = "box centre distance from frame centre (px)"
    pct_panel(axes[0, 2], "distance", "centre_distance_px", dist_label, np.arange(0, 145, 4.0))

    ax = axes[1, 0]
    fs, fr = summary["class_fraction"]["sim"], summary["class_fraction"]["real"]
    names = ["clump", "odd_clump"]
    xs = np.arange(2)
    ax.bar(xs - 0.2, [fs[k] for k in names], 0.4, color=sim_c, label="simulated")
    ax.bar(xs + 0.2, [fr[k] for k in names], 0.4, color="0.6", label="Clump Scout")
    ax.set(xticks=xs, xticklabels=["class 1 clump", "class 2 odd clump"], ylabel="fraction")
    ax.legend()

    colours = {"clump": "tab:cyan", "star": "tab:red", "background_galaxy": "tab:orange"}
    for ax, col, label, lo in (
        (axes[1, 1], "flux_ratio", "flux ratio object / host (r)", 1e-3),
        (axes[1, 2], "snr", "matched-filter S/N (r)", 1.0),
    ):
        vals = boxes[col].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals) & (vals > 0)]
        if vals.size:
            bins = np.logspace(np.log10(max(vals.min(), lo)), np.log10(vals.max()) + 1e-9, 40)
            for kind, grp in boxes.groupby("kind"):
                colour = colours.get(str(kind), "0.3")
                vals_k = grp[col].clip(lower=bins[0])
                ax.hist(vals_k, bins=bins, histtype="step", lw=1.5, color=colour, label=str(kind))
            ax.set_xscale("log")
        ax.set(xlabel=label, ylabel="boxes")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"Simulated truth ({summary['n_images']} images, {summary['n_boxes']} boxes) "
        "vs Galaxy Zoo: Clump Scout"
    )
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return path
