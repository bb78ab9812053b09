"""Tests of the classical source finder / deblender (sep and photutils) on numpy-made fields."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.table import Row, Table
from helpers import spy_parallel_map
from scipy import signal

from clumpdet.baselines import sources
from clumpdet.baselines.sources import (
    SOURCE_COLUMNS,
    SourceFinderConfig,
    find_sources,
    psf_r50,
    run_source_baseline,
)
from clumpdet.data.coco import write_coco
from clumpdet.data.fits import write_image_fits
from clumpdet.errors import ClumpdetError, ConfigError, InputError, NoDetectionsWarning

BANDS = ("g", "r", "z")
SIGMA = {"g": 0.010, "r": 0.012, "z": 0.020}  # sky sigma per pixel, nanomaggies
SED = {"star": (0.8, 1.0, 1.1), "galaxy": (0.5, 1.0, 1.6)}  # flux ratio to r
FWHM = 3.5  # px
BETA = 3.5
OVERSAMPLE = 5
METHODS = ("sep", "photutils")


def moffat(shape: tuple[int, int], x: float, y: float, *, fwhm: float = FWHM) -> np.ndarray:
    """Unit-flux Moffat (beta 3.5) integrated over pixels, centred at corner-origin (x, y)."""
    h, w = shape
    alpha = fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / BETA) - 1.0))
    sub = (np.arange(OVERSAMPLE) + 0.5) / OVERSAMPLE
    yy = (np.arange(h)[:, None] + sub[None, :]).reshape(-1)
    xx = (np.arange(w)[:, None] + sub[None, :]).reshape(-1)
    r2 = (xx[None, :] - x) ** 2 + (yy[:, None] - y) ** 2
    prof = (1.0 + r2 / alpha**2) ** (-BETA) * (BETA - 1.0) / (math.pi * alpha**2)
    return prof.reshape(h, OVERSAMPLE, w, OVERSAMPLE).mean(axis=(1, 3))


def galaxy(
    shape: tuple[int, int], x: float, y: float, *, hlr: float, q: float = 0.6, pa: float = 0.5
) -> np.ndarray:
    """Unit-flux elliptical exponential disk (half-light radius ``hlr`` px) seen through the PSF."""
    h, w = shape
    sub = (np.arange(OVERSAMPLE) + 0.5) / OVERSAMPLE
    yy = (np.arange(h)[:, None] + sub[None, :]).reshape(-1)[:, None] - y
    xx = (np.arange(w)[:, None] + sub[None, :]).reshape(-1)[None, :] - x
    u = xx * math.cos(pa) + yy * math.sin(pa)
    v = (-xx * math.sin(pa) + yy * math.cos(pa)) / q
    disk = np.exp(-1.678 * np.hypot(u, v) / hlr)
    disk = disk.reshape(h, OVERSAMPLE, w, OVERSAMPLE).mean(axis=(1, 3))
    kern = moffat((25, 25), 12.5, 12.5)
    out = signal.fftconvolve(disk, kern / kern.sum(), mode="same")
    return out / out.sum()


def scene(
    objects: list[tuple[str, float, float, float]],
    *,
    shape: tuple[int, int] = (96, 96),
    seed: int = 0,
    hlr: float = 4.0,
) -> np.ndarray:
    """(3, H, W) float32 g, r, z image of ``(kind, x, y, r_flux)`` objects plus sky noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((len(BANDS), *shape))
    for kind, x, y, flux in objects:
        prof = moffat(shape, x, y) if kind == "star" else galaxy(shape, x, y, hlr=hlr)
        for b, ratio in enumerate(SED[kind]):
            img[b] += flux * ratio * prof
    for b, band in enumerate(BANDS):
        img[b] += rng.normal(0.0, SIGMA[band], shape)
    return img.astype(np.float32)


