"""The shared zero point, magnitude conversions and robust noise estimator."""

from __future__ import annotations

import numpy as np

from clumpdet.noise import mad_sigma
from clumpdet.units import ZERO_POINT, flux_to_mag, mag_to_flux


def test_zero_point_round_trip() -> None:
    assert flux_to_mag(1.0) == ZERO_POINT
    mags = np.array([15.0, 20.0, 24.5])
    np.testing.assert_allclose(flux_to_mag(mag_to_flux(mags)), mags)
    assert np.isnan(flux_to_mag(np.array([0.0, -1.0]))).all()


def test_mad_sigma_matches_gaussian_and_ignores_bad_pixels() -> None:
    rng = np.random.default_rng(1)
    img = rng.normal(0.0, 2.0, size=(2, 200, 200))
    assert abs(mad_sigma(img) - 2.0) < 0.03
    img[0, :10] = np.nan
    img[1, :, :50] = 0.0
    per_band = mad_sigma(img, axis=(1, 2), ignore_zeros=True)
    assert per_band.shape == (2,)
    np.testing.assert_allclose(per_band, 2.0, atol=0.05)
    assert mad_sigma(np.zeros((5, 5)), ignore_zeros=True) == 0.0


def test_markdown_table() -> None:
    import pytest

    from clumpdet.utils import markdown_table

    text = markdown_table(["a", "b"], [[1, 0.12345], ["x", float("nan")]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.123 |", "| x | nan |"]
    with pytest.raises(ValueError, match="row 0"):
        markdown_table(["a"], [[1, 2]])
