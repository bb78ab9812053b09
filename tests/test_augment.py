"""Augmentation keeps boxes on the light, for any number of bands; boxes that leave are dropped."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest

from clumpdet.data import (
    apply_augmentation,
    bbox_params,
    build_augmentation,
    build_eval_augmentation,
)
from clumpdet.errors import ConfigError

H, W = 48, 64


def _blob_image(cx: float, cy: float, bands: int = 5, sigma: float = 1.5) -> np.ndarray:
    """A Gaussian blob centred at pixel coordinate (cx, cy) (pixel-corner convention)."""
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return np.stack([blob * (k + 1) for k in range(bands)]).astype(np.float32)


def _centroid(plane: np.ndarray) -> tuple[float, float]:
    yy, xx = np.mgrid[0 : plane.shape[0], 0 : plane.shape[1]] + 0.5
    total = plane.sum()
    return float((plane * xx).sum() / total), float((plane * yy).sum() / total)


@pytest.mark.parametrize("bands", [1, 5])
def test_boxes_follow_the_light(bands):
    cx, cy = 20.0, 14.0
    image = _blob_image(cx, cy, bands)
    box = np.array([[cx - 5, cy - 5, cx + 5, cy + 5]], np.float32)
    aug = build_augmentation(hflip=0.5, vflip=0.5, rot90=True, shift=0.15, scale=0.2, seed=3)
    shapes = set()
    for _ in range(60):
        out, boxes, labels = apply_augmentation(aug, image, box, np.array([2]))
        assert out.dtype == np.float32 and out.shape[0] == bands
        shapes.add(out.shape[1:])
        assert boxes.dtype == np.float32 and labels.dtype == np.int64
        assert boxes.shape == (1, 4) and labels.tolist() == [2]  # the blob never leaves
        x1, y1, x2, y2 = boxes[0]
        j, i = np.unravel_index(np.argmax(out[-1]), out.shape[1:])
        assert x1 <= i + 0.5 <= x2 and y1 <= j + 0.5 <= y2, "brightest pixel outside box"
        mx, my = _centroid(out[-1])
        assert abs(mx - (x1 + x2) / 2) < 0.5 and abs(my - (y1 + y2) / 2) < 0.5
        # Bands move together.
        np.testing.assert_allclose(out[0] * bands, out[-1], rtol=1e-5, atol=1e-6)
    assert shapes == {(H, W), (W, H)}  # rot90 of a non-square image swaps its axes


def test_box_pushed_out_is_dropped_and_partial_box_clipped():
    image = _blob_image(W - 6, 10, bands=4)
    boxes = np.array(
        [[W - 10, 5, W - 2, 15], [2, 20, 10, 28], [W - 25, 30, W - 15, 40]], np.float32
    )
    aug = A.Compose(
        [A.Affine(translate_px={"x": 20, "y": 0}, border_mode=cv2.BORDER_CONSTANT, fill=0, p=1)],
        bbox_params=bbox_params(min_visibility=0.3),
    )
    out, new_boxes, labels = apply_augmentation(aug, image, boxes, np.array([1, 2, 1]))
    assert labels.tolist() == [2, 1]  # the first box (and its light) left the image
    np.testing.assert_allclose(new_boxes, [[22, 20, 30, 28], [W - 5, 30, W, 40]], atol=1e-4)
    assert out.max() < 1e-3  # the blob went with its box

    # Random large shifts: boxes near the edge are sometimes dropped, never kept off-image.
    aug = build_augmentation(hflip=0, vflip=0, rot90=False, shift=0.45, seed=0)
    corner = np.array([[0, 0, 6, 6]], np.float32)
    image = _blob_image(3, 3, bands=2)
    dropped = 0
    for _ in range(40):
        out, b, lab = apply_augmentation(aug, image, corner, np.array([1]))
        if len(b) == 0:
            dropped += 1
            assert lab.shape == (0,) and b.shape == (0, 4)
            continue
        assert (b[:, [0, 1]] >= 0).all() and (b[:, 2] <= W).all() and (b[:, 3] <= H).all()
        assert out[0].sum() > 0
    assert 0 < dropped < 40


def test_empty_boxes_and_identity():
    image = _blob_image(30, 20, bands=3)
    aug = build_augmentation(seed=1)
    out, boxes, labels = apply_augmentation(aug, image, np.zeros((0, 4)), np.zeros(0))
    assert out.shape in {(3, H, W), (3, W, H)}
    assert boxes.shape == (0, 4) and boxes.dtype == np.float32
    assert labels.shape == (0,) and labels.dtype == np.int64

    box = np.array([[25.0, 15.0, 35.0, 25.0]])
    out, b, lab = apply_augmentation(build_eval_augmentation(), image, box, np.array([1]))
    np.testing.assert_array_equal(out, image)
    np.testing.assert_allclose(b, box)
    out, b, lab = apply_augmentation(None, image, box, [1])
    np.testing.assert_array_equal(out, image)
    np.testing.assert_allclose(b, box)
    assert lab.tolist() == [1]


def test_flips_exact_and_seeded_reproducible():
    image = _blob_image(10.0, 12.0, bands=2)
    box = np.array([[6.0, 8.0, 14.0, 16.0]])
    aug = build_augmentation(hflip=1.0, vflip=0.0, rot90=False)
    out, b, _ = apply_augmentation(aug, image, box, [1])
    np.testing.assert_array_equal(out, image[:, :, ::-1])
    np.testing.assert_allclose(b, [[W - 14.0, 8.0, W - 6.0, 16.0]])

    runs = []
    for _ in range(2):
        aug = build_augmentation(shift=0.1, scale=0.1, seed=42)
        runs.append([apply_augmentation(aug, image, box, [1])[1] for _ in range(5)])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs", [{"hflip": 1.5}, {"vflip": -0.1}, {"shift": 1.0}, {"scale": -0.2}]
)
def test_bad_parameters(kwargs):
    with pytest.raises(ConfigError, match="augmentation"):
        build_augmentation(**kwargs)