def nearest(df: Table, x: float, y: float) -> tuple[float, Row]:
    d = np.hypot(np.asarray(df["x"]) - x, np.asarray(df["y"]) - y)
    k = int(np.argmin(d))
    return float(d[k]), df[k]


FIELD = [  # (kind, x, y, r-band flux in nanomaggies); optimal S/N ~ 110, 45, 25, 90
    ("star", 20.3, 24.6, 5.0),
    ("star", 70.5, 20.2, 2.0),
    ("star", 24.8, 72.1, 1.2),
    ("galaxy", 66.2, 68.7, 8.0),
]


@pytest.fixture(scope="module")
def field() -> np.ndarray:
    return scene(FIELD)


@pytest.mark.parametrize("method", METHODS)
def test_isolated_sources_found_and_classified(field: np.ndarray, method: str) -> None:
    df = find_sources(
        field,
        noise_sigma=SIGMA,
        psf_fwhm_px=FWHM,
        bands=BANDS,
        config=SourceFinderConfig(method=method),
    )
    assert isinstance(df, Table) and df.colnames == list(SOURCE_COLUMNS)
    units = {"x": "pix", "y": "pix", "x1": "pix", "r50": "pix", "npix": "pix2"}
    units.update({"mag": "mag", "flux": "nmgy", "label": None, "score": None})
    for name, unit in units.items():
        assert df[name].unit == unit, name
    assert len(df) == len(FIELD), df
    assert np.all(np.diff(np.asarray(df["score"])) <= 0), "sorted by decreasing score"
    for kind, x, y, flux in FIELD:
        d, row = nearest(df, x, y)
        assert d < 1.0, f"{method}: {kind} at ({x}, {y}) found {d:.2f} px away"
        assert row["label"] == (1 if kind == "star" else 2), f"{method}: {kind} -> {row['label']}"
        assert row["x1"] <= x <= row["x2"] and row["y1"] <= y <= row["y2"]
        assert row["score"] > 10
        # Kron (AUTO) magnitude: ~5% of a Moffat star falls outside; S/N 15 adds ~0.1 mag noise
        true_mag = 22.5 - 2.5 * math.log10(flux)
        assert abs(row["mag"] - true_mag) < 0.3, (kind, row["mag"], true_mag)
    assert df["x1"].dtype == np.float64 and df["label"].dtype == np.int64


@pytest.mark.parametrize("method", METHODS)
def test_deblends_two_stars_three_fwhm_apart(method: str) -> None:
    sep_px = 3.0 * FWHM
    pair = [("star", 48.0 - sep_px / 2, 47.3, 5.0), ("star", 48.0 + sep_px / 2, 48.1, 3.0)]
    img = scene(pair, seed=3)
    df = find_sources(
        img,
        noise_sigma=SIGMA,
        psf_fwhm_px=FWHM,
        bands=BANDS,
        config=SourceFinderConfig(method=method),
    )
    assert len(df) == 2, df
    for _, x, y, _ in pair:
        d, row = nearest(df, x, y)
        assert d < 1.0, f"{method}: star at ({x}, {y}) found {d:.2f} px away"
        assert row["label"] == 1
    # the deblended segments do not overlap: boxes meet between the stars
    df.sort("x")
    left, right = df[0], df[1]
    assert left["x2"] <= right["x1"] + 1


@pytest.mark.parametrize("method", METHODS)
def test_pure_noise_and_blank_images_give_empty_tables(method: str) -> None:
    cfg = SourceFinderConfig(method=method)
    noise = scene([], shape=(128, 128), seed=5)
    df = find_sources(noise, noise_sigma=SIGMA, psf_fwhm_px=FWHM, bands=BANDS, config=cfg)
    assert len(df) == 0 and df.colnames == list(SOURCE_COLUMNS)
    # noise estimated from the image (MAD) gives the same answer
    df = find_sources(noise, noise_sigma=None, psf_fwhm_px=FWHM, bands=BANDS, config=cfg)
    assert len(df) == 0
    blank = np.zeros((3, 64, 64), np.float32)
    df = find_sources(blank, noise_sigma=None, psf_fwhm_px=FWHM, bands=BANDS, config=cfg)
    assert len(df) == 0 and df["label"].dtype == np.int64


