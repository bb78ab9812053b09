"""End-to-end pipelines that chain the library's steps (the CLI's ``demo``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

#: The demo's detector, as overrides of the ``TrainConfig`` defaults: the same detector as
#: ``configs/detector/cpu_resnet18.yaml`` (a test checks it), built without reading ``configs/``
#: so that the demo runs the same from an installed wheel, which does not ship that folder.
DEMO_DETECTOR: dict[str, Any] = {
    "model": {"rpn_post_nms_top_n_test": 200, "min_score": 0.001, "detections_per_image": 100},
    "optim": {"lr": 3.0e-4, "warmup_epochs": 0.25},
    "trainer": {"monitor": "val/AP50"},
}


#: Host populations the demo can simulate (``population.model`` of the clump simulator).
DEMO_POPULATIONS = ("smooth", "realistic")


def run_demo(
    *,
    out: str | Path,
    n_train: int = 300,
    epochs: int = 6,
    seed: int = 0,
    population: str = "smooth",
) -> dict[str, Any]:
    """Simulate clumpy galaxies, train a small detector, evaluate it and write a catalogue.

    Everything runs on CPU in a few minutes with the defaults.

    Parameters
    ----------
    out : path
        Output folder: ``data/{train,val,test}``, ``run/`` (model, logs, curves),
        ``eval/`` (metrics.json + plots), ``catalogue.fits``, ``overlays/``.
    n_train : int
        Simulated training images (validation and test get a fifth each, at least 40).
    epochs : int
        Training epochs.
    seed : int
        Seed of the simulation and the training.
    population : {"smooth", "realistic"}
        Host population simulated. ``"smooth"`` (default): clumpy disk + bulge hosts, an easy set
        on which a few minutes of CPU training reach useful completeness, a check of the whole
        pipeline. ``"realistic"``: the default simulator (ellipticals to irregulars, unlabelled
        knots and neighbours, ~12 % clumpy hosts), which needs thousands of images and far longer
        training (``configs/detector/cpu_resnet18.yaml``).

    Returns
    -------
    dict
        Headline numbers and paths.
    """
    from clumpdet.config import deep_merge, load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import train_detector
    from clumpdet.evaluation import evaluate_detections
    from clumpdet.inference.run import coco_results_path, run_detection
    from clumpdet.sim.clumps.config import load_sim_config
    from clumpdet.sim.run import prepare_sets

    out = Path(out)
    t0 = time.perf_counter()
    n_small = max(40, n_train // 5)
    splits = {"train": (n_train, seed), "val": (n_small, seed + 1), "test": (n_small, seed + 2)}
    if population not in DEMO_POPULATIONS:
        raise ValueError(f"population must be one of {DEMO_POPULATIONS}, got {population!r}")
    sim = load_sim_config(None, {"population": {"model": population}})
    sets = prepare_sets("clumps", splits, config=sim, out=out / "data")
    data = {k: v / "annotations.json" for k, v in sets.items()}
    overrides = {
        "data": {"train": str(data["train"]), "val": str(data["val"])},
        "optim": {"max_epochs": epochs},
        "trainer": {"seed": seed, "patience": max(3, epochs)},
    }
    cfg = load_config(TrainConfig, None, deep_merge(DEMO_DETECTOR, overrides))
    model = train_detector(cfg, out=out / "run")
    catalogue = out / "catalogue.fits"
    summary = run_detection(
        checkpoint=model,
        coco=data["test"],
        out=catalogue,
        overlays=out / "overlays",
        max_overlays=8,
    )
    metrics = evaluate_detections(
        truth=data["test"], predictions=coco_results_path(catalogue), out=out / "eval"
    )
    result = {
        "completeness": round(float(metrics["completeness"]), 3),
        "purity": round(float(metrics["purity"]), 3),
        "AP50": round(float(metrics["AP50"]), 3),
        "detections": summary["n_detections"],
        "model": str(model),
        "metrics": str(out / "eval" / "metrics.json"),
        "catalogue": str(catalogue),
        "overlays": str(out / "overlays"),
        "minutes": round((time.perf_counter() - t0) / 60, 1),
    }
    (out / "demo_summary.json").write_text(json.dumps(result, indent=2))
    return result
