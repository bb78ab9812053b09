"""Blended-field simulator: truth rules, pairs, masks, files and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pycocotools import mask as mask_utils

from clumpdet.cli import main
from clumpdet.errors import ConfigError
from clumpdet.sim import (
    FieldSimConfig,
    load_field_config,
    read_objects,
    simulate_field_scene,
)
from clumpdet.sim.fields.scene import stamp_mask_rle

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def scene():
    return simulate_field_scene(config=FieldSimConfig(), seed=3, return_components=True)


def test_yaml_spells_out_the_default():
    assert load_field_config(ROOT / "configs" / "sim" / "fields_decam.yaml") == FieldSimConfig()


def test_every_box_holds_its_objects_light(scene):
    """At least 90 % of each object's in-frame noiseless flux lies inside its truth box."""
    comps = scene.components
    assert comps.shape[0] == len(scene.objects) > 20
    for o, comp in zip(scene.objects, comps):
        total = comp.sum()
        x1, y1, x2, y2 = (round(o[k]) for k in ("x1", "y1", "x2", "y2"))
        inside = comp[y1:y2, x1:x2].sum()
        assert inside >= 0.9 * total, (o["object_id"], inside / total)
        assert x1 <= o["x"] <= x2 and y1 <= o["y"] <= y2


def test_image_is_sum_of_objects_plus_noise(scene):
    r = scene.bands.index("r")
    resid = scene.image[r] - scene.components.sum(0)
    # sky-limited: the residual's robust sigma is the configured sky sigma (within 10 %)
    mad = 1.4826 * np.median(np.abs(resid - np.median(resid)))
    assert mad == pytest.approx(scene.noise_sigma["r"], rel=0.1)


def test_labels_snr_and_blend_fields(scene):
    df = pd.DataFrame(scene.objects)
    assert set(df.category_id) <= {1, 2}
    assert (df.labelled == (df.snr >= 5.0)).all()
    assert df.blendedness.between(0, 1).all() and df.overlap.between(0, 1).all()
    lab = df[df.labelled]
    # nearest labelled neighbour distance, checked by brute force
    for _, row in lab.head(10).iterrows():
        others = lab[lab.object_id != row.object_id]
        d = np.hypot(others.x - row.x, others.y - row.y).min()
        assert row.nn_sep_px == pytest.approx(d)
        assert row.nn_sep_fwhm == pytest.approx(d / scene.psf_fwhm_px)


def test_designed_pairs_have_set_separation(scene):
    df = pd.DataFrame(scene.objects)
    pairs = df[df.pair_id >= 0].groupby("pair_id")
    assert len(pairs) >= 1
    for _, g in pairs:
        assert len(g) == 2
        sep = math.hypot(*(g[["x", "y"]].iloc[0] - g[["x", "y"]].iloc[1]))
        assert sep / scene.psf_fwhm_px == pytest.approx(g.pair_sep_fwhm.iloc[0], rel=1e-6)
        assert 0.5 <= g.pair_sep_fwhm.iloc[0] <= 4.0


def test_galaxy_density_matches_config():
    cfg = load_field_config(None, ["stars.density=0", "pairs.fraction=0"])
    n = [len(simulate_field_scene(config=cfg, seed=s).objects) for s in range(8)]
    area = 256 * 256 * 0.263**2 / 3600
    assert np.mean(n) / area == pytest.approx(30.0, rel=0.25)


def test_stamp_rle_matches_full_frame_encoding():
    rng = np.random.default_rng(0)
    mask = rng.uniform(size=(7, 5)) > 0.4
    full = np.zeros((20, 16), np.uint8)
    full[3:10, 9:14] = mask
    rle = stamp_mask_rle(mask, x0=9, y0=3, height=20, width=16)
    ref = mask_utils.encode(np.asfortranarray(full))
    assert rle["counts"] == ref["counts"].decode()
    np.testing.assert_array_equal(
        mask_utils.decode({**rle, "counts": rle["counts"].encode()}), full
    )


def test_same_seed_same_scene():
    a = simulate_field_scene(config=FieldSimConfig(), seed=5)
    b = simulate_field_scene(config=FieldSimConfig(), seed=5)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.objects == b.objects


def test_bad_config_names_the_key():
    with pytest.raises(ConfigError, match="image.bands: unknown band 'u'"):
        load_field_config(None, ["image.bands=[u, r]"])
    with pytest.raises(ConfigError, match="galaxies.mag_min"):
        load_field_config(None, ["galaxies.mag_min=26"])


def test_per_band_rules_name_the_key():
    with pytest.raises(ConfigError, match=r"psf\.band_factor: values must be finite and > 0"):
        load_field_config(None, ["psf.band_factor.z=-1"])
    with pytest.raises(ConfigError, match=r"noise\.depth_5sigma: expected a mapping"):
        load_field_config(None, ["noise.depth_5sigma=23"])
    with pytest.raises(ConfigError, match=r"stars\.density: must be >= 0, got -1\.0"):
        load_field_config(None, ["stars.density=-1"])
    assert load_field_config(None, ["psf.band_factor.g=1.2"]).psf.band_factor["z"] == 0.93


def test_writer_and_cli(tmp_path):
    out = tmp_path / "fields"
    rc = main(
        [
            "simulate", "fields", "--n", "3", "--seed", "1", "--out", str(out), "--workers", "1",
            "--set", "image.width=96", "--set", "image.height=80",
        ]
    )  # fmt: skip
    assert rc == 0
    doc = json.loads((out / "annotations.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["star", "galaxy"]
    assert {(im["width"], im["height"]) for im in doc["images"]} == {(96, 80)}
    objects = read_objects(out)
    lab = objects[objects.labelled]
    assert len(lab) == len(doc["annotations"]) > 0
    assert set(lab.annotation_id) == {a["id"] for a in doc["annotations"]}
    pairs = objects[objects.pair_id >= 0]
    assert (pairs.groupby("pair_id").size() == 2).all()
    ann = doc["annotations"][0]
    m = mask_utils.decode({**ann["segmentation"], "counts": ann["segmentation"]["counts"].encode()})
    assert m.shape == (80, 96) and m.sum() > 0
    x, y, w, h = ann["bbox"]
    ys, xs = np.nonzero(m)
    assert xs.min() >= x - 1 and xs.max() < x + w + 1 and ys.min() >= y - 1 and ys.max() < y + h + 1
    from clumpdet.data.images import read_image

    img = read_image(out / doc["images"][0]["file_name"], bands=["g", "r", "z"])
    assert img.data.shape == (3, 80, 96) and img.wcs is not None
