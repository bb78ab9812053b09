"""Stretches (registry, monotonicity, ranges, NaN/constant safety) and Preprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.visualization import AsymmetricPercentileInterval, LogStretch, ZScaleInterval

from clumpdet.data import (
    ImageData,
    Preprocessing,
    apply_stretch,
    list_stretches,
    read_image,
    write_image_fits,
)
from clumpdet.errors import ConfigError, InputError, RegistryError

NAMES = ("asinh", "linear", "log", "none", "zscale")
UNIT_RANGE = ("linear", "log", "zscale")


def _galaxy(seed: int = 0, shape=(3, 40, 48)) -> np.ndarray:
    """Noise plus a bright exponential blob, different amplitude per band."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-np.hypot(xx - w / 2, yy - h / 2) / 4.0)
    amps = np.arange(1, c + 1)[:, None, None] * 50.0
    return (amps * blob + rng.normal(0, 1.0, size=shape)).astype(np.float32)


def test_registry_lists_all():
    assert set(NAMES) <= set(list_stretches())
    with pytest.raises(RegistryError, match="unknown stretch 'nope'; registered: asinh"):
        apply_stretch(np.zeros((1, 2, 2)), "nope")
    with pytest.raises(ConfigError, match=r"stretch 'linear' has no parameter.*softening"):
        apply_stretch(np.zeros((1, 2, 2)), "linear", softening=1.0)
    with pytest.raises(ConfigError, match="percentiles"):
        apply_stretch(np.zeros((1, 2, 2)), "linear", lower=50, upper=10)


@pytest.mark.parametrize("name", NAMES)
def test_monotonic_dtype_shape_range(name):
    img = _galaxy()
    out = apply_stretch(img, name)
    assert out.shape == img.shape and out.dtype == np.float32 and np.isfinite(out).all()
    for c in range(img.shape[0]):
        order = np.argsort(img[c].ravel(), kind="stable")
        assert np.all(np.diff(out[c].ravel()[order]) >= -1e-6), f"band {c} not monotonic"
        assert out[c].max() > out[c].min()
    if name in UNIT_RANGE:
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert out.max() == pytest.approx(1.0) and out.min() == pytest.approx(0.0)
    # 2-D input gives 2-D output; results are deterministic.
    assert apply_stretch(img[0], name).shape == img.shape[1:]
    np.testing.assert_array_equal(apply_stretch(img, name), out)


@pytest.mark.parametrize("name", NAMES)
def test_nan_safe(name):
    img = _galaxy(1)
    img[0, 3, 4] = np.nan
    img[1, 5, 6] = np.inf
    out = apply_stretch(img, name)
    assert np.isfinite(out).all()
    assert out[0, 3, 4] == 0.0 and out[1, 5, 6] == 0.0
    # Bad pixels do not influence the band that has none.
    np.testing.assert_array_equal(out[2], apply_stretch(img[2:], name)[0])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [0.0, 7.5])
def test_constant_image_no_division_by_zero(name, value):
    img = np.full((2, 10, 12), value, np.float32)
    with np.errstate(all="raise"):
        out = apply_stretch(img, name)
    assert np.isfinite(out).all() and np.ptp(out) == 0.0


