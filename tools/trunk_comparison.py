"""Classifier trunks compared by few-label fine-tuning on held-out real galaxies.

Usage::

    python tools/trunk_comparison.py [CONFIG.yaml] [--out results/trunk_comparison] \
        [--set key=value ...]

Trunks: scratch, the simulated-galaxy-task trunk (``configs/pretrain/cpu_small.yaml``), a
supervised trunk on the non-held-out real galaxies (their label) and a self-supervised trunk
(``configs/pretrain/ssl_real.yaml``, held-out images excluded); each fine-tuned frozen, top-k
and full with the Zoobot-style recipe (``configs/classifier/zoobot_recipe.yaml``) on
``n_labels`` galaxies, over several seeds. Keys: :class:`clumpdet.experiments.trunk_comparison.
ComparisonConfig` (e.g. ``--set trunk_paths.sim=RUN/backbone.pt`` reuses a trunk). Re-running the
same command resumes (finished trunks and fine-tunings are reused). Writes ``comparison.json``,
``comparison.png`` and ``summary.md`` under OUT and prints the command.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("config", type=Path, nargs="?", default=None, help="comparison YAML")
    p.add_argument("--out", type=Path, default=Path("results/trunk_comparison"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)

    from clumpdet.config import load_config
    from clumpdet.errors import ClumpdetError
    from clumpdet.experiments.trunk_comparison import ComparisonConfig, run_comparison

    command = shlex.join(["python", "tools/trunk_comparison.py", *(argv or sys.argv[1:])])
    try:
        cfg = load_config(ComparisonConfig, args.config, args.set)
        run_comparison(cfg, out=args.out, command=command)
    except ClumpdetError as exc:
        print(f"trunk_comparison: error: {exc}", file=sys.stderr)
        return 2
    print((args.out / "summary.md").read_text())
    print(f"wrote {args.out}/comparison.json, comparison.png, summary.md")
    print(f"command: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
