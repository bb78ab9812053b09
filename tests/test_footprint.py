"""The central-galaxy footprint rule for per-galaxy cutouts (clumps belong to the galaxy the
frame is centred on)."""

from __future__ import annotations

import numpy as np
import pytest

from clumpdet.detections import Detections
from clumpdet.inference.footprint import central_footprint, inside, keep_central

SIZE = 128


def _frame(seed: int = 0) -> np.ndarray:
    """(3, 128, 128): an exponential disk at the centre, a star in a corner, sky noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    r = np.hypot((xx - 64) / 1.0, (yy - 64) / 0.6)
    disk = 0.5 * np.exp(-r / 8.0)
    star = 0.8 * np.exp(-((xx - 110) ** 2 + (yy - 20) ** 2) / (2 * 1.5**2))
    img = 0.05 + disk + star + rng.normal(0, 0.01, (SIZE, SIZE))
    return np.repeat(img[None], 3, axis=0).astype(np.float32)


def _boxes(*centres: tuple[float, float], half: float = 5.0) -> Detections:
    b = np.array([[x - half, y - half, x + half, y + half] for x, y in centres], np.float32)
    n = len(centres)
    return Detections(b, np.ones(n, np.int64), np.linspace(0.9, 0.5, n).astype(np.float32))


def test_footprint_covers_the_central_galaxy_not_the_field_star():
    mask = central_footprint(_frame())
    assert mask.shape == (SIZE, SIZE)
    assert mask[64, 64] and mask[64, 84]  # centre and the disk out to ~2.5 scale lengths
    assert not mask[20, 110]  # the star in the corner is another segment
    assert not mask[5, 5]  # sky
    assert 0.02 < mask.mean() < 0.4


def test_keep_central_drops_boxes_off_the_galaxy_and_keeps_order():
    det = _boxes((64, 64), (110, 20), (76, 66), (10, 120))
    kept = keep_central(det, _frame())
    assert len(kept) == 2
    np.testing.assert_allclose(kept.scores, det.scores[[0, 2]])
    assert inside(Detections(), np.ones((4, 4), bool)).shape == (0,)


def test_off_centre_galaxy_uses_the_nearest_segment_and_flat_frames_keep_everything():
    frame = np.roll(_frame(), 30, axis=2)  # galaxy centre at x = 94: not under the frame centre
    frame[:, :, :30] = frame[:, :, 30:31].mean()
    mask = central_footprint(frame, grow=0)
    assert mask[64, 94]
    flat = np.full((3, 64, 64), 0.2, np.float32)
    assert central_footprint(flat).all()  # no noise, no segment: nothing to restrict to
    noise = np.random.default_rng(1).normal(0, 1, (3, 64, 64))
    assert central_footprint(noise, nsigma=50).all()


@pytest.mark.parametrize("shape", [(SIZE, SIZE), (1, SIZE, SIZE)])
def test_footprint_takes_one_plane_or_a_stack(shape):
    frame = _frame()[0].reshape(shape)
    assert central_footprint(frame)[64, 64]


def test_predictor_applies_the_checkpoints_central_host(tiny_model):
    from clumpdet.inference.predictor import Predictor

    on = Predictor.from_checkpoint(tiny_model, central_host=True)
    off = Predictor.from_checkpoint(tiny_model)
    assert on.central_host and not off.central_host  # the tiny model's config leaves it off
    on.bundle.model_config.min_score = off.bundle.model_config.min_score = 0.0
    rng = np.random.default_rng(3)
    h, w = on.tile
    nb = len(on.bands)
    img = rng.normal(0, 1, (nb, h, w)).astype(np.float32)
    yy, xx = np.mgrid[:h, :w]
    img += 40 * np.exp(-((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (2 * (w / 10) ** 2))
    d_off, d_on = off.predict([img])[0], on.predict([img])[0]
    assert len(d_on) <= len(d_off)
    fp = central_footprint(on.prepare(img))
    assert inside(d_on, fp).all()
    assert len(d_on) == int(inside(d_off, fp).sum())
