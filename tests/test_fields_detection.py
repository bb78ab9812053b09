"""Star/galaxy detection on blended fields: training path, tiled mosaics, source catalogues."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import ThresholdDetector

from clumpdet.config import load_config
from clumpdet.data.images import ImageData
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.detections import Detections
from clumpdet.engine.checkpoint import load_detector_checkpoint
from clumpdet.engine.config import TrainConfig
from clumpdet.engine.train import train_detector
from clumpdet.errors import ConfigError
from clumpdet.evaluation.matching import box_iou
from clumpdet.inference.catalogue import build_catalogue
from clumpdet.inference.predictor import Predictor, tile_starts
from clumpdet.sim import load_field_config, simulate_field_scene

ROOT = Path(__file__).parents[1]
FIELDS_CFG = ROOT / "configs" / "detector" / "fields_resnet18.yaml"


def _predictor(bundle, size: int, overlap: int) -> Predictor:
    bundle.image_size = (size, size)
    return Predictor(bundle, tile_overlap=overlap, batch_size=4)


def test_tiled_mosaic_finds_each_source_once(tiny_model):
    """Tiles of 128 px with 64 px overlap reproduce the whole-frame detections of every source
    smaller than half the overlap, including those straddling tile borders, exactly once."""
    cfg = load_field_config(
        None, ["image.width=300", "image.height=300", "galaxies.density=150", "pairs.fraction=0.3"]
    )
    scene = simulate_field_scene(config=cfg, seed=2)
    bundle = load_detector_checkpoint(tiny_model)
    bundle.model = ThresholdDetector(threshold=0.12)  # ~5 sigma of the 3-band sum (nanomaggy)
    bundle.preprocessing = Preprocessing(bands=("g", "r", "z"), stretch="none")
    (tiled,) = _predictor(bundle, 128, 64).predict([scene.image])
    (whole,) = _predictor(bundle, 300, 64).predict([scene.image])
    side = np.maximum(whole.boxes[:, 2] - whole.boxes[:, 0], whole.boxes[:, 3] - whole.boxes[:, 1])
    small = whole.boxes[side <= 30]
    assert len(small) >= 30
    starts = tile_starts(300, 128, 64)
    edges = [*starts[1:], *(s + 128 for s in starts)]
    straddle = [
        b for b in small if any(b[0] < e < b[2] or b[1] < e < b[3] for e in edges if e < 300)
    ]
    assert len(straddle) >= 3  # the test exercises the merge
    iou = box_iou(small, tiled.boxes)
    assert (iou.max(axis=1) > 0.999).all()  # every source found with its whole-frame box
    assert ((iou > 0.3).sum(axis=1) == 1).all()  # and only once


def test_source_catalogue_has_no_host_columns():
    image = ImageData(
        data=np.ones((3, 40, 40), np.float32), bands=("g", "r", "z"), wcs=None, path=None
    )
    det = Detections(np.array([[10, 10, 20, 20]], np.float32), np.array([2]), np.array([0.9]))
    t = build_catalogue([image], [det], class_names=("star", "galaxy"), host_columns=False)
    assert t["source_id"][0] == 1 and t["label_name"][0] == "galaxy"
    assert t["flux_r"][0] == pytest.approx(100.0)
    assert "host_segment" not in t.colnames and "flux_ratio" not in t.colnames
    empty = build_catalogue([image], [Detections()], class_names=("star",), host_columns=False)
    assert len(empty) == 0 and "source_id" in empty.colnames


def test_class_names_must_match_simulator(tmp_path):
    cfg = load_config(TrainConfig, FIELDS_CFG, ["model.class_names=[clump, odd_clump]"])
    with pytest.raises(ConfigError, match="do not match the 'fields' simulator"):
        train_detector(cfg, out=tmp_path / "run")


def test_fields_config_trains_end_to_end(tmp_path):
    cfg = load_config(
        TrainConfig,
        FIELDS_CFG,
        [
            "data.simulate.n_train=6",
            "data.simulate.n_val=2",
            "optim.max_epochs=1",
            "trainer.progress_bar=false",
        ],
    )
    # the config's simulation YAML path is relative to the repo root
    cfg.data.simulate.config = str(ROOT / cfg.data.simulate.config)
    model = train_detector(cfg, out=tmp_path / "run")
    bundle = load_detector_checkpoint(model)
    assert bundle.class_names == ("star", "galaxy")
    assert bundle.preprocessing.bands == ("g", "r", "z")
