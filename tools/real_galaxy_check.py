"""Real-galaxy check: a clump detector on the real SDSS galaxies of Galaxy Zoo 2.

Writes ``real_check.json`` (fraction of galaxies with at least one clump and clumps per galaxy,
for all galaxies and split by the ``spiral`` label, next to the Clump Scout numbers),
``real_check_galaxies.csv`` (per galaxy) and ``overlays.png`` (24 random galaxies with their
boxes) under ``--out``; the library does the work
(:func:`clumpdet.experiments.real_galaxies.real_galaxy_check`).

Example::

    python tools/real_galaxy_check.py --checkpoint demo/run/model.pt \\
        --real /work/shared/data/gz2_sdss_galaxies --out results/real_galaxies \\
        --n 300 --allow-input-mismatch
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clumpdet.errors import ClumpdetError
from clumpdet.experiments.real_galaxies import real_galaxy_check
from clumpdet.utils import command_line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True, help="clump detector model.pt")
    p.add_argument("--real", type=Path, required=True, help="the gz2_sdss_galaxies folder")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--n", type=int, default=None, help="random sample of N galaxies (default all)")
    p.add_argument("--score", type=float, default=None, help="score threshold (default: model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--allow-input-mismatch",
        action="store_true",
        help="run a FITS-trained model on these JPEGs instead of refusing",
    )
    p.add_argument(
        "--central-host",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="count only boxes on the central galaxy (default: the checkpoint's "
        "model.central_host)",
    )
    p.add_argument(
        "--nucleus-exclusion",
        type=float,
        default=None,
        metavar="F",
        help="with the central-host rule, also leave out boxes centred on the galaxy's nucleus "
        "(within F x the box side; default: the checkpoint's model.nucleus_exclusion)",
    )
    args = p.parse_args(argv)
    command = command_line(argv)
    try:
        res = real_galaxy_check(
            checkpoint=args.checkpoint,
            real=args.real,
            out=args.out,
            n=args.n,
            score_threshold=args.score,
            seed=args.seed,
            batch_size=args.batch_size,
            device=args.device,
            allow_input_mismatch=args.allow_input_mismatch,
            central_host=args.central_host,
            nucleus_exclusion=args.nucleus_exclusion,
            progress=True,
            command=command,
        )
    except ClumpdetError as exc:
        print(f"real_galaxy_check: error: {exc}", file=sys.stderr)
        return 2
    brief = {k: res[k] for k in ("score_threshold", "all", "spiral", "not_spiral", "clump_scout")}
    print(json.dumps(brief, indent=1))
    print(f"wrote {args.out / 'real_check.json'} and {res['overlays']}")
    print(f"command: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
