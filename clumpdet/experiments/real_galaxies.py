"""Run a clump detector on real SDSS galaxies and compare its clump counts with Clump Scout.

The galaxies are the Galaxy Zoo 2 gri colour JPEGs of ``shared/data/gz2_sdss_galaxies``
(``labels.csv``: ``file, galaxy_id, spiral``). Each image is read as every prediction path reads
it (:meth:`clumpdet.inference.predictor.Predictor.read`: planes in wavelength order, row 0 at
the top) and detected whole (binned first when the model was trained on binned colour frames,
checkpoint ``input["bin"]``, e.g. ``configs/detector/sdss_colour.yaml``; tiled when larger than
the training size), with boxes reported in the JPEG's pixels. The statistics are the
fraction of galaxies with at least one clump above the score threshold and the mean number of
clumps per galaxy (and per galaxy with any), for all galaxies and split by the ``spiral`` label,
next to the volunteers' numbers (:data:`CLUMP_SCOUT`).

What counts as a clump (:data:`COUNTED_CLASSES`, :data:`COUNTING_RULE`): class 1 only. Class 2,
"odd clump", is what volunteers flagged as unusual (a possible foreground star or background
object); the Clump Scout clumpy fraction (Adams et al. 2022) is a count of class 1 clumps. The
summary also gives the same statistics over every box of either class (``all_classes``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clumpdet.detections import Detections
from clumpdet.errors import InputError
from clumpdet.evaluation.detection import to_json_safe
from clumpdet.utils import atomic_write

#: Galaxy Zoo: Clump Scout (docs in shared/FACTS.md): clumpy fraction (Adams et al. 2022,
#: 3 % and 8 % u-band flux-ratio cuts), clumps per clumpy galaxy (46,164 boxes on 19,956
#: galaxies), and their product, the clumps per galaxy of the whole sample (3 % cut).
CLUMP_SCOUT: dict[str, float] = {
    "fraction_with_clump_3pc_cut": 0.127,
    "fraction_with_clump_8pc_cut": 0.032,
    "clumps_per_clumpy_galaxy": 2.31,
    "clumps_per_galaxy": round(0.127 * 2.31, 3),
}

#: Classes counted as clumps in the headline statistics (``all``, ``spiral``, ``not_spiral``).
COUNTED_CLASSES: tuple[str, ...] = ("clump",)

#: Why, recorded in ``real_check.json``.
COUNTING_RULE = (
    "headline counts class 1 (clump) only: class 2 (odd clump) is what Clump Scout volunteers "
    "flagged as unusual, e.g. a possible foreground star or background galaxy seen through the "
    "disk, i.e. not a star-forming clump of the host; the clumpy fraction it is compared with "
    "(Adams et al. 2022, 12.7 %) counts class 1 clumps. 'all_classes' counts boxes of both "
    "classes."
)

#: Columns of the galaxies' label table.
LABEL_COLUMNS: tuple[str, ...] = ("file", "galaxy_id", "spiral")


@dataclasses.dataclass(frozen=True)
class RealGalaxies:
    """The real galaxy sample: image files with ids and the (noisy) ``spiral`` label.

    Attributes
    ----------
    paths : tuple of Path
        One JPEG per galaxy.
    galaxy_ids : ndarray, shape (N,), int64
        Kaggle GalaxyIDs.
    spiral : ndarray, shape (N,), bool
        The derived spiral label of ``labels.csv``.
    """

    paths: tuple[Path, ...]
    galaxy_ids: np.ndarray
    spiral: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, index: Sequence[int] | np.ndarray) -> RealGalaxies:
        """The galaxies at ``index``, in that order."""
        idx = np.asarray(index, dtype=np.int64)
        return RealGalaxies(
            tuple(self.paths[i] for i in idx), self.galaxy_ids[idx], self.spiral[idx]
        )


def read_real_galaxies(folder: str | Path) -> RealGalaxies:
    """Read ``folder/labels.csv`` (``file, galaxy_id, spiral``) and check the images exist.

    Raises
    ------
    InputError
        Missing folder, table or image; missing columns; a ``spiral`` value not 0/1.
    """
    folder = Path(folder)
    table = folder / "labels.csv"
    if not table.is_file():
        raise InputError(table, "file not found (expected the gz2_sdss_galaxies folder)")
    df = pd.read_csv(table, dtype={"file": str})
    missing = [c for c in LABEL_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(table, f"missing column(s) {', '.join(missing)}; has {list(df.columns)}")
    if df.empty:
        raise InputError(table, "no rows")
    bad = ~df["spiral"].isin([0, 1])
    if bad.any():
        r = int(np.argmax(bad.to_numpy()))
        raise InputError(table, f"line {r + 2}: spiral {df['spiral'].iloc[r]} is not 0 or 1")
    paths = tuple(folder / f for f in df["file"])
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise InputError(absent[0], f"image file not found ({len(absent)} of {len(paths)})")
    return RealGalaxies(
        paths,
        df["galaxy_id"].to_numpy(dtype=np.int64),
        df["spiral"].to_numpy(dtype=np.int64).astype(bool),
    )


def clump_statistics(counts: np.ndarray) -> dict[str, float | int]:
    """Clump-count statistics of a set of galaxies.

    Parameters
    ----------
    counts : ndarray, shape (N,)
        Detections per galaxy.

    Returns
    -------
    dict
        ``n_galaxies``, ``fraction_with_clump`` (galaxies with >= 1 detection),
        ``clumps_per_galaxy`` (mean), ``clumps_per_clumpy_galaxy`` (mean over galaxies with
        any; NaN without any), ``median_clumps_per_galaxy``, ``max_clumps``.
    """
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    clumpy = counts[counts > 0]
    n = len(counts)
    return {
        "n_galaxies": n,
        "fraction_with_clump": float(len(clumpy) / n) if n else float("nan"),
        "clumps_per_galaxy": float(counts.mean()) if n else float("nan"),
        "clumps_per_clumpy_galaxy": float(clumpy.mean()) if len(clumpy) else float("nan"),
        "median_clumps_per_galaxy": float(np.median(counts)) if n else float("nan"),
        "max_clumps": int(counts.max(initial=0)),
    }


def real_galaxy_check(
    *,
    checkpoint: str | Path,
    real: str | Path,
    out: str | Path,
    n: int | None = None,
    score_threshold: float | None = None,
    seed: int = 0,
    n_overlays: int = 24,
    allow_input_mismatch: bool = False,
    batch_size: int = 8,
    device: str = "cpu",
    progress: bool = False,
    command: str | None = None,
    counted_classes: Sequence[str] = COUNTED_CLASSES,
    central_host: bool | None = None,
    nucleus_exclusion: float | None = None,
) -> dict[str, Any]:
    """Detect clumps in real galaxies; write statistics, a per-galaxy table and overlays.

    Parameters
    ----------
    checkpoint : path
        A clump detector checkpoint (``RUNDIR/model.pt``).
    real : path
        The ``gz2_sdss_galaxies`` folder (``labels.csv`` + ``images/``).
    out : path
        Output folder: ``real_check.json`` (the returned summary), ``real_check_galaxies.csv``
        (``galaxy_id, spiral, n_clumps`` (boxes of ``counted_classes``), ``n_boxes`` (boxes
        of any class), ``n_<class>`` per class, ``max_score`` per galaxy),
        ``real_check_detections.csv`` (``galaxy_id, x1, y1, x2, y2, label, score, width,
        height`` per detection; xyxy pixels, row 0 at the top of the JPEG) and
        ``overlays.png`` (``n_overlays`` random galaxies with their boxes).
    n : int, optional
        Detect on a random sample of ``n`` galaxies (``seed``); default all.
    score_threshold : float, optional
        Detections counted from this score; default the checkpoint's operating threshold.
    seed : int
        Seed of the galaxy sample and of the overlay panels.
    n_overlays : int
        Galaxies shown in ``overlays.png``.
    allow_input_mismatch : bool
        Run a model trained on FITS images on these JPEGs (refused otherwise,
        :func:`clumpdet.inference.run.check_input_kind`).
    batch_size, device : int, str
        Inference batch and device.
    progress : bool
        Show a progress bar.
    command : str, optional
        The command line that ran the check, recorded in the summary.
    central_host : bool, optional
        Count only boxes on the central galaxy of each frame
        (:mod:`clumpdet.inference.footprint`); default the checkpoint's
        ``model.central_host``.
    nucleus_exclusion : float, optional
        With ``central_host``, also leave out boxes centred on the central galaxy's nucleus
        (:func:`clumpdet.inference.footprint.on_nucleus`); default the checkpoint's
        ``model.nucleus_exclusion``.
    counted_classes : sequence of str
        Classes counted as clumps in ``all`` / ``spiral`` / ``not_spiral`` (default class 1
        only, :data:`COUNTING_RULE`).

    Returns
    -------
    dict
        JSON-safe summary: ``all``, ``spiral``, ``not_spiral`` (:func:`clump_statistics` of the
        ``counted_classes`` boxes, plus ``clumps_per_galaxy_by_label``), ``all_classes`` (the
        same three over boxes of every class), ``counted_classes``, ``counting_rule``,
        ``clump_scout`` (:data:`CLUMP_SCOUT`), the checkpoint, its training input, the
        threshold, sample and output paths.

    Raises
    ------
    InputError
        Bad ``real`` folder, a sources detector, an image of another kind than the model's
        training input (without ``allow_input_mismatch``), or ``n`` < 1.
    """
    from clumpdet.inference.overlay import plot_overlay_grid
    from clumpdet.inference.predictor import Predictor
    from clumpdet.inference.run import check_input_kind

    out = Path(out)
    galaxies = read_real_galaxies(real)
    rng = np.random.default_rng(seed)
    if n is not None:
        if n < 1:
            raise InputError(None, f"real_galaxy_check: n={n} must be at least 1")
        if n < len(galaxies):
            galaxies = galaxies.take(np.sort(rng.choice(len(galaxies), n, replace=False)))
    predictor = Predictor.from_checkpoint(
        checkpoint,
        batch_size=batch_size,
        device=device,
        central_host=central_host,
        nucleus_exclusion=nucleus_exclusion,
    )
    bundle = predictor.bundle
    if bundle.detection_kind != "clumps":
        raise InputError(
            checkpoint, f"is a {bundle.detection_kind} detector; this check needs a clump detector"
        )
    unknown = [c for c in counted_classes if c not in bundle.class_names]
    if not counted_classes or unknown:
        raise InputError(
            checkpoint,
            f"counted_classes {list(counted_classes)}: expected a non-empty subset of the "
            f"model's classes {list(bundle.class_names)}",
        )
    counted = np.array([i + 1 for i, c in enumerate(bundle.class_names) if c in counted_classes])
    if not allow_input_mismatch:
        check_input_kind(galaxies.paths, bundle.input, checkpoint)
    threshold = bundle.model_config.score_threshold if score_threshold is None else score_threshold
    shown = set(rng.choice(len(galaxies), min(n_overlays, len(galaxies)), replace=False).tolist())
    panels: dict[int, tuple[Any, Detections]] = {}
    rows = []
    boxes = []
    for k, (image, det) in enumerate(predictor.iter_files(galaxies.paths, progress=progress)):
        d = det.above(threshold)
        if k in shown:
            panels[k] = (image, d)
        per_label = [int((d.labels == i + 1).sum()) for i in range(len(bundle.class_names))]
        for b, lab, score in zip(d.boxes, d.labels, d.scores):
            boxes.append(
                {
                    "galaxy_id": int(galaxies.galaxy_ids[k]),
                    **dict(zip(("x1", "y1", "x2", "y2"), map(float, b))),
                    "label": bundle.class_names[int(lab) - 1],
                    "score": float(score),
                    "width": int(image.shape[2]),
                    "height": int(image.shape[1]),
                }
            )
        rows.append(
            {
                "galaxy_id": int(galaxies.galaxy_ids[k]),
                "spiral": int(galaxies.spiral[k]),
                "n_clumps": int(np.isin(d.labels, counted).sum()),
                "n_boxes": len(d),
                **{f"n_{name}": c for name, c in zip(bundle.class_names, per_label)},
                "max_score": float(d.scores.max()) if len(d) else float("nan"),
            }
        )
    table = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "real_check_galaxies.csv", "w", newline="") as fh:
        table.to_csv(fh, index=False)
    box_columns = ["galaxy_id", "x1", "y1", "x2", "y2", "label", "score", "width", "height"]
    with atomic_write(out / "real_check_detections.csv", "w", newline="") as fh:
        pd.DataFrame(boxes, columns=box_columns).to_csv(fh, index=False)

    def stats(sel: np.ndarray, column: str = "n_clumps") -> dict[str, Any]:
        part = table[sel]
        res: dict[str, Any] = clump_statistics(part[column].to_numpy())
        res["clumps_per_galaxy_by_label"] = {
            name: float(part[f"n_{name}"].mean()) if len(part) else float("nan")
            for name in bundle.class_names
        }
        return res

    spiral = table["spiral"].to_numpy().astype(bool)
    everyone = np.ones(len(table), dtype=bool)
    order = sorted(panels)
    overlays = plot_overlay_grid(
        [panels[k][0] for k in order],
        [panels[k][1] for k in order],
        out / "overlays.png",
        titles=[
            f"{galaxies.galaxy_ids[k]}{' (spiral)' if galaxies.spiral[k] else ''}" for k in order
        ],
        class_names=bundle.class_names,
        title=f"{checkpoint}: real SDSS galaxies (GZ2 JPEGs), score >= {threshold:.2f}",
    )
    summary = {
        "command": command,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": bundle.sha256,
        "trained_on": bundle.input,
        "input": "Galaxy Zoo 2 SDSS gri colour JPEGs (8-bit display values)",
        "allow_input_mismatch": bool(allow_input_mismatch),
        "real": str(real),
        "score_threshold": float(threshold),
        "central_host": predictor.central_host,
        "nucleus_exclusion": predictor.nucleus_exclusion if predictor.central_host else 0.0,
        "seed": int(seed),
        "counted_classes": [c for c in bundle.class_names if c in counted_classes],
        "counting_rule": COUNTING_RULE if tuple(counted_classes) == COUNTED_CLASSES else None,
        "all": stats(everyone),
        "spiral": stats(spiral),
        "not_spiral": stats(~spiral),
        "spiral_to_other_clumpy_ratio": _ratio(
            stats(spiral)["fraction_with_clump"], stats(~spiral)["fraction_with_clump"]
        ),
        "all_classes": {
            "all": stats(everyone, "n_boxes"),
            "spiral": stats(spiral, "n_boxes"),
            "not_spiral": stats(~spiral, "n_boxes"),
        },
        "clump_scout": CLUMP_SCOUT,
        "galaxies_csv": str(out / "real_check_galaxies.csv"),
        "detections_csv": str(out / "real_check_detections.csv"),
        "overlays": str(overlays),
    }
    summary = to_json_safe(summary)
    with atomic_write(out / "real_check.json", "w") as fh:
        json.dump(summary, fh, indent=1)
    return summary


def _ratio(a: float, b: float) -> float:
    """``a / b``; NaN when either is NaN, ``inf`` when only ``b`` is 0."""
    if not (np.isfinite(a) and np.isfinite(b)):
        return float("nan")
    if b == 0:
        return float("inf") if a > 0 else float("nan")
    return float(a / b)


#: Nucleus-rule fractions (of the box side) whose truth cost :func:`nucleus_rule_truth` reports.
NUCLEUS_FRACTIONS: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)


def nucleus_rule_truth(
    *,
    checkpoint: str | Path,
    coco: str | Path,
    out: str | Path,
    fractions: Sequence[float] = NUCLEUS_FRACTIONS,
    command: str | None = None,
) -> dict[str, Any]:
    """What the nucleus rule would cost on simulated truth: the share of labelled clumps whose
    truth box it drops, per fraction.

    Each image of ``coco`` is read and prepared as the checkpoint's predictor does (stretch, and
    binning for colour models), its nucleus found by
    :func:`clumpdet.inference.footprint.central_nucleus`, and every class-1 truth box (in the
    same binned pixels) tested with :func:`clumpdet.inference.footprint.on_nucleus`.

    Parameters
    ----------
    checkpoint : path
        The detector whose input handling (bands, stretch, ``input["bin"]``) is used.
    coco : path
        A simulated COCO set with truth (e.g. ``RUN/data/val/colour/annotations.json``).
    out : path
        Folder for ``nucleus_rule.json``.
    fractions : sequence of float
        Rule fractions to evaluate (units of the box's mean side).
    command : str, optional
        Recorded in the summary.

    Returns
    -------
    dict
        ``n_clumps``, ``n_images``, ``dropped_fraction`` (per rule fraction), the percentiles of
        the truth clumps' nucleus distance in box sides (``distance_percentiles``) and the
        checkpoint's own ``nucleus_exclusion``.
    """
    from clumpdet.data.coco import load_coco
    from clumpdet.data.dataset import bin_planes
    from clumpdet.inference.footprint import central_nucleus, nucleus_distance
    from clumpdet.inference.predictor import Predictor

    predictor = Predictor.from_checkpoint(checkpoint)
    doc = load_coco(coco)
    root = Path(doc["_root"])
    clumps: dict[int, list[list[float]]] = {}
    for a in doc["annotations"]:
        if int(a["category_id"]) == 1:
            clumps.setdefault(int(a["image_id"]), []).append(a["bbox"])
    distances: list[np.ndarray] = []  # per clump, box sides from the nucleus (inf: none)
    n_images = 0
    for im in doc["images"]:
        boxes = clumps.get(int(im["id"]))
        if not boxes:
            continue
        planes = predictor.prepare(predictor.read(root / im["file_name"]))
        if predictor.bin > 1:
            planes = bin_planes(planes, predictor.bin)
        xywh = np.asarray(boxes, dtype=np.float64) / predictor.bin
        xyxy = np.c_[xywh[:, :2], xywh[:, :2] + xywh[:, 2:]].astype(np.float32)
        det = Detections(xyxy, np.ones(len(xyxy), np.int64), np.ones(len(xyxy), np.float32))
        distances.append(nucleus_distance(det, central_nucleus(planes)))
        n_images += 1
    all_d = np.concatenate(distances) if distances else np.zeros(0)
    n_clumps = all_d.size
    dist = all_d[np.isfinite(all_d)]
    pct = (1, 2, 5, 10, 25, 50)
    summary = to_json_safe(
        {
            "command": command,
            "checkpoint": str(checkpoint),
            "coco": str(coco),
            "checkpoint_nucleus_exclusion": predictor.nucleus_exclusion,
            "n_images": n_images,
            "n_clumps": n_clumps,
            "dropped_fraction": {
                str(f): float(np.mean(all_d < f)) if n_clumps else float("nan") for f in fractions
            },
            "distance_percentiles": {
                str(p): float(np.percentile(dist, p)) if dist.size else float("nan") for p in pct
            },
        }
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "nucleus_rule.json", "w") as fh:
        json.dump(summary, fh, indent=1)
    return summary