@pytest.mark.parametrize("method", METHODS)
def test_nan_pixels_are_masked(field: np.ndarray, method: str) -> None:
    img = field.copy()
    img[0, 40:56, 5:45] = np.nan  # a g-band bad strip clear of the objects
    img[1, 90:, :] = np.inf
    img[2, 10, 80] = -np.inf
    df = find_sources(
        img,
        noise_sigma=None,
        psf_fwhm_px=FWHM,
        bands=BANDS,
        config=SourceFinderConfig(method=method),
    )
    assert len(df) == len(FIELD)
    cols = ("x", "y", "x1", "y1", "x2", "y2", "score", "mag")
    assert all(np.isfinite(np.asarray(df[c])).all() for c in cols)
    for _, x, y, _ in FIELD:
        assert nearest(df, x, y)[0] < 1.0
    with pytest.raises(InputError, match="no pixel that is finite"):
        find_sources(
            np.full((2, 16, 16), np.nan),
            noise_sigma=[0.1, 0.1],
            psf_fwhm_px=FWHM,
            bands=("g", "r"),
        )


@pytest.mark.parametrize("method", METHODS)
def test_single_band_2d_image(field: np.ndarray, method: str) -> None:
    r = field[1]
    df = find_sources(
        r,
        noise_sigma=SIGMA["r"],
        psf_fwhm_px=FWHM,
        bands=None,
        config=SourceFinderConfig(method=method),
    )
    assert len(df) == len(FIELD)
    _, x, y, flux = FIELD[0]
    d, row = nearest(df, x, y)
    assert d < 1.0 and abs(row["mag"] - (22.5 - 2.5 * math.log10(flux))) < 0.3


def test_background_mode_handles_sky_level() -> None:
    img = scene(FIELD, shape=(128, 128), seed=7)
    yy, xx = np.mgrid[0:128, 0:128]
    img = img + (0.5 + 0.0004 * xx + 0.0002 * yy).astype(np.float32)  # sky + gradient
    cfg = SourceFinderConfig(background="sep", background_mesh=32)
    df = find_sources(img, noise_sigma=None, psf_fwhm_px=FWHM, bands=BANDS, config=cfg)
    assert len(df) == len(FIELD)
    for _, x, y, _ in FIELD:
        assert nearest(df, x, y)[0] < 1.0


def test_psf_r50_calibration() -> None:
    """r50 of a pixelised PSF, and of noisy PSF-only stars relative to it."""
    moffat_ratio = psf_r50(FWHM) / FWHM
    gauss_ratio = psf_r50(FWHM, profile="gaussian") / FWHM
    assert 0.60 < moffat_ratio < 0.65, moffat_ratio  # analytic, unpixelised: 0.604
    assert 0.50 < gauss_ratio < 0.54, gauss_ratio  # analytic, unpixelised: 0.5
    grid = np.arange(12.0, 120.0, 16.0)
    stars = [("star", x + 0.3, y + 0.1, 20.0) for x in grid for y in grid]  # S/N ~ 450
    df = find_sources(
        scene(stars, shape=(128, 128), seed=11),
        noise_sigma=SIGMA,
        psf_fwhm_px=FWHM,
        bands=BANDS,
    )
    assert len(df) == len(stars)
    ratio = np.asarray(df["r50"]) / psf_r50(FWHM)
    assert abs(np.median(ratio) - 1.0) < 0.03, np.median(ratio)
    assert (df["label"] == 1).all()


