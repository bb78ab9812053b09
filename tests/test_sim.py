"""Tests of the GalSim clump simulator (clumpdet.sim)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from clumpdet.config import read_yaml
from clumpdet.errors import ConfigError, InputError
from clumpdet.sim import (
    ClumpSimConfig,
    image_seed,
    load_sim_config,
    simulate_clump_scene,
    simulate_clumps,
    validate_sim_config,
)
from clumpdet.sim.clumps.config import sim_config_fields

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sim"

# These tests pin the smooth host model (configs/sim/clumps_smooth.yaml, the default before
# issue 11); the realistic population and the colour rendering are tested in test_sim_hosts.py.
SMOOTH = CONFIGS / "clumps_smooth.yaml"

# Half-size frame with half-size hosts: the same geometry in pixels/2, ~4x faster to draw.
SMALL = {
    "image": {"width": 100, "height": 100},
    "host": {"hlr_median": 9.0, "hlr_min": 4.0, "hlr_max": 17.5},
    "population": {"model": "smooth"},
}


@pytest.fixture(scope="module")
def small_cfg() -> ClumpSimConfig:
    return load_sim_config(None, SMALL)


# ------------------------------------------------------------------------------------ config


def test_yaml_default_is_dataclass_default():
    assert load_sim_config(CONFIGS / "clumps_sdss.yaml") == ClumpSimConfig()
    assert load_sim_config() == ClumpSimConfig()
    # ... and the file spells out every knob rather than leaning on the dataclass defaults
    data = read_yaml(CONFIGS / "clumps_sdss.yaml")
    written = {f"{g}.{k}" for g, sect in data.items() for k in sect}
    assert written == set(sim_config_fields())


def test_shipped_variants_load_and_differ():
    hard = load_sim_config(CONFIGS / "clumps_hard.yaml")
    easy = load_sim_config(CONFIGS / "clumps_easy.yaml")
    base = ClumpSimConfig()
    assert hard.clumps.flux_ratio_max < base.clumps.flux_ratio_max
    assert hard.psf.fwhm_mean > base.psf.fwhm_mean
    assert easy.clumps.flux_ratio_min > base.clumps.flux_ratio_min
    assert easy.psf.fwhm_mean < base.psf.fwhm_mean
    # untouched keys come from the base file
    assert hard.host.hlr_median == base.host.hlr_median
    # the photometry benchmark's faint set: the smooth hosts with only the clump fluxes changed
    smooth = load_sim_config(CONFIGS / "clumps_smooth.yaml")
    faint = load_sim_config(CONFIGS / "clumps_smooth_faint.yaml")
    assert faint.population.model == smooth.population.model == "smooth"
    assert faint.clumps.flux_ratio_max <= smooth.clumps.flux_ratio_min
    assert dataclasses.replace(faint, clumps=smooth.clumps) == smooth


def test_unknown_key_is_rejected(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("_base_: " + str(CONFIGS / "clumps_sdss.yaml") + "\nclumps:\n  flux_ratio: 0.1\n")
    with pytest.raises(ConfigError, match="flux_ratio"):
        load_sim_config(p)
    with pytest.raises(ConfigError, match="nonsense"):
        load_sim_config(None, ["scene.nonsense=1"])


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("clumps.flux_ratio_min=0.5", "clumps.flux_ratio_min"),
        ("scene.empty_fraction=1.5", "scene.empty_fraction"),
        ("host.hlr_min=-2", "host.hlr_min"),
        ("box.min_side=50", "box.min_side"),
        ("image.bands=[g, z]", "image.bands"),
        ("psf.fwhm_min=3.0", "psf.fwhm_min"),
        ("scene.count_weights=[0, 0]", "scene.count_weights"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_sim_config(None, [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "noise.gain.i=-5",
            r"config: noise\.gain: values must be finite and > 0, got \{'i': -5\.0\}",
        ),
        ("psf.band_factor.g=0", r"config: psf\.band_factor: values must be finite and > 0"),
        ("psf.band_factor.r=1.1", r"config: psf\.band_factor: the r band is the reference"),
        ("host.offset_sd=-1", r"config: host\.offset_sd: must be >= 0, got -1\.0"),
        ("odd_clumps.star_fraction=2", r"config: odd_clumps\.star_fraction: must be in \[0, 1\]"),
    ],
)
def test_validator_rejects_bad_per_band_and_negative_values(override, message):
    with pytest.raises(ConfigError, match=message) as exc:
        load_sim_config(None, [override])
    assert "\n" not in str(exc.value)


def test_per_band_values_need_every_band_and_overrides_keep_the_others():
    cfg = load_sim_config(None, ["noise.gain.r=500"])
    assert cfg.noise.gain == {"g": 900.0, "r": 500.0, "i": 680.0}
    bad = dataclasses.replace(cfg, noise=dataclasses.replace(cfg.noise, sky_sb={"g": 22.0}))
    with pytest.raises(ConfigError, match=r"noise\.sky_sb: needs a value for every band"):
        validate_sim_config(bad)


def test_saved_config_round_trips(tmp_path):
    cfg = load_sim_config(None, ["scene.empty_fraction=1.0", "image.width=48", "image.height=40"])
    out = simulate_clumps(n=1, seed=3, out=tmp_path / "s", config=cfg, workers=1, progress=False)
    assert load_sim_config(out / "config.yaml") == cfg


# ------------------------------------------------------------------------------------ scenes


def test_same_seed_same_scene_and_different_seed_differs(small_cfg):
    a = simulate_clump_scene(config=small_cfg, seed=11)
    b = simulate_clump_scene(config=small_cfg, seed=11)
    c = simulate_clump_scene(config=small_cfg, seed=12)
    assert a.image.dtype == np.float32 and a.image.shape == (3, 100, 100)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.boxes, b.boxes)
    assert a.objects == b.objects
    assert not np.array_equal(a.image, c.image)
    # a SeedSequence is not consumed: passing the same object twice gives the same scene
    ss = image_seed(5, 2)
    d1 = simulate_clump_scene(config=small_cfg, seed=ss)
    d2 = simulate_clump_scene(config=small_cfg, seed=ss)
    np.testing.assert_array_equal(d1.image, d2.image)


def _scenes_with_objects(cfg, n, start=0):
    out, s = [], start
    while len(out) < n:
        sc = simulate_clump_scene(config=cfg, seed=s, return_components=True)
        if not sc.is_empty:
            out.append(sc)
        s += 1
    return out


@pytest.fixture(scope="module")
def full_scenes():
    """Smooth-model scenes (200 px) with objects and noiseless components."""
    return _scenes_with_objects(load_sim_config(SMOOTH), 8)


def test_boxes_hold_their_objects_light(full_scenes):
    # The smallest boxes are k * exp(-3.5 sigma) = 3.4 * exp(-3.5 * 0.12) = 2.2 FWHM_eff wide;
    # a square of 1.5 FWHM already holds 71% of a Moffat(3.5) PSF, so every clump box must hold
    # >= 70% of the clump's own light (a conservative floor), and a typical box (3.4 FWHM) ~97%.
    fractions = []
    for sc in full_scenes:
        h, w = sc.image.shape[1:]
        yy, xx = np.mgrid[0:h, 0:w] + 0.5  # pixel centres (docs/conventions.md)
        r = sc.bands.index("r")
        assert sc.components.shape == (len(sc.objects), 3, h, w)
        for k, obj in enumerate(sc.objects):
            x1, y1, x2, y2 = sc.boxes[k]
            comp = sc.components[k, r].astype(np.float64)
            inside = (xx >= x1) & (xx <= x2) & (yy >= y1) & (yy <= y2)
            frac = comp[inside].sum() / comp.sum()
            if obj.kind == "clump":
                fractions.append(frac)
                assert frac >= 0.70, (obj, frac)
            clipped = x1 <= 0 or y1 <= 0 or x2 >= w or y2 >= h
            near_edge = min(obj.x, obj.y, w - obj.x, h - obj.y) < 5 * obj.fwhm_eff
            if not clipped and not near_edge:
                cx = (comp * xx).sum() / comp.sum()
                cy = (comp * yy).sum() / comp.sum()
                assert abs(cx - (x1 + x2) / 2) < 0.5 and abs(cy - (y1 + y2) / 2) < 0.5
                assert abs(cx - obj.x) < 0.1 and abs(cy - obj.y) < 0.1
                # the truth flux is the component's total (stamps hold > 99% of it)
                assert comp.sum() == pytest.approx(obj.flux["r"], rel=0.02)
    assert len(fractions) >= 8
    assert np.median(fractions) > 0.95


def test_scene_physics(full_scenes):
    for sc in full_scenes:
        assert sc.boxes.dtype == np.float32 and sc.labels.dtype == np.int64
        assert set(sc.labels.tolist()) <= {1, 2}
        for obj, box in zip(sc.objects, sc.boxes):
            assert {1: {"clump"}, 2: {"star", "background_galaxy"}}[obj.label] >= {obj.kind}
            assert 0.01 <= obj.flux_ratio <= 0.2
            assert obj.flux["r"] == pytest.approx(obj.flux_ratio * sc.host.flux["r"])
            assert obj.snr > 0
            assert 0 <= box[0] < box[2] <= sc.image.shape[2]
            if obj.kind == "clump":  # blue: g-r in [0, 0.3]
                assert obj.flux["g"] <= obj.flux["r"] + 1e-9
                assert obj.flux["g"] >= obj.flux["r"] * 10 ** (-0.4 * 0.3) - 1e-9
        assert sc.wcs.has_celestial
        assert 1.0 <= sc.psf_fwhm <= 2.0


def test_noise_level_and_snr_definition():
    over = {**SMALL, "noise": {"poisson": False}, "scene": {"empty_fraction": 0}}
    cfg = load_sim_config(None, over)
    sc = simulate_clump_scene(config=cfg, seed=4, return_components=True)
    r = sc.bands.index("r")
    resid = sc.image[r] - sc.host_model[r] - sc.components[:, r].sum(axis=0)
    sigma = sc.noise_sigma["r"]
    assert resid.std() == pytest.approx(sigma, rel=0.03)
    assert 0.02 < sigma < 0.03  # SDSS r: ~0.024 nanomaggy/px
    for k, obj in enumerate(sc.objects):
        m = sc.components[k, r].astype(np.float64)
        assert obj.snr == pytest.approx(math.sqrt((m**2).sum()) / sigma, rel=1e-3)


def test_count_and_class_distribution(small_cfg):
    n = 300
    counts, labels = [], []
    for i in range(n):
        sc = simulate_clump_scene(config=small_cfg, seed=image_seed(2024, i))
        counts.append(len(sc.objects))
        labels.extend(sc.labels.tolist())
    counts = np.array(counts)
    labels = np.array(labels)
    # Binomial/Poisson standard errors at n=300: empty 0.026, odd fraction ~0.02, mean ~0.09.
    assert abs((counts == 0).mean() - 0.3) < 0.08
    assert abs((labels == 2).mean() - 0.276) < 0.07
    clumpy = counts[counts > 0]
    assert abs(clumpy.mean() - 2.31) < 0.3
    assert np.isin(clumpy, np.arange(1, 10)).all()
    assert abs((clumpy == 2).mean() - 0.417) < 0.1  # the mode of the real histogram


# ------------------------------------------------------------------------------------ on disk


def test_simulate_clumps_layout(tmp_path):
    from pycocotools.coco import COCO

    smooth = load_sim_config(SMOOTH)
    out = simulate_clumps(
        n=4, seed=7, out=tmp_path / "sim", config=smooth, workers=1, progress=False
    )
    files = sorted(p.name for p in (out / "images").iterdir())
    assert files == [f"{i:06d}.fits" for i in range(4)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers

    coco = COCO(str(out / "annotations.json"))
    assert sorted(coco.getImgIds()) == [0, 1, 2, 3]
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == {"clump", "odd_clump"}
    anns = coco.loadAnns(coco.getAnnIds())
    assert anns, "seed 7 should give at least one box in 4 images"
    for a in anns:
        assert a["iscrowd"] == 0 and a["category_id"] in (1, 2)
        assert a["area"] == pytest.approx(a["bbox"][2] * a["bbox"][3])
        assert set(a["flux"]) == {"g", "r", "i"} and a["snr"] > 0 and a["flux_ratio"] > 0
        assert a["kind"] in {"clump", "star", "background_galaxy"}
    for img in coco.loadImgs(coco.getImgIds()):
        with fits.open(out / img["file_name"]) as hdul:
            hdr, data = hdul[0].header, hdul[0].data
        assert data.shape == (3, img["height"], img["width"]) == (3, 200, 200)
        assert [hdr[f"BAND{k}"] for k in (1, 2, 3)] == img["bands"] == ["g", "r", "i"]
        assert hdr["NBANDS"] == 3 and hdr["PIXSCALE"] == pytest.approx(0.396)
        assert hdr["PSFFWHM"] == pytest.approx(img["psf_fwhm"])
        assert hdr["NOISE_R"] > 0 and hdr["BUNIT"] == "nanomaggy"
        wcs = WCS(hdr)
        assert wcs.celestial.has_celestial
        assert abs(wcs.celestial.proj_plane_pixel_scales()[0].to_value("arcsec") - 0.396) < 1e-6
        assert np.isfinite(data).all() and data.std() > 0

    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["local_ids", "label", "x1", "y1", "x2", "y2"]
    assert len(rows) - 1 == len(anns)
    by_id = sorted(anns, key=lambda a: a["id"])
    for row, a in zip(rows[1:], by_id):
        x, y, w, h = a["bbox"]
        assert int(row[0]) == a["image_id"] and int(row[1]) == a["category_id"]
        np.testing.assert_allclose([float(v) for v in row[2:]], [x, y, x + w, y + h], atol=1e-3)
    saved = load_sim_config(out / "config.yaml")
    assert saved == smooth


def test_workers_do_not_change_output(tmp_path, small_cfg):
    kw = {"n": 5, "config": small_cfg, "progress": False}
    a = simulate_clumps(seed=1, out=tmp_path / "a", workers=1, **kw)
    b = simulate_clumps(seed=1, out=tmp_path / "b", workers=2, **kw)
    ja = json.loads((a / "annotations.json").read_text())
    jb = json.loads((b / "annotations.json").read_text())
    assert ja["images"] == jb["images"] and ja["annotations"] == jb["annotations"]
    for i in range(5):
        da = fits.getdata(a / "images" / f"{i:06d}.fits")
        db = fits.getdata(b / "images" / f"{i:06d}.fits")
        np.testing.assert_array_equal(da, db)
    # image i of a run equals simulate_clump_scene with image_seed(seed, i)
    sc = simulate_clump_scene(config=small_cfg, seed=image_seed(1, 3), image_id=3)
    np.testing.assert_array_equal(fits.getdata(a / "images" / "000003.fits"), sc.image)
    c = simulate_clumps(seed=2, out=tmp_path / "c", workers=1, **kw)
    first = [fits.getdata(d / "images" / "000000.fits") for d in (a, c)]
    assert not np.array_equal(*first)


def test_empty_fraction_one_gives_no_annotations(tmp_path):
    cfg = load_sim_config(None, {**SMALL, "scene": {"empty_fraction": 1.0}})
    out = simulate_clumps(n=3, seed=0, out=tmp_path / "e", config=cfg, workers=1, progress=False)
    doc = json.loads((out / "annotations.json").read_text())
    assert len(doc["images"]) == 3 and doc["annotations"] == []
    assert (out / "labels.csv").read_text().strip() == "local_ids,label,x1,y1,x2,y2"


def test_output_dir_rules(tmp_path, small_cfg):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    scene = dataclasses.replace(small_cfg.scene, empty_fraction=1.0)
    cfg = dataclasses.replace(small_cfg, scene=scene)
    with pytest.raises(InputError, match="not empty"):
        simulate_clumps(n=1, seed=0, out=out, config=cfg, workers=1, progress=False)
    assert (out / "keep.txt").exists()
    simulate_clumps(n=1, seed=0, out=out, config=cfg, workers=1, progress=False, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "annotations.json").is_file()
    with pytest.raises(ConfigError, match="n"):
        simulate_clumps(n=0, seed=0, out=tmp_path / "z", config=cfg, progress=False)
    with pytest.raises(ConfigError, match="seed"):
        simulate_clumps(n=1, seed=-1, out=tmp_path / "z", config=cfg, progress=False)
    assert not (tmp_path / "z").exists()
