"""Benchmark the classical (sep / photutils) clump finder on a simulated test set.

Runs :func:`clumpdet.baselines.run_classical_baseline` (one or both methods) on a simulated set,
scores it with :func:`clumpdet.evaluation.evaluate_detections` and writes, under ``--out``:
``<method>/predictions.json`` (COCO results), ``<method>/metrics.json`` plus the evaluator's
PNGs, ``<method>/overlays/image_<id>.png`` (truth and detections on a few images,
:func:`clumpdet.inference.overlay.plot_overlay`) and ``summary.json``.

Examples
--------
Default SDSS-like test set (simulated here with n=1000, seed 2)::

    python tools/bench_classical_baseline.py --sim generate --out results/classical_baseline

An existing simulation directory (holding ``annotations.json``)::

    python tools/bench_classical_baseline.py --sim data/sim_test --out results/classical_baseline
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from clumpdet.baselines import ClassicalConfig, find_clumps, run_classical_baseline
from clumpdet.config import load_config, save_config
from clumpdet.data.coco import load_coco
from clumpdet.evaluation import evaluate_detections
from clumpdet.utils import atomic_write, command_line


def _simulate(out: Path, *, n: int, seed: int, workers: int | None) -> Path:
    """Simulate the default SDSS-like set under ``out`` (reused if its run record matches)."""
    from clumpdet.sim import prepare_sets

    name = f"sim_n{n}_seed{seed}"
    return prepare_sets("clumps", {name: (n, seed)}, out=out, workers=workers)[name]


def _xyxy(records: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[x, y, x + w, y + h] for x, y, w, h in (r["bbox"] for r in records)]).reshape(
        -1, 4
    )


def _overlays(
    truth: Path, preds: list[dict[str, Any]], out: Path, *, n: int = 8, threshold: float = 0.3
) -> list[Path]:
    """:func:`clumpdet.inference.overlay.plot_overlay` of truth and detections on ``n`` images."""
    from clumpdet.data.images import read_image
    from clumpdet.inference.overlay import plot_overlay

    doc = load_coco(truth)
    with_truth = {a["image_id"] for a in doc["annotations"]}
    paths = []
    for im in [im for im in doc["images"] if im["id"] in with_truth][:n]:
        det = [p for p in preds if p["image_id"] == im["id"] and p["score"] >= threshold]
        paths.append(
            plot_overlay(
                read_image(doc["_root"] / im["file_name"], nan_policy="zero").data,
                out / f"image_{im['id']}.png",
                boxes=_xyxy(det),
                labels=np.array([p["category_id"] for p in det], dtype=np.int64),
                scores=np.array([p["score"] for p in det]),
                truth_boxes=_xyxy([a for a in doc["annotations"] if a["image_id"] == im["id"]]),
                title=f"image {im['id']}: classical detections with score >= {threshold:g}",
            )
        )
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--sim", required=True, help="simulation directory with annotations.json, or 'generate'"
    )
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--n", type=int, default=1000, help="images to simulate with --sim generate")
    p.add_argument("--seed", type=int, default=2, help="seed for --sim generate (test set: 2)")
    p.add_argument("--method", choices=["residual", "unsharp", "both"], default="both")
    p.add_argument("--config", type=Path, default=None, help="ClassicalConfig YAML")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a ClassicalConfig value, e.g. --set threshold=6",
    )
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = p.parse_args(argv)

    command = command_line(argv)
    print(command)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(ClassicalConfig, args.config, args.set)
    save_config(cfg, args.out / "classical_config.yaml")
    if args.sim == "generate":
        sim_dir = _simulate(args.out, n=args.n, seed=args.seed, workers=args.workers)
    else:
        sim_dir = Path(args.sim)
    truth = sim_dir / "annotations.json"
    doc = load_coco(truth)
    n_images = len(doc["images"])

    # single-image latency on one core, excluding I/O (find_clumps on an in-memory array)
    from clumpdet.data.images import read_image

    sample = read_image(doc["_root"] / doc["images"][0]["file_name"], nan_policy="zero")

    summary: dict[str, Any] = {
        "command": command,
        "truth": str(truth),
        "n_images": n_images,
        "config": str(args.out / "classical_config.yaml"),
        "methods": {},
    }
    methods = ["residual", "unsharp"] if args.method == "both" else [args.method]
    for method in methods:
        mdir = args.out / method
        for stale in [*mdir.glob("*.png"), *mdir.glob("overlays/*.png")]:
            stale.unlink()  # plots of an earlier run must not pass for this one's
        t0 = time.perf_counter()
        pred = run_classical_baseline(
            truth=truth,
            out=mdir / "predictions.json",
            method=method,
            config=cfg,
            workers=args.workers,
        )
        wall = time.perf_counter() - t0
        find_clumps(sample.data, method=method, config=cfg, bands=sample.bands)
        t1 = time.perf_counter()
        for _ in range(5):
            find_clumps(sample.data, method=method, config=cfg, bands=sample.bands)
        per_image_ms = (time.perf_counter() - t1) / 5 * 1e3
        try:
            m = evaluate_detections(truth=truth, predictions=pred, out=mdir)
        except ValueError as exc:  # a plotting failure must not cost the numbers
            print(f"warning: evaluation plots failed ({exc}); writing metrics without plots")
            m = evaluate_detections(truth=truth, predictions=pred, out=mdir, plots=False)
        _overlays(truth, json.loads(pred.read_text()), mdir / "overlays")
        # centre matching separates finding the objects from sizing the boxes
        mc = evaluate_detections(truth=truth, predictions=pred, match="centre", centre_radius=5.0)
        keys = ("completeness", "purity", "f1", "AP", "AP50")
        row = {k: m[k] for k in keys}
        row["per_class"] = {
            name: {
                k: v.get(k) for k in ("completeness", "purity", "f1", "AP50", "n_true", "n_pred")
            }
            for name, v in m["per_class"].items()
        }
        row.update(
            best_f1=m["best_f1"],
            n_true=m["n_true"],
            n_pred=m["n_pred"],
            wall_s=wall,
            images_per_s=n_images / wall,
            find_clumps_ms_one_core=per_image_ms,
            centre5={k: mc[k] for k in ("completeness", "purity", "f1")},
        )
        summary["methods"][method] = row
        pc = " ".join(
            f"{n}: C={v['completeness']:.3f} P={v['purity']:.3f} AP50={v['AP50']:.3f}"
            for n, v in row["per_class"].items()
        )
        print(
            f"{method:9s} C={row['completeness']:.3f} P={row['purity']:.3f} F1={row['f1']:.3f} "
            f"AP={row['AP']:.3f} AP50={row['AP50']:.3f} | {pc} | {wall:.1f} s "
            f"({n_images / wall:.1f} img/s, {per_image_ms:.0f} ms/img on one core)\n"
            f"{'':9s} centre-matched (5 px): C={mc['completeness']:.3f} "
            f"P={mc['purity']:.3f} F1={mc['f1']:.3f}"
        )
    from clumpdet.evaluation import to_json_safe

    with atomic_write(args.out / "summary.json", "w") as fh:
        json.dump(to_json_safe(summary), fh, indent=1)
    print(f"-> {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
