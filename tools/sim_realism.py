"""Realism of a simulated colour set against real galaxies (KS distances + a side-by-side grid).

Reads both sets as 8-bit colour images (a sim dir's ``colour/images/*.jpg``, a folder with
``images/``, or any folder of JPEG/PNG), reduces them identically (common size, border sky,
photutils segmentation of the central galaxy, statmorph) and compares concentration, asymmetry,
smoothness, Gini, M20, r50 / frame size, two colour proxies and the number of other sources.
Writes ``OUT/realism.json`` (``ks`` {stat: KS distance}, medians, n used/failed),
``OUT/realism_galaxies.csv`` and ``OUT/sim_vs_real.png``; the library does the work
(:func:`clumpdet.evaluation.realism.run_realism`).

Example::

    python tools/sim_realism.py --sim runs/sim_colour --real ../shared/data/gz2_sdss_galaxies \\
        --out results/realism --n 300
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clumpdet.errors import ClumpdetError
from clumpdet.evaluation.realism import run_realism
from clumpdet.utils import command_line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", type=Path, required=True, help="simulated set (or folder of images)")
    p.add_argument("--real", type=Path, required=True, help="real set, e.g. gz2_sdss_galaxies")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--n", type=int, default=300, help="random sample per set (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128, help="common working size in pixels")
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="JSON cache of the real set's per-image statistics (default OUT/real_cache.json; "
        "reuse one file across runs to skip re-measuring the real galaxies)",
    )
    args = p.parse_args(argv)
    command = command_line(argv)
    try:
        res = run_realism(
            sim=args.sim,
            real=args.real,
            out=args.out,
            n=args.n or None,
            seed=args.seed,
            size=args.size,
            progress=True,
            command=command,
            cache=args.cache if args.cache is not None else args.out / "real_cache.json",
        )
    except ClumpdetError as exc:
        print(f"sim_realism: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"ks": res["ks"], "max_ks": res["max_ks"], "n": res["n"]}, indent=1))
    print(f"wrote {args.out / 'realism.json'} and {args.out / 'sim_vs_real.png'}")
    print(f"command: {command}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