def test_config_and_input_errors(field: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="method"):
        SourceFinderConfig(method="sextractor")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="thresh"):
        SourceFinderConfig(thresh=0.0)
    with pytest.raises(ConfigError, match="thresh_units"):
        SourceFinderConfig(thresh_units="sigma")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="noise_sigma has no value"):
        find_sources(field, noise_sigma={"g": 0.1}, psf_fwhm_px=FWHM, bands=BANDS)
    with pytest.raises(InputError, match="reference band 'r'"):
        find_sources(field, noise_sigma=None, psf_fwhm_px=FWHM, bands=("u", "v", "w"))
    with pytest.raises(InputError, match="3 band name"):
        find_sources(field[:2], noise_sigma=None, psf_fwhm_px=FWHM, bands=BANDS)
    with pytest.raises(InputError, match="psf_fwhm_px"):
        find_sources(field, noise_sigma=SIGMA, psf_fwhm_px=-1.0, bands=BANDS)


def test_sep_overflow_becomes_clumpdet_error(field: np.ndarray, monkeypatch) -> None:
    def overflow(*args, **kwargs):
        raise Exception("internal pixel buffer full: The limit of 300000 active object pixels")

    monkeypatch.setattr(sources.sep, "extract", overflow)
    with pytest.raises(ClumpdetError, match="background-subtracted"):
        find_sources(field, noise_sigma=SIGMA, psf_fwhm_px=FWHM, bands=BANDS)


def _write_set(root) -> tuple:
    images, truths = [], []
    (root / "images").mkdir()
    for iid, seed in ((3, 21), (8, 22)):
        objs = FIELD if iid == 3 else FIELD[:2]
        name = f"images/{iid:06d}.fits"
        write_image_fits(root / name, scene(objs, seed=seed), bands=BANDS, pixel_scale=0.262)
        images.append(
            {
                "id": iid,
                "file_name": name,
                "width": 96,
                "height": 96,
                "bands": list(BANDS),
                "pixel_scale": 0.262,
                "psf_fwhm": FWHM * 0.262,
                "psf_fwhm_px": FWHM,
                "noise_sigma": SIGMA,
            }
        )
        truths.append(objs)
    cats = [{"id": 1, "name": "star"}, {"id": 2, "name": "galaxy"}]
    path = write_coco(root / "annotations.json", images=images, annotations=[], categories=cats)
    return path, truths


@pytest.mark.parametrize("method", METHODS)
def test_run_source_baseline_on_a_coco_set(tmp_path, method: str) -> None:
    path, truths = _write_set(tmp_path)
    pred = run_source_baseline(path, method=method, workers=1, progress=False, calibration="truth")
    assert isinstance(pred, Table) and pred.colnames == ["image_id", *SOURCE_COLUMNS]
    assert pred["image_id"].dtype == np.int64 and pred["x"].unit == "pix"
    for iid, objs in zip((3, 8), truths):
        sub = pred[pred["image_id"] == iid]
        assert len(sub) == len(objs)
        for _, x, y, _ in objs:
            assert nearest(sub, x, y)[0] < 1.0


def test_run_source_baseline_errors_and_empty(tmp_path) -> None:
    (tmp_path / "images").mkdir()
    write_image_fits(
        tmp_path / "images/0.fits", scene([], shape=(64, 64)), bands=BANDS, pixel_scale=0.262
    )
    rec = {"id": 0, "file_name": "images/0.fits", "width": 64, "height": 64, "bands": list(BANDS)}
    cats = [{"id": 1, "name": "star"}, {"id": 2, "name": "galaxy"}]
    bad = write_coco(tmp_path / "bad.json", images=[rec], annotations=[], categories=cats)
    with pytest.raises(InputError, match="psf_fwhm_px"):
        run_source_baseline(bad, method="sep", progress=False, calibration="truth")
    with pytest.raises(InputError, match="cannot measure the PSF"):  # no stars in the image
        run_source_baseline(bad, method="sep", progress=False)
    good = write_coco(
        tmp_path / "good.json",
        images=[{**rec, "psf_fwhm_px": FWHM}],  # noise estimated from the image
        annotations=[],
        categories=cats,
    )
    with pytest.warns(NoDetectionsWarning):
        pred = run_source_baseline(good, method="sep", progress=False, calibration="truth")
    assert len(pred) == 0 and pred.colnames == ["image_id", *SOURCE_COLUMNS]
    with pytest.raises(ConfigError, match="workers"):
        run_source_baseline(good, method="sep", workers=0, progress=False)


