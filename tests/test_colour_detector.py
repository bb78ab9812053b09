"""Colour-input (8-bit gri JPEG) detector path: binned colour sets, checkpoint input record,
detection binning, and the input-kind check end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clumpdet.data.dataset import DetectionDataset, bin_detection_set, bin_planes
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.errors import ConfigError, InputError

CHANNELS = {"red": "i", "green": "r", "blue": "g"}


def _fake_colour_set(root: Path, *, n: int = 8, size: int = 96, seed: int = 0) -> Path:
    """A sim-contract colour set: root/colour/{images/*.jpg, annotations.json}, blue blobs."""
    rng = np.random.default_rng(seed)
    d = root / "colour"
    (d / "images").mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size] + 0.5
    images, anns = [], []
    for i in range(n):
        img = rng.normal(20, 4, (size, size, 3))
        for _ in range(i % 3):
            cx, cy = rng.uniform(16, size - 16, 2)
            blob = 180 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 3.0**2))
            img += blob[..., None] * np.array([0.5, 0.8, 1.0])  # blue: strongest in g (blue)
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [cx - 9, cy - 9, 18.0, 18.0],
                    "area": 324.0,
                }
            )
        name = f"images/{i:06d}.jpg"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / name, quality=90)
        images.append(
            {"id": i, "file_name": name, "width": size, "height": size, "bands": ["i", "r", "g"]}
        )
    doc = {
        "info": {"rendering": {"colour": True, "channels": CHANNELS}},
        "images": images,
        "annotations": anns,
        "categories": [{"id": 1, "name": "clump"}, {"id": 2, "name": "odd_clump"}],
    }
    (d / "annotations.json").write_text(json.dumps(doc))
    return d / "annotations.json"


def test_bin_planes_block_means():
    x = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    b = bin_planes(x, 2)
    assert b.shape == (2, 2, 3)
    assert b[1, 1, 2] == pytest.approx(x[1, 2:4, 4:6].mean())
    assert bin_planes(x, 1) is x
    assert bin_planes(np.ones((5, 7)), 2).shape == (2, 3)  # edge rows/columns dropped


def test_bin_detection_set_halves_images_and_boxes(tmp_path):
    ann = _fake_colour_set(tmp_path)
    out = bin_detection_set(ann, tmp_path / "bin2", factor=2)
    src, doc = json.loads(ann.read_text()), json.loads(out.read_text())
    assert doc["info"]["bin"] == 2 and doc["info"]["rendering"]["channels"] == CHANNELS
    assert all(im["width"] == 48 and im["height"] == 48 for im in doc["images"])
    for a, b in zip(src["annotations"], doc["annotations"]):
        assert b["bbox"] == pytest.approx([v / 2 for v in a["bbox"]])
    with Image.open(ann.parent / src["images"][1]["file_name"]) as im:
        full = np.asarray(im.convert("RGB"), dtype=np.float32)
    with Image.open(out.parent / doc["images"][1]["file_name"]) as im:
        small = np.asarray(im, dtype=np.float32)
    ref = full.reshape(48, 2, 48, 2, 3).mean(axis=(1, 3))
    assert np.abs(small - ref).max() <= 0.5 + 1e-3  # rounded block means, no re-compression
    # the dataset reads the colour planes in wavelength order (g, r, i = blue, green, red)
    ds = DetectionDataset(out, preprocessing=Preprocessing(bands=("g", "r", "i"), stretch="none"))
    x = ds.load_image(1)
    assert x.shape == (3, 48, 48)
    assert np.allclose(x[0], small[..., 2] / 255.0) and np.allclose(x[2], small[..., 0] / 255.0)


def test_colour_set_needs_the_colour_rendering(tmp_path):
    from clumpdet.engine.train import _colour_set

    with pytest.raises(ConfigError, match="render.colour"):
        _colour_set(tmp_path, 2)
    _fake_colour_set(tmp_path, n=2)
    assert _colour_set(tmp_path, 1) == tmp_path / "colour" / "annotations.json"
    assert _colour_set(tmp_path, 2) == tmp_path / "colour_bin2" / "annotations.json"


def test_shipped_config_trains_on_binned_colour():
    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.sim.clumps.config import load_sim_config

    cfg = load_config(
        TrainConfig, Path(__file__).parents[1] / "configs" / "detector" / "sdss_colour.yaml", []
    )
    s = cfg.data.simulate
    assert (s.rendering, s.bin, cfg.data.stretch) == ("colour", 2, "none")
    # trains on the clump-rich colour mix, selects (and sets its threshold) on the default
    assert s.config == "configs/sim/clumps_sdss_trainmix_colour.yaml"
    assert s.val_config == "configs/sim/clumps_sdss_colour.yaml"
    assert (cfg.trainer.monitor, cfg.eval.operating_threshold) == ("val/AP50", "val_f1")
    assert cfg.model.central_host  # only clumps of the framed galaxy
    root = Path(__file__).parents[1]
    for name in (s.config, s.val_config):
        sim = load_sim_config(root / name)
        assert sim.render.colour and sim.population.model == "realistic"
    mix, default = (load_sim_config(root / n).population for n in (s.config, s.val_config))
    assert mix.clumpy_probability["spiral"] > default.clumpy_probability["spiral"]


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory) -> Path:
    """A detector trained for one epoch on a tiny binned colour set (a few seconds)."""
    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import train_detector

    root = tmp_path_factory.mktemp("colour")
    binned = bin_detection_set(_fake_colour_set(root), root / "bin2", factor=2)
    cfg = load_config(
        TrainConfig,
        Path(__file__).parents[1] / "configs" / "detector" / "sdss_colour.yaml",
        [
            f"data.train={binned}",
            f"data.val={binned}",
            "optim.max_epochs=1",
            "trainer.progress_bar=false",
        ],
    )
    return train_detector(cfg, out=tmp_path_factory.mktemp("run"))


def test_colour_checkpoint_records_kind_channels_and_bin(colour_model):
    from clumpdet.checkpoints import load_detector

    bundle = load_detector(colour_model)
    assert bundle.input == {
        "kind": "png",
        "unit": "8-bit colour / 255",
        "channels": "red=i green=r blue=g",
        "bin": "2",
    }
    assert tuple(bundle.image_size) == (48, 48)


def test_predictor_bins_colour_input_and_returns_input_pixels(colour_model, tmp_path):
    from clumpdet.inference.predictor import Predictor

    # the binning is under test, not the central-host rule (which would drop boxes off the
    # frame centre's footprint, depending on where a one-epoch model puts them)
    pred = Predictor.from_checkpoint(colour_model, tile_overlap=8, central_host=False)
    # every box of a one-epoch model, whatever its score (the threshold is built into the heads)
    pred.bundle.model.roi_heads.score_thresh = 0.0
    assert pred.bin == 2
    rng = np.random.default_rng(5)
    big = rng.normal(0.3, 0.05, (3, 96, 96)).astype(np.float32)
    big[:, 40:52, 60:72] += 0.6
    small = bin_planes(big, 2)
    torch.manual_seed(0)
    d_big = pred.predict([big])[0]
    pred_small = Predictor.from_checkpoint(colour_model, tile_overlap=8, central_host=False)
    pred_small.bundle.model.roi_heads.score_thresh = 0.0
    object.__setattr__(pred_small.bundle, "input", {**pred_small.bundle.input, "bin": "1"})
    d_small = pred_small.predict([small])[0]
    assert len(d_big) == len(d_small) > 0
    assert np.allclose(d_big.boxes, 2 * d_small.boxes, atol=1e-3)


def test_detect_refuses_fits_for_a_colour_model(colour_model, tmp_path):
    from clumpdet.data.fits import write_image_fits
    from clumpdet.inference.run import check_input_kind

    f = tmp_path / "x.fits"
    write_image_fits(f, np.zeros((3, 16, 16), np.float32), bands=("g", "r", "i"))
    from clumpdet.checkpoints import load_detector

    rec = load_detector(colour_model).input
    with pytest.raises(InputError, match="allow-input-mismatch"):
        check_input_kind([f], rec, colour_model)
    check_input_kind([tmp_path / "y.jpg"], rec, colour_model)  # same kind: accepted
