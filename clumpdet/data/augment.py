"""Geometric augmentation (albumentations) that moves boxes with the pixels.

Pipelines work on float32 images with any number of bands (albumentations processes
channels beyond OpenCV's limit of 4 in chunks) and on boxes in ``pascal_voc`` format, which is
our xyxy pixel-corner convention (docs/conventions.md). Boxes are clipped to the image after
each transform and dropped when less than ``min_visibility`` of their (clipped) area remains.
Photometric transforms are deliberately absent: they would change the physical units.

Popp et al. (2024) trained with horizontal and vertical flips only:
``build_augmentation(rot90=False)`` reproduces that.
"""

from __future__ import annotations

import warnings

import albumentations as A
import cv2
import numpy as np

from clumpdet.errors import ConfigError


def bbox_params(min_visibility: float = 0.3) -> A.BboxParams:
    """Box handling shared by every clumpdet pipeline (for custom ``A.Compose`` pipelines too).

    ``pascal_voc`` (xyxy pixels), labels passed as ``labels=``, boxes clipped to the image,
    dropped when less than ``min_visibility`` of their area remains, degenerate boxes removed.
    """
    return A.BboxParams(
        format="pascal_voc",
        label_fields=["labels"],
        min_visibility=min_visibility,
        clip=True,
        filter_invalid_bboxes=True,
    )


def build_augmentation(
    *,
    hflip: float = 0.5,
    vflip: float = 0.5,
    rot90: bool = True,
    shift: float = 0.0,
    scale: float = 0.0,
    min_visibility: float = 0.3,
    seed: int | None = None,
) -> A.Compose:
    """Build a training augmentation pipeline.

    Parameters
    ----------
    hflip, vflip : float
        Probabilities of a horizontal / vertical flip (0-1).
    rot90 : bool
        Rotate by a random multiple of 90 degrees (0, 90, 180, 270 equally likely).
    shift : float
        Maximum translation as a fraction of the image size (0 disables), applied with
        ``scale`` in one ``A.Affine`` whose empty border is filled with 0.
    scale : float
        Maximum relative zoom: the factor is drawn from ``[1 - scale, 1 + scale]`` (0 disables).
    min_visibility : float
        A box is dropped when less than this fraction of its area remains inside the image.
    seed : int, optional
        Seed of the pipeline's random generator (reproducible draws); None draws fresh.

    Returns
    -------
    albumentations.Compose
        Call it through :func:`apply_augmentation`.

    Raises
    ------
    ConfigError
        A probability outside [0, 1] or a negative/too-large ``shift``/``scale``.
    """
    for name, p in (("hflip", hflip), ("vflip", vflip), ("min_visibility", min_visibility)):
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"augmentation: {name} must be in [0, 1], got {p}")
    if not 0.0 <= shift < 1.0 or not 0.0 <= scale < 1.0:
        raise ConfigError(
            f"augmentation: need 0 <= shift < 1 and 0 <= scale < 1, got {shift}, {scale}"
        )
    transforms: list[A.BasicTransform] = []
    if hflip > 0:
        transforms.append(A.HorizontalFlip(p=hflip))
    if vflip > 0:
        transforms.append(A.VerticalFlip(p=vflip))
    if rot90:
        transforms.append(A.RandomRotate90(p=1.0))
    if shift > 0 or scale > 0:
        transforms.append(
            A.Affine(
                translate_percent=(-shift, shift),
                scale=(1.0 - scale, 1.0 + scale),
                rotate=0.0,
                interpolation=cv2.INTER_LINEAR,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0.0,
                p=1.0,
            )
        )
    with warnings.catch_warnings():  # an empty (identity) pipeline is intended, not a mistake
        warnings.filterwarnings("ignore", message="Got processor for bboxes, but no transform")
        return A.Compose(transforms, bbox_params=bbox_params(min_visibility), seed=seed)


def build_eval_augmentation() -> A.Compose:
    """The identity pipeline (evaluation / inference), with the same box handling."""
    return build_augmentation(hflip=0.0, vflip=0.0, rot90=False, shift=0.0, scale=0.0)


def apply_augmentation(
    aug: A.Compose | None,
    image_chw: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Augment one image and its boxes.

    Parameters
    ----------
    aug : albumentations.Compose or None
        From :func:`build_augmentation`; None returns the inputs (as the output dtypes).
    image_chw : ndarray, shape (C, H, W)
        Image, any number of bands.
    boxes : ndarray, shape (N, 4)
        xyxy pixel boxes; ``N`` may be 0 (shape ``(0, 4)``).
    labels : ndarray, shape (N,)
        Integer labels, one per box (any integers: pass indices to carry other per-box
        fields along and look them up afterwards).

    Returns
    -------
    image : ndarray, float32, shape (C, H', W')
        ``H'``/``W'`` swap under a 90-degree rotation of a non-square image.
    boxes : ndarray, float32, shape (M, 4)
        Transformed boxes, clipped to the image; ``M <= N`` after dropping.
    labels : ndarray, int64, shape (M,)
        Labels of the surviving boxes.
    """
    image = np.asarray(image_chw, dtype=np.float32)
    if image.ndim != 3:
        raise ValueError(f"apply_augmentation expects a (C, H, W) image, got shape {image.shape}")
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(boxes) != len(labels):
        raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
    if aug is None:
        return np.ascontiguousarray(image), boxes, labels
    out = aug(image=np.ascontiguousarray(image.transpose(1, 2, 0)), bboxes=boxes, labels=labels)
    img = np.asarray(out["image"], dtype=np.float32)
    if img.ndim == 2:  # a single band may come back without its channel axis
        img = img[:, :, None]
    new_boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
    new_labels = np.asarray(out["labels"], dtype=np.int64).reshape(-1)
    return np.ascontiguousarray(img.transpose(2, 0, 1)), new_boxes, new_labels
