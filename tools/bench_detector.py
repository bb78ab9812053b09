"""Quality benchmark: our detector vs both classical finders on the simulated clump benchmark.

Simulates (or reuses) train / val / test sets, trains the detector, **retunes both classical
finders on the validation set** (:func:`clumpdet.baselines.tuning.tune_classical`: box rule by
AP50, detection threshold swept down to 1.5 sigma with an S/N score per detection), runs all
three on the same test images and scores them with the same evaluator: completeness and purity
at score 0.3, best F1, COCO AP50 / AP, purity at completeness 0.9 (exact, over each method's
own score), completeness vs S/N and vs flux ratio (truth columns). Usage::

    python tools/bench_detector.py --out results/detector_benchmark \
        [--config configs/detector/cpu_resnet18.yaml] [--n-train 2000 --n-val 500 --n-test 1000] \
        [--epochs 20] [--set key=value ...] [--checkpoint RUN/model.pt  # skip training] \
        [--train T/annotations.json --val V/annotations.json --test S/annotations.json]

Writes ``comparison.json``, ``comparison.md``, ``tuning.json``,
``completeness_vs_flux_ratio.png``, ``completeness_vs_snr.png``, ``precision_recall.png`` and
each method's ``eval_*/metrics.json`` + plots, and prints the command.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from clumpdet.evaluation.detection import to_json_safe
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
        "purity_at_C0.9": m["purity_at_completeness"]["0.9"]["purity"],
        "purity_at_C0.8": m["purity_at_completeness"]["0.8"]["purity"],
        "purity_at_C0.5": m["purity_at_completeness"]["0.5"]["purity"],
        # the highest completeness any score threshold reaches (all predictions kept)
        "max_completeness": max(m["curves"]["threshold"]["completeness"], default=None),
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
    for split in ("train", "val", "test"):
        p.add_argument(f"--{split}", type=Path, default=None,
                       help=f"existing {split} annotations.json (skips simulating it)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, help="classical finder processes")
    p.add_argument(
        "--classical-only",
        action="store_true",
        help="tune and run the classical finders only (cached under OUT)",
    )
    p.add_argument("--reuse-classical", action="store_true",
                   help="reuse the classical tuning + predictions cached in OUT")  # fmt: skip
    args = p.parse_args(argv)

    from clumpdet.baselines.tuning import run_tables, tables_to_results, tune_classical
    from clumpdet.data.coco import write_predictions
    from clumpdet.engine.train import train_detector
    from clumpdet.evaluation import evaluate_detections
    from clumpdet.inference.run import coco_results_path, run_detection

    t0 = time.perf_counter()
    data_dir = args.data or args.out / "data"
    given = {k: getattr(args, k) for k in ("train", "val", "test") if getattr(args, k)}
    sizes = {"train": args.n_train, "val": args.n_val, "test": args.n_test}
    if args.checkpoint is not None or args.classical_only:
        sizes.pop("train")
    todo = {k: n for k, n in sizes.items() if k not in given}
    sets = {**(simulate_sets(data_dir, todo, args.sim_config) if todo else {}), **given}
    timings = {"simulate_s": time.perf_counter() - t0}

    model, ours = args.checkpoint, None
    if model is None and not args.classical_only:
        overrides = [f"data.train={sets['train']}", f"data.val={sets['val']}", *args.set]
        if args.epochs:
            overrides.append(f"optim.max_epochs={args.epochs}")
        cfg = load_config(TrainConfig, args.config, overrides)
        t1 = time.perf_counter()
        model = train_detector(cfg, out=args.out / "run")
        timings["train_s"] = time.perf_counter() - t1

    if model is not None:
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

    rows = [row("clumpdet Faster R-CNN", ours)] if ours else []
    best = {"detector": ours.get("best_f1")} if ours else {}
    classical, tuning = {}, {}
    for method in ("residual", "unsharp"):
        base_pred = args.out / f"classical_{method}_predictions.json"
        cache = args.out / f"classical_{method}_tuning.json"
        if args.reuse_classical and base_pred.is_file() and cache.is_file():
            tuning[method] = json.loads(cache.read_text())
        else:
            t3 = time.perf_counter()
            cfg, trials = tune_classical(sets["val"], method=method, workers=args.workers)
            timings[f"tune_{method}_s"] = time.perf_counter() - t3
            tuning[method] = {"best": dataclasses.asdict(cfg), "trials": trials}
            t3 = time.perf_counter()
            tables = run_tables(sets["test"], method=method, config=cfg, workers=args.workers)
            timings[f"classical_{method}_s"] = time.perf_counter() - t3
            write_predictions(base_pred, tables_to_results(tables, cfg))
            args.out.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps(to_json_safe(tuning[method]), indent=1))
        classical[method] = evaluate_detections(
            truth=sets["test"],
            predictions=base_pred,
            out=args.out / f"eval_classical_{method}",
            score_threshold=args.score_threshold,
        )
        rows.append(row(f"classical {method} (tuned, swept)", classical[method]))
        best[f"classical_{method}"] = classical[method].get("best_f1")
    scored = {**({"detector": ours} if ours else {}), **classical}
    cmd = " ".join(["python", *sys.argv])
    result = {
        "command": cmd,
        "model": str(model),
        "test": str(sets["test"]),
        "score_threshold": args.score_threshold,
        "rows": rows,
        "timings": timings,
        "best_f1": best,
        "purity_at_completeness": {k: v["purity_at_completeness"] for k, v in scored.items()},
        "completeness_vs_snr": {k: v["curves"]["completeness_vs_snr"] for k, v in scored.items()},
        "completeness_vs_flux_ratio": {
            k: v["curves"]["completeness_vs_flux_ratio"] for k, v in scored.items()
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "comparison.json").write_text(
        json.dumps(to_json_safe(result), indent=2, allow_nan=False)
    )
    (args.out / "tuning.json").write_text(json.dumps(to_json_safe(tuning), indent=1))

    cols = [
        "completeness",
        "purity",
        "f1",
        "AP50",
        "AP",
        "max_completeness",
        "purity_at_C0.5",
        "purity_at_C0.9",
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

    methods = (*((("clumpdet", ours),) if ours else ()),
               *((f"classical {k}", v) for k, v in classical.items()))  # fmt: skip
    for key, xlabel in (("completeness_vs_flux_ratio", "clump / host flux ratio"),
                        ("completeness_vs_snr", "clump S/N (truth)")):  # fmt: skip
        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        for name, m in methods:
            c = m.get("curves", {}).get(key)
            if c:
                ax.plot(c["bin_centres"], c["completeness"], "o-", label=name)
        ax.set(xscale="log", xlabel=xlabel, ylabel="completeness", ylim=(0, 1.02),
               title=f"{key.replace('_', ' ')} (score >= {args.score_threshold})")  # fmt: skip
        ax.legend()
        fig.savefig(args.out / f"{key}.png", dpi=100)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4), constrained_layout=True)
    for name, m in methods:
        c = m.get("curves", {}).get("threshold")
        if c:
            ax.plot(c["completeness"], c["purity"], "-", label=f"{name} (AP50 {m['AP50']:.2f})")
    ax.axvline(0.9, color="0.6", ls=":")
    ax.set(xlabel="completeness", ylabel="purity", xlim=(0, 1.02), ylim=(0, 1.02),
           title="Purity vs completeness (score sweep, IoU >= 0.5)")  # fmt: skip
    ax.legend(fontsize=8)
    fig.savefig(args.out / "precision_recall.png", dpi=100)
    plt.close(fig)
    print(table)
    print(f"timings: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    print(f"wrote {args.out}/comparison.json\ncommand: {cmd}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
