"""Blended-field benchmark: clumpdet's star/galaxy detector vs sep and photutils.

Simulates (or reuses) a validation set (tunes the classical finders) and a test set, runs every
method on the same test tiles and writes, under ``--out``: ``comparison.{json,md}``, the
comparison PNGs (completeness / purity vs magnitude and separation, pair deblending vs
separation, per-class precision-recall), ``overlays/``, ``tuning.json`` and
``predictions_*.csv``.

Example (after ``clumpdet train configs/detector/fields_resnet18.yaml --out runs/fields``)::

    python tools/bench_fields.py --checkpoint runs/fields/model.pt --out results/fields_benchmark
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clumpdet.errors import ClumpdetError
from clumpdet.experiments.deblending import run_deblending_benchmark, summarise
from clumpdet.sim import prepare_sets
from clumpdet.utils import command_line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="trained fields model.pt (omit: classical finders only)")  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--sim-config", default="configs/sim/fields_decam.yaml")
    p.add_argument("--n-test", type=int, default=200, help="test tiles (seed 2)")
    p.add_argument("--n-val", type=int, default=60, help="classical tuning tiles (seed 1)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.checkpoint is not None and not args.checkpoint.is_file():  # before simulating
        print(f"bench_fields: error: {args.checkpoint}: checkpoint not found", file=sys.stderr)
        return 2
    try:
        test_name, val_name = f"test_n{args.n_test}_seed2", f"val_n{args.n_val}_seed1"
        sets = prepare_sets(
            "fields",
            {test_name: (args.n_test, 2), val_name: (args.n_val, 1)},
            config=args.sim_config,
            out=args.out / "data",
            progress=not args.no_progress,
        )
        test, val = sets[test_name], sets[val_name]
        results = run_deblending_benchmark(
            checkpoint=args.checkpoint,
            test_dir=test,
            val_dir=val,
            out=args.out,
            progress=not args.no_progress,
        )
        print((args.out / "comparison.md").read_text())
        print(summarise(results))
        print(f"command: {command_line(argv)}")
    except ClumpdetError as exc:
        print(f"bench_fields: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
