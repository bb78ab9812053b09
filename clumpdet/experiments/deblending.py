"""Blended-field benchmark: the learned star/galaxy detector against sep and photutils.

Every method runs on the same simulated tiles and is scored by
:func:`clumpdet.evaluation.deblending.evaluate_sources` with the same centre matching, the same
truth (labelled objects; detections of fainter ones are ignored) and the same photometry: a
circular aperture magnitude in the reference band measured at every detection's position, so
purity vs magnitude compares like with like.

Fair comparison (issue 13): the classical finders estimate noise (MAD) and PSF (from the
image's stars, :func:`clumpdet.baselines.common.estimate_psf_fwhm`) from each image, never
from the truth file; their detection threshold is swept down to ``SWEEP_FLOOR`` (1.5 sigma of
the filtered image) and every detection keeps its S/N score, so their precision-recall curves
run as far as the detector's. Only the deblending contrast is tuned, on a separate validation
set, by the mean per-class AP. Besides precision at 80 % recall, each classical finder is
scored at the detector's own recall per class (``precision_at_detector_recall``: matched
recall). The SExtractor-default configuration is reported too.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clumpdet.baselines.sources import SourceFinderConfig, run_source_baseline
from clumpdet.data.coco import load_coco
from clumpdet.data.images import read_image
from clumpdet.evaluation.deblending import (
    comparison_table,
    evaluate_sources,
    psf_fwhm_by_image,
)
from clumpdet.evaluation.detection import to_json_safe
from clumpdet.evaluation.plots import plot_source_comparison
from clumpdet.inference.predictor import Predictor
from clumpdet.sim.fields.writer import read_objects
from clumpdet.units import flux_to_mag
from clumpdet.utils import atomic_write

#: Name of the learned detector's row.
DETECTOR: str = "clumpdet Faster R-CNN"
#: Lowest detection threshold of the classical sweep, sigma of the filtered image.
SWEEP_FLOOR: float = 1.5
#: Classical tuning grid: (threshold in matched-filter sigmas, deblending contrast); the
#: threshold is the sweep floor, the score (S/N) sweeps the rest of the curve.
DEFAULT_TUNING_GRID: tuple[tuple[float, float], ...] = tuple(
    itertools.product((SWEEP_FLOOR,), (0.005, 0.0005, 0.00005))
)


def detector_predictions(
    predictor: Predictor,
    truth: str | Path,
    *,
    progress: bool = True,
) -> tuple[pd.DataFrame, float]:
    """Run a trained detector on every image of a COCO set, down to its ``min_score``.

    Parameters
    ----------
    predictor : Predictor
        The loaded detector (``Predictor.from_checkpoint``); images are read as
        :meth:`Predictor.read` does.
    truth : str or Path
        COCO ``annotations.json`` of the set.
    progress : bool
        Show a progress bar.

    Returns
    -------
    predictions : pandas.DataFrame
        ``image_id, x, y`` (box centre, corner-origin px), ``x1, y1, x2, y2, label, score``.
    seconds : float
        Wall time of reading + inference.
    """
    t0 = time.perf_counter()
    found = predictor.predict_coco(truth, progress=progress)
    rows = []
    for iid, det in zip(found.image_ids, found.detections):
        b = det.boxes.astype(np.float64)
        for k in range(len(det)):
            rows.append(
                {
                    "image_id": iid,
                    "x": 0.5 * (b[k, 0] + b[k, 2]),
                    "y": 0.5 * (b[k, 1] + b[k, 3]),
                    "x1": b[k, 0],
                    "y1": b[k, 1],
                    "x2": b[k, 2],
                    "y2": b[k, 3],
                    "label": int(det.labels[k]),
                    "score": float(det.scores[k]),
                }
            )
    cols = ["image_id", "x", "y", "x1", "y1", "x2", "y2", "label", "score"]
    return pd.DataFrame(rows, columns=cols), time.perf_counter() - t0


def aperture_magnitudes(
    predictions: pd.DataFrame,
    truth: str | Path,
    *,
    band: str = "r",
    radius_fwhm: float = 1.0,
) -> np.ndarray:
    """AB magnitude in a circular aperture at each detection (same photometry for all methods).

    Parameters
    ----------
    predictions : pandas.DataFrame
        ``image_id, x, y`` (corner-origin pixels).
    truth : str or Path
        The COCO set (images in nanomaggies; ``psf_fwhm_px`` per image record).
    band : str
        Band measured.
    radius_fwhm : float
        Aperture radius in PSF FWHMs (not aperture-corrected: a point source reads ~0.2 mag
        faint for a Moffat PSF).

    Returns
    -------
    ndarray, shape (N,)
        Magnitudes; NaN where the aperture flux is not positive.
    """
    import sep

    doc = load_coco(truth)
    root = Path(doc["_root"])
    fwhm = psf_fwhm_by_image(doc)
    out = np.full(len(predictions), np.nan)
    ids = predictions["image_id"].to_numpy()
    for rec in doc["images"]:
        rows = np.flatnonzero(ids == int(rec["id"]))
        if rows.size == 0:
            continue
        img = read_image(root / rec["file_name"], bands=[band]).data[0].astype(np.float64)
        x = predictions["x"].to_numpy(np.float64)[rows] - 0.5  # sep: 0-based pixel centres
        y = predictions["y"].to_numpy(np.float64)[rows] - 0.5
        flux, _err, _flag = sep.sum_circle(
            np.ascontiguousarray(img), x, y, radius_fwhm * fwhm[int(rec["id"])]
        )
        out[rows] = flux_to_mag(flux)
    return out


def tune_source_finder(
    method: str,
    *,
    val_truth: str | Path,
    objects: pd.DataFrame,
    grid: Sequence[tuple[float, float]] = DEFAULT_TUNING_GRID,
    progress: bool = False,
) -> tuple[SourceFinderConfig, list[dict[str, Any]]]:
    """Pick a classical finder's deblending contrast (and threshold) by mean AP on validation.

    The finder is calibrated from the images (noise, PSF); the truth file only scores it.

    Returns
    -------
    best : SourceFinderConfig
    trials : list of dict
        ``thresh, contrast, completeness, purity, f1, mean_ap`` per grid point.
    """
    fwhm = psf_fwhm_by_image(val_truth)
    trials, best, best_key = [], None, (-1.0, -1.0)
    for thresh, contrast in grid:
        cfg = SourceFinderConfig(
            method=method,  # type: ignore[arg-type]
            thresh=thresh,
            thresh_units="filtered",
            deblend_cont=contrast,
            contrast=contrast,
        )
        preds = run_source_baseline(val_truth, config=cfg, progress=progress)
        m = evaluate_sources(objects, preds, fwhm_px=fwhm)
        f1 = float(m["f1"]) if np.isfinite(m["f1"]) else 0.0
        aps = [c["ap"] for c in m["per_class"].values() if np.isfinite(c["ap"])]
        mean_ap = float(np.mean(aps)) if aps else 0.0
        trials.append(
            {
                "thresh": thresh,
                "contrast": contrast,
                "completeness": m["completeness"],
                "purity": m["purity"],
                "f1": m["f1"],
                "mean_ap": mean_ap,
            }
        )
        if (mean_ap, f1) > best_key:
            best, best_key = cfg, (mean_ap, f1)
    assert best is not None
    return best, trials


def run_deblending_benchmark(
    *,
    checkpoint: str | Path | None,
    test_dir: str | Path,
    val_dir: str | Path,
    out: str | Path,
    methods: Sequence[str] = ("sep", "photutils"),
    snr_cuts: Sequence[float] = (10.0,),
    progress: bool = True,
) -> dict[str, Any]:
    """Score the detector, tuned sep / photutils and SExtractor-default sep on one test set.

    ``checkpoint=None`` scores the classical finders only (no matched-recall columns).

    Writes under ``out``: ``comparison.json`` (every metric), ``comparison.md`` (the table),
    ``predictions_<method>.csv``, the comparison PNGs and ``tuning.json``. For each S/N cut in
    ``snr_cuts`` the same predictions are scored again with only objects of ``snr >= cut``
    labelled (fainter ones ignored, as the published benchmarks' magnitude limits do):
    ``comparison_snr<cut>.{json,md}``.

    Returns
    -------
    dict
        Method name to :func:`evaluate_sources` output plus ``timing_s``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    test_truth = Path(test_dir) / "annotations.json"
    val_truth = Path(val_dir) / "annotations.json"
    objects = read_objects(test_dir)
    fwhm = psf_fwhm_by_image(test_truth)
    runs: dict[str, tuple[pd.DataFrame, float, float | None]] = {}
    if checkpoint is not None:  # None: the classical finders only
        predictor = Predictor.from_checkpoint(checkpoint)
        thr = predictor.bundle.model_config.score_threshold
        preds, secs = detector_predictions(predictor, test_truth, progress=progress)
        runs[DETECTOR] = (preds, secs, thr)
    tuning: dict[str, Any] = {}
    val_objects = read_objects(val_dir)
    for method in methods:
        cfg, trials = tune_source_finder(method, val_truth=val_truth, objects=val_objects)
        tuning[method] = {"best": dataclasses.asdict(cfg), "trials": trials}
        t0 = time.perf_counter()
        p = run_source_baseline(test_truth, config=cfg, progress=progress).to_pandas()
        runs[f"{method} (tuned)"] = (p, time.perf_counter() - t0, None)
    t0 = time.perf_counter()
    default = SourceFinderConfig()  # SExtractor's default.sex, still calibrated from the image
    p = run_source_baseline(test_truth, config=default, progress=progress).to_pandas()
    runs["sep (SExtractor defaults)"] = (p, time.perf_counter() - t0, None)

    # one photometry for every method, measured once and reused by every scoring below
    runs = {
        name: (p.assign(mag=aperture_magnitudes(p, test_truth)), secs, threshold)
        for name, (p, secs, threshold) in runs.items()
    }
    results: dict[str, Any] = {}
    for name, (p, secs, threshold) in runs.items():
        slug = name.split(" ")[0].lower() + ("_default" if "defaults" in name else "")
        with atomic_write(out / f"predictions_{slug}.csv", "w") as fh:
            p.to_csv(fh, index=False, float_format="%.5g")
        m = evaluate_sources(objects, p, fwhm_px=fwhm, score_threshold=threshold)
        m["timing_s"] = {"total": secs, "per_image": secs / max(1, len(fwhm))}
        results[name] = m
    if DETECTOR in results:
        add_matched_recall(results, runs, objects, fwhm, reference=DETECTOR)
    with atomic_write(out / "comparison.json", "w") as fh:
        json.dump(to_json_safe(results), fh, indent=1)
    for cut in snr_cuts:
        bright = objects.assign(labelled=objects["labelled"] & (objects["snr"] >= cut))
        sub = {}
        for name, (p, _secs, threshold) in runs.items():
            sub[name] = evaluate_sources(bright, p, fwhm_px=fwhm, score_threshold=threshold)
        if DETECTOR in sub:
            add_matched_recall(sub, runs, bright, fwhm, reference=DETECTOR)
        with atomic_write(out / f"comparison_snr{cut:g}.json", "w") as fh:
            json.dump(to_json_safe(sub), fh, indent=1)
        with atomic_write(out / f"comparison_snr{cut:g}.md", "w") as fh:
            fh.write(f"Truth: objects with S/N >= {cut:g} (fainter ones ignored)\n\n")
            fh.write(comparison_table(sub))
    with atomic_write(out / "tuning.json", "w") as fh:
        json.dump(to_json_safe(tuning), fh, indent=1)
    with atomic_write(out / "comparison.md", "w") as fh:
        fh.write(comparison_table(results))
    plot_source_comparison(results, out)
    plot_benchmark_overlays(runs, test_dir=Path(test_dir), objects=objects, out=out / "overlays")
    return results


def add_matched_recall(
    results: dict[str, Any],
    runs: Mapping[str, tuple[pd.DataFrame, float, float | None]],
    objects: pd.DataFrame,
    fwhm: Mapping[int, float],
    *,
    reference: str,
) -> None:
    """Add ``precision_at_detector_recall`` to every class of every method (in place).

    For each class, the target is the reference method's recall at its operating threshold;
    each method's precision there is the best precision over its own score thresholds with at
    least that recall (None when its curve never gets there).
    """
    ref = results[reference]["per_class"]
    for name, (p, _secs, _thr) in runs.items():
        for cname, block in results[name]["per_class"].items():
            target = ref.get(cname, {}).get("recall")
            if target is None or not np.isfinite(target):
                block["precision_at_detector_recall"] = None
                continue
            again = evaluate_sources(objects, p, fwhm_px=fwhm, target_recall=float(target))
            block["detector_recall"] = float(target)
            got = again["per_class"][cname]
            block["precision_at_detector_recall"] = got["precision_at_recall"]


def plot_benchmark_overlays(
    runs: Mapping[str, tuple[pd.DataFrame, float, float | None]],
    *,
    test_dir: Path,
    objects: pd.DataFrame,
    out: Path,
    n: int = 3,
) -> list[Path]:
    """One PNG per test image (the ``n`` most crowded): labelled truth and each method's
    detections at its operating point."""
    from clumpdet.inference.overlay import plot_point_overlays

    doc = load_coco(test_dir / "annotations.json")
    lab = objects[objects["labelled"]]
    busiest = lab.groupby("image_id").size().sort_values(ascending=False).index[:n]
    by_id = {int(r["id"]): r for r in doc["images"]}
    paths = []
    for iid in busiest:
        rec = by_id[int(iid)]
        image = read_image(Path(doc["_root"]) / rec["file_name"], bands=rec["bands"])
        truth = lab[lab["image_id"] == iid]
        panels = []
        for name, (p, _secs, thr) in runs.items():
            q = p[p["image_id"] == iid]
            if thr is not None:
                q = q[q["score"] >= thr]
            panels.append((name, q[["x", "y"]].to_numpy(), q["label"].to_numpy()))
        paths.append(
            plot_point_overlays(
                image.data,
                out / f"field_{int(iid):06d}.png",
                reference_xy=truth[["x", "y"]].to_numpy(),
                panels=panels,
                reference_label=f"truth (S/N >= 5): {len(truth)}",
                title=f"test field {int(iid)}: labelled truth (circles) and detections (+)",
            )
        )
    return paths


def summarise(results: Mapping[str, Any]) -> str:
    """One line per method: P@R0.8 per class, completeness, purity, close-pair rate, time."""
    lines = []
    for name, m in results.items():
        pc = m.get("per_class", {})
        pr = " ".join(
            f"{c}:P@R={v.get('precision_at_recall')}" for c, v in pc.items() if isinstance(v, dict)
        )
        pairs = m.get("pair_deblending") or {}
        lines.append(
            f"{name}: {pr} C={m['completeness']:.3f} P={m['purity']:.3f} "
            f"pairs<2FWHM={pairs.get('rate_close')} t/img={m['timing_s']['per_image']:.3f}s"
        )
    return "\n".join(lines)
