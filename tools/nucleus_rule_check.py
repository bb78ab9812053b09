"""What the nucleus rule costs on simulated truth: labelled clumps dropped per rule fraction.

Writes ``nucleus_rule.json`` under ``--out`` (the library does the work:
:func:`clumpdet.experiments.real_galaxies.nucleus_rule_truth`): for each fraction f, the share of
class-1 truth boxes whose centre lies within f x the box side of the central galaxy's nucleus,
and the percentiles of that distance.

Example::

    python tools/nucleus_rule_check.py --checkpoint runs/colour/model.pt \\
        --coco runs/colour/data/val/colour/annotations.json --out results/nucleus_rule
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clumpdet.errors import ClumpdetError
from clumpdet.experiments.real_galaxies import NUCLEUS_FRACTIONS, nucleus_rule_truth
from clumpdet.utils import command_line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="clump detector model.pt")
    p.add_argument("--coco", type=Path, required=True, help="simulated COCO set with truth")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--fractions", type=float, nargs="+", default=list(NUCLEUS_FRACTIONS))
    args = p.parse_args(argv)
    command = command_line(argv)
    try:
        res = nucleus_rule_truth(
            checkpoint=args.checkpoint,
            coco=args.coco,
            out=args.out,
            fractions=args.fractions,
            command=command,
        )
    except ClumpdetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: res[k] for k in ("n_clumps", "dropped_fraction")}, indent=1))
    print(f"wrote {args.out / 'nucleus_rule.json'}")
    print(f"command: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
