"""Make the README figure: a grid of simulated clumpy galaxies with their truth boxes.

Example::

    python tools/make_readme_figure.py --out docs/img/sim_examples.png

Panels are Lupton asinh RGB composites (i, r, g) of default-config scenes; cyan boxes are class 1
clumps, pink boxes class 2 odd clumps (foreground stars, background galaxies). Only scenes with at
least one box are shown. Logic lives in :mod:`clumpdet.sim.plots`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clumpdet.sim import image_seed, load_sim_config, simulate_clump_scene
from clumpdet.sim.plots import plot_scene_grid


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/img/sim_examples.png"))
    p.add_argument("--n", type=int, default=6, help="panels (default 6)")
    p.add_argument("--seed", type=int, default=1, help="master seed (default 1)")
    p.add_argument("--config", type=Path, default=None, help="simulation YAML (configs/sim/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--dpi", type=int, default=90)
    args = p.parse_args(argv)
    cfg = load_sim_config(args.config, args.set)
    scenes, i = [], 0
    while len(scenes) < args.n:
        sc = simulate_clump_scene(config=cfg, seed=image_seed(args.seed, i), image_id=i)
        if not sc.is_empty or cfg.scene.empty_fraction >= 1.0:
            scenes.append(sc)
        i += 1
    title = "Simulated SDSS gri clumpy galaxies (clumpdet.sim) with truth boxes"
    plot_scene_grid(scenes, args.out, ncols=3, dpi=args.dpi, title=title)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
