"""The central-galaxy footprint rule for per-galaxy cutouts (clumps belong to the galaxy the
frame is centred on)."""

from __future__ import annotations

import numpy as np
import pytest

from clumpdet.detections import Detections
from clumpdet.errors import InputError
from clumpdet.inference.footprint import (
    central_footprint,
    central_nucleus,
    inside,
    keep_central,
    on_nucleus,
)

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


def test_nucleus_rule_drops_the_bulge_box_and_keeps_clumps_beside_it():
    frame = _frame()
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    frame += 0.6 * np.exp(-((xx - 66) ** 2 + (yy - 63) ** 2) / (2 * 2.0**2))  # off-centre bulge
    x, y = central_nucleus(frame)
    assert abs(x + 0.5 - 66) < 1.0 and abs(y + 0.5 - 63) < 1.0  # 0-based pixel centre
    # box centres: on the bulge, one FWHM (~4.7 px) beside it, out in the disk, the corner star
    det = _boxes((66.5, 63.0), (71.0, 63.0), (80, 66), (110, 20), half=8.0)
    np.testing.assert_array_equal(on_nucleus(det, (x, y), 0.15), [True, False, False, False])
    kept = keep_central(det, frame, nucleus_exclusion=0.15)
    np.testing.assert_allclose(kept.scores, det.scores[[1, 2]])
    assert len(keep_central(det, frame)) == 3  # off by default: only the footprint rule
    assert central_nucleus(np.full((3, 32, 32), 0.2)) is None  # flat: no galaxy
    assert not on_nucleus(det, None, 0.15).any()


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
    nuc = Predictor.from_checkpoint(tiny_model, central_host=True, nucleus_exclusion=0.5)
    nuc.bundle.model_config.min_score = 0.0
    d_nuc = nuc.predict([img])[0]
    assert len(d_nuc) == int(
        (inside(d_off, fp) & ~on_nucleus(d_off, central_nucleus(nuc.prepare(img)), 0.5)).sum()
    )
    with pytest.raises(InputError, match="nucleus_exclusion"):
        Predictor.from_checkpoint(tiny_model, nucleus_exclusion=1.5)
