"""Make the galaxy-simulation figure: examples of every class of every classification task.

Example::

    python tools/make_galaxy_sim_figure.py --out docs/img/galaxy_sims.png

Rows: the merger task (merging pairs, isolated galaxies, chance projections), the four-class task
(normal, ringed, merger, other: irregular / edge-on / artifact) and the morphology task (star,
elliptical, disk, barred, spiral, edge-on, odd), with titles from the true parameters. Panels are
Lupton asinh RGB composites with the bluest band as blue (mergers: F814W, F356W, F160W as B, G, R
in band order). Default-config scenes, first matches in seed order. Logic lives in
:mod:`clumpdet.sim.galaxies`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from clumpdet.sim import image_seed, load_galaxy_sim_config, simulate_galaxy_scene
from clumpdet.sim.galaxies.scene import GalaxyScene
from clumpdet.sim.plots import galaxy_rgb
from clumpdet.utils import atomic_path

#: (task, panel title, predicate on the scene's params)
PANELS: list[tuple[str, str, Callable[[dict], bool]]] = [
    ("mergers", "merger (label 1)", lambda p: p["kind"] == "merger"),
    ("mergers", "merger (label 1)", lambda p: p["kind"] == "merger"),
    ("mergers", "isolated (label 0)", lambda p: p["kind"] == "isolated"),
    ("mergers", "chance projection (0)", lambda p: p["kind"] == "projection"),
    ("mergers", "chance projection (0)", lambda p: p["kind"] == "projection"),
    ("four_class", "normal", lambda p: p["class"] == "normal"),
    ("four_class", "ringed", lambda p: p["class"] == "ringed"),
    ("four_class", "merger", lambda p: p["class"] == "merger"),
    ("four_class", "other: irregular", lambda p: p["subkind"] == "irregular"),
    ("four_class", "other: edge-on", lambda p: p["subkind"] == "edge_on"),
    ("four_class", "other: artifact", lambda p: p["subkind"] == "artifact"),
    ("morphology", "elliptical", lambda p: p["kind"] == "elliptical" and not p["odd"]),
    ("morphology", "spiral", lambda p: p["arms"] and p["q"] > 0.6 and not p["bar"]),
    ("morphology", "barred", lambda p: p["bar"] and p["q"] > 0.6),
    ("morphology", "edge-on disk", lambda p: p["kind"] == "disk" and p["q"] < 0.2),
    ("morphology", "odd: ring", lambda p: p["odd_feature"] == "ring"),
    ("morphology", "odd: merger", lambda p: p["odd_feature"] == "merger"),
]


def _find(task: str, pred: Callable[[dict], bool], seed: int, used: set, cfg) -> GalaxyScene:
    for i in range(5000):
        if (task, i) in used:
            continue
        sc = simulate_galaxy_scene(task=task, config=cfg, seed=image_seed(seed, i), image_id=i)
        if pred(sc.params):
            used.add((task, i))
            return sc
    raise RuntimeError(f"no {task} scene matched in 5000 draws")


def _subtitle(sc: GalaxyScene) -> str:
    p = sc.params
    if sc.task == "mergers":
        if p["kind"] == "isolated":
            return f"S/N {p['snr']:.0f}"
        return f'sep {p["separation"]:.1f}"  tails {p["n_tails"]}'
    if sc.task == "four_class":
        return f"B/T {p['g1_bt']:.2f}  q {p['g1_q']:.2f}"
    gz = sc.label
    return f"smooth {gz[0]:.2f} feat {gz[1]:.2f} odd {gz[13]:.2f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/img/galaxy_sims.png"))
    p.add_argument("--seed", type=int, default=3, help="master seed (default 3)")
    p.add_argument("--dpi", type=int, default=70)
    args = p.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfgs = {t: load_galaxy_sim_config(t) for t in ("mergers", "four_class", "morphology")}
    used: set = set()
    scenes = [(_find(t, pred, args.seed, used, cfgs[t]), title) for t, title, pred in PANELS]
    ncols = 6
    rows = {"mergers": 0, "four_class": 1, "morphology": 2}
    fig, axes = plt.subplots(3, ncols, figsize=(ncols * 2.1, 3 * 2.45))
    col = dict.fromkeys(rows, 0)
    for ax in axes.ravel():
        ax.axis("off")
    for sc, title in scenes:
        ax = axes[rows[sc.task], col[sc.task]]
        col[sc.task] += 1
        ax.imshow(galaxy_rgb(sc.image), origin="lower", interpolation="nearest")
        ax.set_title(f"{title}\n{_subtitle(sc)}", fontsize=8)
    names = {
        "mergers": "mergers: 75x75 F814W/F356W/F160W",
        "four_class": "four_class: 128x128 gri",
        "morphology": "morphology: 64x64 gri, GZ votes",
    }
    for task, r in rows.items():
        axes[r, 0].text(
            -0.08,
            0.5,
            names[task],
            transform=axes[r, 0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=8,
        )
    fig.suptitle("clumpdet simulated galaxy-classification data (noisy variants)", fontsize=10)
    fig.tight_layout()
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, dpi=args.dpi, format="png")
    plt.close(fig)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
