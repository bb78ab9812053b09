"""Backbone-transfer grid: completeness and purity vs backbone, trainable depth and training size.

Usage::

    python tools/transfer_experiment.py configs/transfer/cpu_small.yaml \
        [--out results/transfer_cpu_small] [--set key=value ...]

Re-running the same command resumes: finished cells (``OUT/cells/<id>/result.json``) are not
recomputed. Every cell trains until validation stops improving, within a step budget that grows
with its training set, and records the epochs, steps and early-stopping epoch it used. Writes
``results.csv``/``.parquet`` (one row per cell: C, P, F1, AP50, purity at completeness 0.9,
budget and wall time), ``learning_curves.png`` (mean and 68 % interval over seeds),
``backbones_at_largest_size.png`` and ``summary.md`` (the data-saving factor of every backbone
against scratch, with its bootstrap 68 % interval) under OUT (see
:mod:`clumpdet.experiments.transfer`). ``--report-only`` tabulates the finished cells.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("config", type=Path, help="transfer config YAML (configs/transfer/...)")
    p.add_argument("--out", type=Path, default=None, help="default results/transfer_<config>")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-progress", action="store_true", help="hide training progress bars")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: tabulate and plot the cells finished so far",
    )
    args = p.parse_args(argv)

    from clumpdet.config import load_config
    from clumpdet.errors import ClumpdetError
    from clumpdet.experiments.transfer import run_transfer_grid
    from clumpdet.experiments.transfer_config import TransferConfig

    out = args.out or Path("results") / f"transfer_{args.config.stem}"
    command = shlex.join(["python", "tools/transfer_experiment.py", *sys.argv[1:]])
    try:
        cfg = load_config(TransferConfig, args.config, args.set)
        df = run_transfer_grid(
            cfg,
            out=out,
            command=command,
            progress=not args.no_progress,
            report_only=args.report_only,
        )
    except ClumpdetError as exc:
        print(f"transfer_experiment: error: {exc}", file=sys.stderr)
        return 2
    print((out / "summary.md").read_text())
    print(f"{len(df)} cells, {int((df['status'] == 'ok').sum())} ok; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
