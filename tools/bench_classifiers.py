"""Galaxy-classifier benchmark on clumpdet's simulated task data.

Trains each (config, overrides) pair with :func:`clumpdet.engine.classify.train_classifier` on the
same simulated set and collects the held-out test metrics. Usage::

    python tools/bench_classifiers.py --out results/classifiers [--n 2000] [--epochs 15]
        [--only merger_deepmerge merger_resnet18 ...]

Writes ``summary.json`` and ``summary.md`` (plus each run's plots under ``OUT/<name>/``) and
prints the command. Published references (real data): DeepMerge pristine accuracy 0.79, AUC 0.86;
four-class small CNN accuracy 0.60-0.70, AUC 0.80-0.90; GZ vote RMSE 0.075 (Dieleman ensemble).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from clumpdet.config import load_config
from clumpdet.engine.classify import ClassifierTrainConfig, train_classifier
from clumpdet.utils import markdown_table

ROOT = Path(__file__).resolve().parents[1]

#: name -> (config file, task data folder name, extra overrides)
RUNS: dict[str, tuple[str, str, list[str]]] = {
    "merger_deepmerge": ("merger_deepmerge.yaml", "mergers", []),
    "merger_resnet18": ("merger_resnet18.yaml", "mergers", []),
    "merger_efficientnet_b0": (
        "merger_resnet18.yaml",
        "mergers",
        ["model.backbone.name=efficientnet_b0", "model.backbone.out_indices=[4]"],
    ),
    "four_class_resnet18": ("four_class.yaml", "four_class", []),
    "gz_votes_dieleman": ("gz_votes_dieleman.yaml", "morphology", []),
    "gz_votes_resnet18_dirichlet": ("gz_votes_dirichlet.yaml", "morphology", []),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("results/classifiers"))
    p.add_argument("--n", type=int, default=2000, help="simulated galaxies per task")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--only", nargs="*", default=None, choices=sorted(RUNS))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from clumpdet.sim import prepare_sets

    rows = []
    for name in args.only or list(RUNS):
        cfg_file, sim_task, extra = RUNS[name]
        data = prepare_sets(sim_task, {sim_task: (args.n, args.seed)}, out=args.out / "data")[
            sim_task
        ]
        cfg = load_config(
            ClassifierTrainConfig,
            ROOT / "configs" / "classifier" / cfg_file,
            [
                "data.source=sim_dir",
                f"data.path={data}",
                f"optim.max_epochs={args.epochs}",
                "trainer.progress_bar=false",
                f"trainer.seed={args.seed}",
                *extra,
            ],
        )
        t0 = time.perf_counter()
        train_classifier(cfg, out=args.out / name)
        metrics = json.loads((args.out / name / "test_metrics.json").read_text())
        row = {
            "run": name,
            "task": cfg.model.task,
            "model": cfg.model.model,
            "backbone": cfg.model.backbone.name if cfg.model.model == "trunk" else "-",
            "minutes": round((time.perf_counter() - t0) / 60, 1),
        }
        for key in ("accuracy", "auc", "f1", "brier", "rmse", "r2"):
            if key in metrics:
                row[key] = metrics[key]
        rows.append(row)
        print(json.dumps(row))

    cmd = " ".join(["python", *sys.argv])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps({"command": cmd, "rows": rows}, indent=2))
    keys = ["run", "task", "model", "backbone", "accuracy", "auc", "f1", "rmse", "r2", "minutes"]
    table = markdown_table(
        keys,
        [[str(r.get(k, "–")) if k == "minutes" else r.get(k, "–") for k in keys] for r in rows],
    )
    (args.out / "summary.md").write_text(table + f"\n\nCommand: `{cmd}`\n")
    print(table)
    print(f"command: {cmd}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