def test_run_source_baseline_uses_the_spawn_pool(tmp_path, monkeypatch) -> None:
    calls = spy_parallel_map(monkeypatch)
    path, _ = _write_set(tmp_path)
    kw = {"method": "sep", "progress": False, "calibration": "truth"}
    serial = run_source_baseline(path, workers=1, **kw)
    par = run_source_baseline(path, workers=2, **kw)
    assert calls == [1, 2]
    assert all(np.array_equal(serial[c], par[c], equal_nan=True) for c in serial.colnames)
    assert not hasattr(sources, "ProcessPoolExecutor")


def _star_field(fwhm: float, *, seed: int, n_stars: int = 14, n_gal: int = 8) -> np.ndarray:
    """(3, 160, 160) field of Moffat stars and resolved galaxies with PSF ``fwhm`` px."""
    import galsim

    rng = np.random.default_rng(seed)
    img = galsim.ImageF(160, 160, scale=1.0)
    psf = galsim.Moffat(beta=BETA, fwhm=fwhm)
    for k in range(n_stars + n_gal):
        x, y = rng.uniform(15, 145, 2)
        obj = (
            psf
            if k < n_stars
            else galsim.Convolve(galsim.Exponential(half_light_radius=rng.uniform(2.0, 4.0)), psf)
        )
        obj.withFlux(rng.uniform(3.0, 20.0)).drawImage(
            img, center=galsim.PositionD(x, y), add_to_image=True
        )
    r = img.array.astype(np.float32)
    return np.stack([r * f + rng.normal(0, SIGMA[b], r.shape) for f, b in zip(SED["star"], BANDS)])


@pytest.mark.parametrize("fwhm", [1.9, 3.5, 5.0])
def test_psf_fwhm_is_measured_from_the_image(fwhm: float) -> None:
    from clumpdet.baselines.common import estimate_psf_fwhm

    field = _star_field(fwhm, seed=int(fwhm * 10))
    est = estimate_psf_fwhm(field, profile="moffat", moffat_beta=BETA)
    assert est == pytest.approx(fwhm, rel=0.05)
    with pytest.raises(InputError, match="cannot measure the PSF"):
        estimate_psf_fwhm(np.random.default_rng(0).normal(0, 0.01, (3, 64, 64)))


def test_run_source_baseline_calibrates_from_the_image_not_the_truth(tmp_path) -> None:
    """The records carry a wrong PSF and noise: image calibration must not read them."""
    (tmp_path / "images").mkdir()
    write_image_fits(
        tmp_path / "images/0.fits", _star_field(3.5, seed=5), bands=BANDS, pixel_scale=0.262
    )
    rec = {
        "id": 0, "file_name": "images/0.fits", "width": 160, "height": 160,
        "bands": list(BANDS), "psf_fwhm_px": 9.0, "noise_sigma": {b: 1.0 for b in BANDS},
    }  # fmt: skip
    cats = [{"id": 1, "name": "star"}, {"id": 2, "name": "galaxy"}]
    path = write_coco(tmp_path / "a.json", images=[rec], annotations=[], categories=cats)
    img = run_source_baseline(path, method="sep", progress=False)
    with pytest.warns(NoDetectionsWarning):  # a 100x noise: nothing passes the threshold
        wrong = run_source_baseline(path, method="sep", progress=False, calibration="truth")
    assert len(wrong) == 0 and len(img) >= 18
    assert np.count_nonzero(img["label"] == 1) >= 10  # stars recognised with the measured PSF
