"""Compare simulated clump truth with the real Galaxy Zoo: Clump Scout statistics.

Writes ``stats.json`` (simulated vs real: boxes per clumpy galaxy, box-side and box-centre distance
percentiles, class ratio; flux-ratio and S/N percentiles per kind) and ``stats.png`` under
``--out``. Logic lives in :mod:`clumpdet.sim.stats`.

Examples
--------
Simulate in memory (no FITS written)::

    python tools/sim_statistics.py --n 2000 --seed 0 --out results/sim_stats

Read an existing simulation directory (``--frame colour``: its colour set, in the 400 px Clump
Scout subject frame)::

    python tools/sim_statistics.py --sim data/sim_train --out results/sim_stats
    python tools/sim_statistics.py --sim data/sim_colour --frame colour --out results/sim_stats
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clumpdet.errors import ClumpdetError
from clumpdet.sim import load_sim_config
from clumpdet.sim.stats import (
    load_sim_truth,
    plot_truth_statistics,
    simulate_truth,
    summarize_truth,
)
from clumpdet.utils import atomic_write, command_line


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000, help="scenes to simulate (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--config", type=Path, default=None, help="simulation YAML (configs/sim/)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    p.add_argument("--sim", type=Path, default=None, help="read this simulation dir instead")
    p.add_argument(
        "--frame",
        choices=("fits", "colour"),
        default="fits",
        help="with --sim: the FITS frame, or the colour set (DIR/colour) rescaled to the 400 px "
        "Clump Scout subject frame",
    )
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    args = p.parse_args(argv)
    try:
        if args.sim is not None:
            images, boxes = load_sim_truth(args.sim, frame=args.frame)
        else:
            cfg = load_sim_config(args.config, args.set)
            images, boxes = simulate_truth(
                n=args.n, seed=args.seed, config=cfg, workers=args.workers
            )
        summary = summarize_truth(images, boxes)
        run = {"n": args.n, "seed": args.seed, "config": str(args.config), "set": args.set}
        summary["source"] = str(args.sim) if args.sim else run
        args.out.mkdir(parents=True, exist_ok=True)
        with atomic_write(args.out / "stats.json", "w") as fh:
            json.dump(summary, fh, indent=2)
        plot_truth_statistics(summary, boxes, args.out / "stats.png")
    except ClumpdetError as exc:
        print(f"sim_statistics: error: {exc}", file=sys.stderr)
        return 2
    s = summary
    print(f"{'statistic':<34}{'simulated':>34}  {'Clump Scout':>30}")
    rows = [
        ("box side px (5/25/50/75/95)", s["box_side_px"]),
        ("centre distance px (5/25/50/75/95)", s["centre_distance_px"]),
    ]
    for name, d in rows:
        sim = "/".join(f"{v:.1f}" for v in d["sim"])
        real = "/".join(f"{v:.1f}" for v in d["real"])
        print(f"{name:<34}{sim:>34}  {real:>30}")
    m = s["mean_boxes_per_clumpy_galaxy"]
    print(f"{'boxes per clumpy galaxy (mean)':<34}{m['sim']:>34.2f}  {m['real']:>30.2f}")
    c = s["class_fraction"]
    odd_sim, odd_real = c["sim"]["odd_clump"], c["real"]["odd_clump"]
    print(f"{'class 2 (odd clump) fraction':<34}{odd_sim:>34.3f}  {odd_real:>30.3f}")
    cf = s["clumpy_fraction"]
    print(f"{'clumpy fraction':<34}{cf['sim']:>34.3f}  {cf['real']:>30.3f}")
    print(f"{'boxes with S/N < 10':<34}{s['snr_below_10_fraction']:>34.3f}")
    print(f"wrote {args.out / 'stats.json'} and {args.out / 'stats.png'}")
    print(f"command: {command_line(argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