def test_linear_percentiles_and_log_match_astropy():
    img = _galaxy(2)
    lin = apply_stretch(img, "linear", lower=1.0, upper=99.0)
    log = apply_stretch(img, "log", lower=0.5, upper=99.5, a=500.0)
    for c in range(img.shape[0]):
        lo, hi = np.percentile(img[c], [1.0, 99.0])
        expected = np.clip((img[c] - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(lin[c], expected, atol=1e-6)
        interval = AsymmetricPercentileInterval(0.5, 99.5)
        ref = LogStretch(a=500.0)(interval(img[c].astype(np.float64), clip=True))
        np.testing.assert_allclose(log[c], ref, atol=1e-6)


def test_zscale_matches_astropy():
    img = _galaxy(3)
    out = apply_stretch(img, "zscale", contrast=0.2)
    for c in range(img.shape[0]):
        vmin, vmax = ZScaleInterval(contrast=0.2).get_limits(img[c])
        expected = np.clip((img[c].astype(np.float64) - vmin) / (vmax - vmin), 0, 1)
        np.testing.assert_allclose(out[c], expected, atol=1e-6)


def test_asinh_softening():
    img = _galaxy(4)
    fixed = apply_stretch(img, "asinh", softening=2.5)
    np.testing.assert_allclose(fixed, np.arcsinh(img.astype(np.float64) / 2.5), rtol=1e-6)
    # Noise-scaled softening: the result does not depend on the flux units.
    a = apply_stretch(img, "asinh", noise_factor=2.0)
    b = apply_stretch(img * 1000.0, "asinh", noise_factor=2.0)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # ... and pure noise of sigma s maps to a spread of about 1 / noise_factor.
    noise = np.random.default_rng(5).normal(0, 3.0, size=(1, 200, 200))
    out = apply_stretch(noise, "asinh", noise_factor=4.0)
    assert out.std() == pytest.approx(0.25, rel=0.05)
    with pytest.raises(ConfigError, match="softening > 0"):
        apply_stretch(img, "asinh", softening=0.0)


# --------------------------------------------------------------------------- Preprocessing


def test_preprocessing_defaults_and_json_round_trip():
    default = Preprocessing()
    assert default.bands == ("g", "r", "i") and default.stretch == "asinh"
    assert default.mean == (0.0, 0.0, 0.0) and default.std == (1.0, 1.0, 1.0)

    prep = Preprocessing(
        bands=("r", "i"),
        stretch="asinh",
        stretch_params={"noise_factor": 2.5, "subtract_median": True},
        mean=(0.1 + 0.2, 1 / 3),
        std=(np.pi, 2.0**-30),
    )
    doc = json.loads(json.dumps(prep.to_dict()))
    back = Preprocessing.from_dict(doc)
    assert back == prep and back.mean == prep.mean and back.std == prep.std
    assert isinstance(back.bands, tuple) and back.to_dict() == prep.to_dict()

    with pytest.raises(ConfigError, match="unknown key"):
        Preprocessing.from_dict({**doc, "colour": "blue"})
    with pytest.raises(ConfigError, match=r"2 bands .* but 1 mean"):
        Preprocessing.from_dict({**doc, "mean": [0.0]})
    with pytest.raises(ConfigError, match="no parameter"):
        Preprocessing(stretch="linear", stretch_params={"softening": 1.0})
    with pytest.raises(ConfigError, match="std finite and > 0"):
        Preprocessing(bands=("r",), std=(0.0,))


def test_preprocessing_call_selects_bands(tmp_path):
    data = _galaxy(6)
    path = write_image_fits(tmp_path / "c.fits", data, bands=("i", "r", "g"))
    prep = Preprocessing(stretch="none", mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0))
    out = prep(read_image(path))
    assert out.dtype == np.float32 and out.shape == data.shape
    expected = (data[::-1] - np.array([1.0, 2.0, 3.0])[:, None, None]) / np.array([2.0, 4.0, 8.0])[
        :, None, None
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-6)

    with pytest.raises(InputError, match=r"expected 3 bands \(g, r, i\), found 2"):
        prep(data[:2])
    two = ImageData(data=data[:2], bands=("g", "r"), path=tmp_path / "two.fits")
    with pytest.raises(InputError, match=r"two\.fits: expected 3 bands \(g, r, i\), found 2"):
        prep(two)


def test_fit_normalisation(tmp_path):
    images = [_galaxy(s) for s in range(4)]
    path = write_image_fits(tmp_path / "x.fits", images[0], bands=("g", "r", "i"))
    prep = Preprocessing(stretch="asinh", stretch_params={"softening": 1.0})
    fitted = prep.fit_normalisation([*images[1:], path])
    assert fitted.stretch_params == {"softening": 1.0} and fitted.bands == prep.bands
    stacked = np.stack([fitted(im) for im in images])
    np.testing.assert_allclose(stacked.mean(axis=(0, 2, 3)), 0.0, atol=1e-4)
    np.testing.assert_allclose(stacked.std(axis=(0, 2, 3)), 1.0, rtol=1e-4)
    const = Preprocessing(bands=("r",), stretch="none").fit_normalisation([np.ones((1, 4, 4))])
    assert const.mean == (1.0,) and const.std == (1.0,)
    with pytest.raises(InputError, match="no images"):
        prep.fit_normalisation([])
