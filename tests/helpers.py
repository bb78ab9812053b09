"""Shared test data builders: tiny, fast, deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from clumpdet.data.coco import write_coco
from clumpdet.data.fits import make_wcs, write_image_fits


def blob_image(
    rng: np.random.Generator,
    *,
    size: int = 64,
    n_blobs: int = 2,
    sigma: float = 1.6,
    amplitude: float = 40.0,
    bands: int = 3,
    noise: float = 1.0,
    margin: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """An image ``(bands, size, size)`` with Gaussian blobs and their boxes ``(n, 4)`` xyxy."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    img = rng.normal(0.0, noise, (bands, size, size)).astype(np.float32)
    boxes = []
    for _ in range(n_blobs):
        cx, cy = rng.uniform(margin, size - margin, 2)
        blob = amplitude * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        img += blob[None].astype(np.float32)
        half = 3.0 * sigma
        boxes.append([cx - half, cy - half, cx + half, cy + half])
    return img, np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def write_blob_dataset(
    root: Path, *, n: int = 16, size: int = 64, seed: int = 0, bands=("g", "r", "i")
) -> Path:
    """Write ``n`` FITS blob images + COCO truth under ``root``; returns annotations.json."""
    rng = np.random.default_rng(seed)
    images, anns = [], []
    for i in range(n):
        img, boxes = blob_image(rng, size=size, n_blobs=int(i % 3), bands=len(bands))
        name = f"images/{i:04d}.fits"
        wcs = make_wcs(shape=(size, size), ra=150.0 + i * 0.01, dec=2.0, pixel_scale=0.396)
        write_image_fits(root / name, img, bands=bands, wcs=wcs, pixel_scale=0.396)
        images.append({"id": i, "file_name": name, "width": size, "height": size})
        for b in boxes:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    "area": float((b[2] - b[0]) * (b[3] - b[1])),
                }
            )
    return write_coco(root / "annotations.json", images=images, annotations=anns)


def write_task_dir(root, task, n=48, size=32, seed=0):
    """A tiny task folder in the `clumpdet simulate` layout, with a learnable signal."""
    import pandas as pd

    from clumpdet.tasks.gz_tree import ANSWER_NAMES, normalise

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    yy, xx = np.mgrid[0:size, 0:size]
    images = rng.normal(0, 0.05, (n, 3, size, size)).astype(np.float32)
    labels: dict[str, np.ndarray] = {}
    if task == "merger":
        y = np.arange(n) % 2
        for i in np.nonzero(y)[0]:  # mergers: a second blob
            images[i] += np.exp(-((xx - 22) ** 2 + (yy - 10) ** 2) / 8.0)
        labels["MergerLabel"] = y
    elif task == "four_class":
        k = np.arange(n) % 4
        for i, c in enumerate(k):
            images[i, c % 3] += 1.0 + c
        for j, name in enumerate(("normal", "ringed", "merger", "other")):
            labels[name] = (k == j).astype(float)
    elif task == "candels":
        frac = rng.dirichlet(np.ones(5), n)
        images += frac[:, :3, None, None].astype(np.float32)
        for j, name in enumerate(
            ("spheroid", "disk", "irregular", "point_source", "unclassifiable")
        ):
            labels[name] = frac[:, j]
    else:
        raw = rng.uniform(0.05, 1, (n, 37))
        frac = normalise(raw)
        images += frac[:, :3, None, None].astype(np.float32)
        for j, name in enumerate(ANSWER_NAMES):
            labels[name] = frac[:, j]
            labels[f"count_{name}"] = np.round(frac[:, j] * 40)
    images += np.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / 20.0)[None, None].astype(np.float32)
    np.save(root / "images.npy", images)
    pd.DataFrame({"id": np.arange(n), **labels}).to_csv(root / "labels.csv", index=False)
    (root / "config.yaml").write_text("image:\n  bands: [g, r, i]\n")
    return root


class ThresholdDetector(torch.nn.Module):
    """Deterministic stand-in for Faster R-CNN: one box per connected bright region in the input,
    cut at the tile edge exactly like a real detector that only sees the tile.

    The input's band sum is thresholded at ``threshold`` (stretched units)."""

    def __init__(self, threshold: float = 3.0) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, images):
        from scipy import ndimage

        outs = []
        for img in images:
            mask = img.sum(0).numpy() > self.threshold
            lab, _n = ndimage.label(mask)
            boxes = []
            for sl in ndimage.find_objects(lab):
                boxes.append([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop])
            b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
            outs.append(
                {
                    "boxes": b,
                    "labels": torch.ones(len(b), dtype=torch.int64),
                    "scores": torch.full((len(b),), 0.9),
                }
            )
        return outs


def spy_parallel_map(monkeypatch) -> list[int]:
    """Record the ``workers`` of every :func:`clumpdet.parallel.parallel_map` call the
    baselines make (through :mod:`clumpdet.baselines.common`); returns the growing list."""
    import clumpdet.baselines.common as common

    calls: list[int] = []
    real = common.parallel_map

    def spy(fn, tasks, **kwargs):
        calls.append(kwargs["workers"])
        return real(fn, tasks, **kwargs)

    monkeypatch.setattr(common, "parallel_map", spy)
    return calls
