"""torch Dataset of images plus detection targets from a COCO truth file."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from clumpdet.data.augment import apply_augmentation
from clumpdet.data.coco import load_coco
from clumpdet.data.images import NanPolicy, _is_raster, read_model_input
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.errors import ConfigError, InputError


class DetectionDataset(Dataset):
    """Images and torchvision-style detection targets listed in a COCO file.

    Parameters
    ----------
    annotations : str, Path or dict
        COCO truth JSON (read with :func:`clumpdet.data.coco.load_coco`; ``file_name`` is
        relative to the JSON's directory), or a dict already returned by ``load_coco``.
    preprocessing : Preprocessing
        Band selection, stretch and normalisation applied to every image.
    augmentation : albumentations.Compose, optional
        From :func:`clumpdet.data.augment.build_augmentation`; applied after preprocessing
        (and after the cache), so each epoch draws new transforms.
    image_ids : sequence of int, optional
        Subset (and order) of COCO image ids, e.g. one part of :func:`split_ids`. Default:
        every image, in file order.
    cache : bool
        Keep preprocessed images in memory after their first read (each DataLoader worker keeps
        its own copy). Worth it for small simulated cutouts.
    nan_policy : {"raise", "zero", "median"}
        Passed to :func:`clumpdet.data.images.read_image`.

    Notes
    -----
    Item ``i`` is ``(image, target)``: ``image`` float32 tensor ``(C, H, W)``; ``target`` a
    dict with ``boxes`` float32 ``(N, 4)`` xyxy pixels, ``labels`` int64 ``(N,)`` (the COCO
    ``category_id``), ``image_id`` int64 scalar, ``area`` float32 ``(N,)`` (box areas after
    augmentation) and ``iscrowd`` int64 ``(N,)``. ``N`` may be 0 (boxes of shape ``(0, 4)``).

    Raises
    ------
    InputError
        Invalid COCO file, unknown ``image_ids``, unreadable images or images whose size
        differs from the COCO ``width``/``height`` (raised when the item is loaded).
    """

    def __init__(
        self,
        annotations: str | Path | Mapping[str, Any],
        *,
        preprocessing: Preprocessing,
        augmentation: Any | None = None,
        image_ids: Sequence[int] | None = None,
        cache: bool = False,
        nan_policy: NanPolicy = "raise",
    ) -> None:
        if isinstance(annotations, Mapping):
            if "_root" not in annotations:
                raise InputError(None, "COCO dict lacks '_root'; load it with load_coco()")
            coco = dict(annotations)
            self.source: Path | None = None
        else:
            self.source = Path(annotations)
            coco = load_coco(self.source)
        self.coco = coco
        self.root = Path(coco["_root"])
        self.preprocessing = preprocessing
        self.augmentation = augmentation
        self.cache = cache
        self.nan_policy = nan_policy
        self._images = {int(im["id"]): im for im in coco["images"]}
        self._anns: dict[int, list[Mapping[str, Any]]] = {i: [] for i in self._images}
        for a in coco["annotations"]:
            self._anns[int(a["image_id"])].append(a)
        if image_ids is None:
            ids = list(self._images)
        else:
            ids = [int(i) for i in image_ids]
            unknown = [i for i in ids if i not in self._images]
            if unknown:
                shown = ", ".join(map(str, unknown[:5])) + (" ..." if len(unknown) > 5 else "")
                raise InputError(self.source, f"{len(unknown)} image id(s) not in file: {shown}")
        self.image_ids: list[int] = ids
        self.categories: dict[int, str] = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
        self._cache: dict[int, np.ndarray] = {}
        self._worker_seeded: int | None = None

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_info(self, index: int) -> Mapping[str, Any]:
        """The COCO ``images`` record of item ``index``."""
        return self._images[self.image_ids[index]]

    def image_path(self, index: int) -> Path:
        """Absolute path of the file of item ``index``."""
        return self.root / self.image_info(index)["file_name"]

    def load_image(self, index: int) -> np.ndarray:
        """Read and preprocess item ``index`` (no augmentation): float32 ``(C, H, W)``."""
        image_id = self.image_ids[index]
        cached = self._cache.get(image_id)
        if cached is not None:
            return cached
        info = self._images[image_id]
        path = self.root / info["file_name"]
        image = read_model_input(path, self.preprocessing.bands, nan_policy=self.nan_policy)
        h, w = image.data.shape[1:]
        if (w, h) != (int(info["width"]), int(info["height"])):
            raise InputError(
                path,
                f"image is {w}x{h} px but {self.source or 'the COCO file'} says "
                f"{info['width']}x{info['height']} (width x height)",
            )
        array = self.preprocessing(image)
        if self.cache:
            self._cache[image_id] = array
        return array

    def load_target(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (float32 (N, 4) xyxy), labels (int64 (N,)), iscrowd (int64 (N,)) of an item."""
        anns = self._anns[self.image_ids[index]]
        boxes = np.array(
            [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], dtype=np.float32
        ).reshape(-1, 4)
        labels = np.array([a["category_id"] for a in anns], dtype=np.int64)
        iscrowd = np.array([a.get("iscrowd", 0) for a in anns], dtype=np.int64)
        return boxes, labels, iscrowd

    def _seed_worker_augmentation(self) -> None:
        """Give each DataLoader worker its own augmentation stream.

        Forked workers inherit identical generator states, which would repeat the same
        "random" transforms in every worker; reseed from the worker's torch seed once.
        """
        info = torch.utils.data.get_worker_info()
        if info is None or self._worker_seeded == info.seed:
            return
        if hasattr(self.augmentation, "set_random_seed"):
            self.augmentation.set_random_seed(int(info.seed % 2**32))
        self._worker_seeded = info.seed

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = self.load_image(index)
        boxes, labels, iscrowd = self.load_target(index)
        if self.augmentation is not None:
            self._seed_worker_augmentation()
            image, boxes, keep = apply_augmentation(
                self.augmentation, image, boxes, np.arange(len(labels))
            )
            labels, iscrowd = labels[keep], iscrowd[keep]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        target = {
            "boxes": torch.from_numpy(np.ascontiguousarray(boxes, dtype=np.float32)),
            "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
            "image_id": torch.tensor(self.image_ids[index], dtype=torch.int64),
            "area": torch.from_numpy(np.ascontiguousarray(area, dtype=np.float32)),
            "iscrowd": torch.from_numpy(np.ascontiguousarray(iscrowd, dtype=np.int64)),
        }
        # Copy: the cached array must not be shared with (and modified by) a training step.
        return torch.from_numpy(np.array(image, dtype=np.float32, copy=True)), target


def detection_collate(
    batch: Sequence[tuple[torch.Tensor, dict[str, torch.Tensor]]],
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Collate ``(image, target)`` items into ``(list of images, list of targets)``.

    torchvision detectors take lists because images may differ in size and targets in box
    count; use as ``DataLoader(..., collate_fn=detection_collate)``.
    """
    images = [item[0] for item in batch]
    targets = [item[1] for item in batch]
    return images, targets


def split_ids(
    ids: Iterable[int],
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple[list[int], ...]:
    """Split ids into disjoint random parts (e.g. train/val/test), deterministically.

    The result depends only on the *set* of ids, the fractions and the seed (not on input
    order): ids are sorted, permuted with ``numpy.random.default_rng(seed)``, and cut at
    ``round(cumsum(fractions) * n)``. Each part is returned sorted.

    Parameters
    ----------
    ids : iterable of int
        Distinct image ids.
    fractions : sequence of float
        Positive fractions summing to 1 (within 1e-6), one per part.
    seed : int
        Random seed.

    Returns
    -------
    tuple of list of int
        One list per fraction; together they hold every id exactly once.

    Raises
    ------
    ConfigError
        Fractions not positive or not summing to 1.
    InputError
        Repeated ids.
    """
    fr = [float(f) for f in fractions]
    if not fr or any(not (f > 0 and math.isfinite(f)) for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be positive and sum to 1, got {list(fractions)}")
    id_list = list(ids)
    uniq = sorted(set(id_list))
    if len(uniq) != len(id_list):
        raise InputError(None, f"split_ids: {len(id_list) - len(uniq)} repeated id(s)")
    n = len(uniq)
    order = np.random.default_rng(seed).permutation(n)
    cuts = [0, *(round(float(c) * n) for c in np.cumsum(fr)[:-1]), n]
    return tuple(sorted(uniq[j] for j in order[a:b]) for a, b in itertools.pairwise(cuts))


def bin_planes(data: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor x factor`` pixel blocks of the last two axes (edge rows/columns that do
    not fill a block are dropped).

    Parameters
    ----------
    data : ndarray, shape (..., H, W)
    factor : int
        Block side; 1 returns ``data`` unchanged.

    Returns
    -------
    ndarray, shape (..., H // factor, W // factor), float32
    """
    f = int(factor)
    if f == 1:
        return data
    h, w = data.shape[-2] // f * f, data.shape[-1] // f * f
    x = np.asarray(data[..., :h, :w], dtype=np.float32)
    x = x.reshape(*x.shape[:-2], h // f, f, w // f, f)
    return x.mean(axis=(-3, -1))


def bin_detection_set(annotations: str | Path, out: str | Path, *, factor: int) -> Path:
    """Write a colour (PNG/JPEG) detection set binned ``factor x factor`` (:func:`bin_planes`).

    Galaxy Zoo 2 frames (424 px at 0.02 petroR90 per pixel) oversample the SDSS pixels
    (0.396") 3-7x for typical galaxies, so 2x2 binning keeps the whole frame the volunteers saw at
    a quarter of the CPU cost with little loss. The binned images are 8-bit PNG (rounded block
    means of the source pixels; the source JPEG blocks are averaged, not re-compressed); boxes are
    divided by ``factor``. Detection applies the same binning (checkpoint ``input["bin"]``,
    :class:`clumpdet.inference.predictor.Predictor`).

    Parameters
    ----------
    annotations : path
        COCO file of the colour set (images relative to its folder).
    out : path
        Output folder: ``out/images/*.png`` and ``out/annotations.json``.
    factor : int
        Block side in pixels (>= 1).

    Returns
    -------
    Path
        The new annotation file.
    """
    from PIL import Image

    from clumpdet.utils import atomic_write

    f = int(factor)
    if f < 1:
        raise ConfigError(f"bin factor must be >= 1, got {factor}")
    src = Path(annotations)
    doc = load_coco(src)
    root = Path(doc["_root"])
    outd = Path(out)
    (outd / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for im in doc["images"]:
        path = root / im["file_name"]
        if not _is_raster(path):
            raise InputError(path, "bin_detection_set takes PNG/JPEG images only")
        try:
            with Image.open(path) as pic:
                rgb = np.asarray(pic.convert("RGB"), dtype=np.float32)
        except OSError as exc:
            raise InputError(path, f"not a valid PNG/JPEG image ({exc})") from None
        small = bin_planes(rgb.transpose(2, 0, 1), f).transpose(1, 2, 0)
        name = f"images/{Path(im['file_name']).stem}.png"
        Image.fromarray(np.clip(np.rint(small), 0, 255).astype(np.uint8), mode="RGB").save(
            outd / name
        )
        rec = dict(im)
        rec.update(file_name=name, width=small.shape[1], height=small.shape[0], bin=f)
        if "pixel_scale" in rec:
            rec["pixel_scale"] = float(rec["pixel_scale"]) * f
        images.append(rec)
    anns = []
    for a in doc["annotations"]:
        new = dict(a)
        new["bbox"] = [float(v) / f for v in a["bbox"]]
        if "area" in new:
            new["area"] = float(new["area"]) / f**2
        anns.append(new)
    out_doc = {k: v for k, v in doc.items() if not k.startswith("_")}
    out_doc["images"], out_doc["annotations"] = images, anns
    out_doc["info"] = {**(out_doc.get("info") or {}), "bin": f, "binned_from": str(src)}
    target = outd / "annotations.json"
    with atomic_write(target, "w") as fh:
        json.dump(out_doc, fh)
    return target
