"""Quality benchmark: our detector vs the classical (sep) baseline on the simulated clump benchmark.

Simulates (or reuses) train / val / test sets, trains the detector, runs it and the classical
baseline on the same test images, and scores both with the same evaluator. Usage::

    python tools/bench_detector.py --out results/detector_benchmark \
        [--config configs/detector/cpu_resnet18.yaml] [--n-train 2000 --n-val 500 --n-test 1000] \
        [--epochs 20] [--set key=value ...] [--checkpoint RUN/model.pt  # skip training]

Writes ``comparison.json``, ``comparison.md``, ``completeness_vs_flux_ratio.png`` and each
method's ``eval_*/metrics.json`` + plots, and prints the command.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from clumpdet.config import load_config
from clumpdet.engine.config import TrainConfig
from clumpdet.utils import format_number, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def simulate_sets(data: Path, sizes: dict[str, int], sim_config: Path | None) -> dict[str, Path]:
    from clumpdet.sim import prepare_sets

    seeds = {"train": 0, "val": 1, "test": 2}
    splits = {name: (n, seeds[name]) for name, n in sizes.items()}
    sets = prepare_sets("clumps", splits, config=sim_config, out=data)
    return {name: path / "annotations.json" for name, path in sets.items()}


def row(name: str, m: dict) -> dict:
    pc = m.get("per_class", {})
    return {
        "method": name,
        "completeness": m["completeness"],
        "purity": m["purity"],
        "f1": m.get("f1"),
        "AP50": m["AP50"],
        "AP": m["AP"],
        "clump_completeness": pc.get("clump", {}).get("completeness"),
        "clump_purity": pc.get("clump", {}).get("purity"),
        "clump_AP50": pc.get("clump", {}).get("AP50"),
        "odd_completeness": pc.get("odd_clump", {}).get("completeness"),
        "odd_purity": pc.get("odd_clump", {}).get("purity"),
        "odd_AP50": pc.get("odd_clump", {}).get("AP50"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/detector_benchmark"))
    p.add_argument("--data", type=Path, default=None, help="simulated sets (default OUT/data)")
    p.add_argument("--sim-config", type=Path, default=None)
    p.add_argument("--config", type=Path, default=ROOT / "configs/detector/cpu_resnet18.yaml")
    p.add_argument("--n-train", type=int, default=2000)
    p.add_argument("--n-val", type=int, default=500)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--checkpoint", type=Path, default=None, help="evaluate this model, no training")
    p.add_argument("--score-threshold", type=float, default=0.3)
    args = p.parse_args(argv)

    from clumpdet.baselines import run_classical_baseline
    from clumpdet.engine.train import train_detector
    from clumpdet.evaluation import evaluate_detections
    from clumpdet.inference.run import coco_results_path, run_detection

    t0 = time.perf_counter()
    data_dir = args.data or args.out / "data"
    sets = simulate_sets(
        data_dir, {"train": args.n_train, "val": args.n_val, "test": args.n_test}, args.sim_config
    )
    timings = {"simulate_s": time.perf_counter() - t0}

    model = args.checkpoint
    if model is None:
        overrides = [f"data.train={sets['train']}", f"data.val={sets['val']}", *args.set]
        if args.epochs:
            overrides.append(f"optim.max_epochs={args.epochs}")
        cfg = load_config(TrainConfig, args.config, overrides)
        t1 = time.perf_counter()
        model = train_detector(cfg, out=args.out / "run")
        timings["train_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    cat = args.out / "test_catalogue.fits"
    run_detection(
        checkpoint=model,
        coco=sets["test"],
        out=cat,
        overlays=args.out / "overlays",
        max_overlays=12,
        progress=False,
    )
    timings["detect_s"] = time.perf_counter() - t2
    ours = evaluate_detections(
        truth=sets["test"],
        predictions=coco_results_path(cat),
        out=args.out / "eval_detector",
        score_threshold=args.score_threshold,
    )

    rows = [row("clumpdet Faster R-CNN", ours)]
    best = {"detector": ours.get("best_f1")}
    classical = {}
    for method in ("residual", "unsharp"):
        t3 = time.perf_counter()
        base_pred = args.out / f"classical_{method}_predictions.json"
        run_classical_baseline(truth=sets["test"], out=base_pred, method=method)
        timings[f"classical_{method}_s"] = time.perf_counter() - t3
        classical[method] = evaluate_detections(
            truth=sets["test"],
            predictions=base_pred,
            out=args.out / f"eval_classical_{method}",
            score_threshold=args.score_threshold,
        )
        rows.append(row(f"classical (sep/photutils {method})", classical[method]))
        best[f"classical_{method}"] = classical[method].get("best_f1")
    cmd = " ".join(["python", *sys.argv])
    result = {
        "command": cmd,
        "model": str(model),
        "test": str(sets["test"]),
        "score_threshold": args.score_threshold,
        "rows": rows,
        "timings": timings,
        "best_f1": best,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.json").write_text(json.dumps(result, indent=2, default=float))

    cols = [
        "completeness",
        "purity",
        "f1",
        "AP50",
        "clump_completeness",
        "clump_purity",
        "clump_AP50",
        "odd_completeness",
        "odd_purity",
        "odd_AP50",
    ]
    table = markdown_table(
        ["method", *cols],
        [[r["method"], *(r[c] for c in cols)] for r in rows],
        fmt=functools.partial(format_number, missing="–"),
    )
    (args.out / "comparison.md").write_text(f"{table}\n\nCommand: `{cmd}`\n")

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for name, m in (("clumpdet", ours), *((f"classical {k}", v) for k, v in classical.items())):
        c = m.get("curves", {}).get("completeness_vs_flux_ratio")
        if c:
            ax.plot(c["bin_centres"], c["completeness"], "o-", label=name)
    ax.set(
        xscale="log",
        xlabel="clump / host flux ratio",
        ylabel="completeness",
        ylim=(0, 1.02),
        title=f"Completeness vs flux ratio (score >= {args.score_threshold})",
    )
    ax.legend()
    fig.savefig(args.out / "completeness_vs_flux_ratio.png", dpi=100)
    print(table)
    print(f"timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    print(f"wrote {args.out}/comparison.json\ncommand: {cmd}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
