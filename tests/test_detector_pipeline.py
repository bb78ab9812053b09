"""Train -> detect -> evaluate end to end on tiny data, plus catalogue, tiling and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from helpers import ThresholdDetector

from clumpdet.checkpoints import DETECTOR_FORMAT, load_detector
from clumpdet.cli import main
from clumpdet.data.fits import make_wcs, write_image_fits
from clumpdet.data.images import ImageData
from clumpdet.errors import CheckpointError, ConfigError, InputError
from clumpdet.inference.predictor import Predictor, tile_starts

ROOT = Path(__file__).resolve().parents[1]


def test_checkpoint_is_weights_only_and_complete(tiny_model):
    obj = torch.load(tiny_model, weights_only=True)  # must not need unpickling of objects
    assert obj["format"] == DETECTOR_FORMAT
    assert obj["class_names"] == ["clump", "odd_clump"]
    assert obj["bands"] == ["g", "r", "i"]
    assert obj["backbone"]["name"] == "resnet18"
    assert obj["preprocessing"]["stretch"] == "asinh" and len(obj["preprocessing"]["mean"]) == 3
    assert obj["config"]["optim"]["max_epochs"] == 3
    assert obj["clumpdet_version"]
    run = tiny_model.parent
    assert (run / "training_curves.png").stat().st_size > 10_000
    assert (run / "checkpoints" / "last.ckpt").is_file()
    import pandas as pd

    log = pd.read_csv(run / "logs" / "metrics.csv")
    best = json.loads((run / "val_metrics.json").read_text())
    # the reported metrics are those of the exported (best by the monitor) epoch, not the last
    monitor = obj["config"]["trainer"]["monitor"]
    assert monitor == "val/AP50"  # threshold-free: an epoch-0 F1 of 0 cannot win by a tie
    assert best[monitor.split("/")[1]] == pytest.approx(log[monitor].max(), abs=1e-6)
    assert obj["metrics"]["f1"] == pytest.approx(best["f1"])
    # eval.operating_threshold: config -> the configured threshold; the val best-F1 one is kept
    assert obj["model_config"]["score_threshold"] == best["operating_threshold"] == 0.3
    assert 0.0 <= best["best_f1_threshold"] <= 1.0


def test_operating_threshold_comes_from_the_validation_f1():
    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import operating_threshold

    cfg = load_config(TrainConfig, None, {"model": {"score_threshold": 0.3, "min_score": 0.01}})
    val = load_config(TrainConfig, None, {"eval": {"operating_threshold": "val_f1"}})
    assert operating_threshold(cfg, {"best_f1_threshold": 0.62}) == 0.3
    assert operating_threshold(val, {"best_f1_threshold": 0.62}) == 0.62
    assert operating_threshold(val, {"best_f1_threshold": 0.0}) == val.model.min_score
    assert operating_threshold(val, {"best_f1_threshold": float("nan")}) == 0.3
    assert operating_threshold(val, {}) == 0.3
    colour = load_config(TrainConfig, ROOT / "configs" / "detector" / "sdss_colour.yaml")
    assert colour.eval.operating_threshold == "val_f1"


def test_train_detect_evaluate(tiny_model, blob_data, tmp_path):
    cat = tmp_path / "cat.fits"
    rc = main(
        [
            "detect",
            str(tiny_model),
            "--coco",
            str(blob_data["val"]),
            "--out",
            str(cat),
            "--overlays",
            str(tmp_path / "ov"),
        ]
    )
    assert rc == 0
    table = Table.read(cat)
    for col in (
        "image",
        "clump_id",
        "label",
        "label_name",
        "score",
        "x1",
        "y2",
        "x",
        "y",
        "ra",
        "dec",
        "flux_g",
        "flux_ratio_r",
        "flux_ratio",
        "backbone",
        "checkpoint_sha256",
    ):
        assert col in table.colnames
    assert (table["score"] >= 0.3).all()
    assert len(list((tmp_path / "ov").glob("*.png"))) == 9
    rc = main(
        [
            "evaluate",
            "--truth",
            str(blob_data["val"]),
            "--pred",
            str(tmp_path / "cat_coco.json"),
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    assert rc == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # three epochs on bright blobs: the detector finds most of them
    assert metrics["completeness"] >= 0.5
    assert metrics["AP50"] > 0.3


def test_catalogue_radec_matches_wcs(tiny_model, blob_data):
    from clumpdet.detections import Detections
    from clumpdet.inference.catalogue import build_catalogue

    path = blob_data["val"].parent / "images" / "0001.fits"
    with fits.open(path) as hdul:
        wcs = WCS(hdul[0].header).celestial
        data = hdul[0].data.astype(np.float32)
    image = ImageData(data=data, bands=("g", "r", "i"), wcs=wcs, path=path)
    det = Detections(
        np.array([[10.0, 20.0, 20.0, 30.0]], np.float32), np.array([1]), np.array([0.9], np.float32)
    )
    table = build_catalogue([image], [det], class_names=("clump", "odd_clump"))
    # box centre (15, 25) in corner-origin pixels is astropy pixel (14.5, 24.5)
    sky = wcs.pixel_to_world(14.5, 24.5)
    assert table["ra"][0] == pytest.approx(sky.ra.deg, abs=1e-9)
    assert table["dec"][0] == pytest.approx(sky.dec.deg, abs=1e-9)
    # and the FITS 1-based convention agrees
    ra, _dec = wcs.all_pix2world([[15.5, 25.5]], 1)[0]
    assert table["ra"][0] == pytest.approx(ra, abs=1e-9)
    # photometry (host-subtracted, aperture-corrected) is checked on exact images in
    # tests/test_photometry.py; here only that it ran
    assert np.isfinite(table["flux_g"][0]) and table["flux_err_g"][0] > 0


def test_tiling_finds_border_clump_exactly_once(tiny_model):
    bundle = load_detector(tiny_model)
    bundle.model = ThresholdDetector()
    pred = Predictor(bundle, tile_overlap=24, batch_size=4)
    _th, tw = bundle.image_size  # 64 x 64 tiles
    starts = tile_starts(150, tw, 24)
    assert starts[0] == 0 and starts[-1] == 150 - tw
    # a clump centred exactly on the border between the first two tiles' cores
    border = (starts[0] + tw + starts[1]) / 2.0
    image = np.zeros((3, 150, 150), np.float32)
    yy, xx = np.mgrid[0:150, 0:150] + 0.5
    for cx, cy in ((border, 40.0), (100.0, 100.0), (border + 0.7, border - 0.4)):
        image += 10 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 2.0**2))[None]
    image += 0.01 * np.random.default_rng(0).normal(size=image.shape).astype(np.float32)
    bundle.preprocessing = type(bundle.preprocessing)(bands=("g", "r", "i"), stretch="none")
    (det,) = pred.predict([image])
    centres = np.c_[
        (det.boxes[:, 0] + det.boxes[:, 2]) / 2, (det.boxes[:, 1] + det.boxes[:, 3]) / 2
    ]
    assert len(det) == 3, centres
    for cx, cy in ((border, 40.0), (100.0, 100.0), (border + 0.7, border - 0.4)):
        d = np.hypot(centres[:, 0] - cx, centres[:, 1] - cy)
        assert (d < 1.5).sum() == 1


def test_bad_checkpoints(tmp_path, blob_data):
    img = str(blob_data["val"].parent / "images" / "0000.fits")
    assert (
        main(["detect", str(tmp_path / "missing.pt"), img, "--out", str(tmp_path / "c.fits")]) == 2
    )
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x04garbage")
    with pytest.raises(CheckpointError, match="corrupt.pt: not a readable checkpoint"):
        load_detector(corrupt)
    other = tmp_path / "backbone.pt"
    torch.save({"format": "clumpdet-backbone", "state_dict": {}}, other)
    with pytest.raises(CheckpointError, match="is not a clumpdet detector checkpoint"):
        load_detector(other)
    assert not (tmp_path / "c.fits").exists()


def test_bad_images(tiny_model, tmp_path, capsys):
    out = tmp_path / "cat.fits"
    two_band = tmp_path / "two_band.fits"
    write_image_fits(two_band, np.ones((2, 64, 64)), bands=("g", "r"))
    assert main(["detect", str(tiny_model), str(two_band), "--out", str(out)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("clumpdet:")]
    assert len(err) == 1 and "two_band.fits" in err[0] and "expected 3 bands (g, r, i)" in err[0]
    nan = tmp_path / "all_nan.fits"
    write_image_fits(
        nan,
        np.full((3, 64, 64), np.nan),
        bands=("g", "r", "i"),
        wcs=make_wcs(shape=(64, 64), ra=10, dec=0, pixel_scale=0.4),
    )
    assert main(["detect", str(tiny_model), str(nan), "--out", str(out)]) == 2
    assert "all_nan.fits" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "cat_coco.json").exists()
    pred = Predictor.from_checkpoint(tiny_model)
    with pytest.raises(InputError, match="empty"):
        pred.predict([np.zeros((3, 0, 0), np.float32)])


def test_unknown_config_key_is_an_error(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("optim:\n  learning_rate: 0.1\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "learning_rate" in err and "valid keys" in err
    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig

    with pytest.raises(ConfigError, match="model.backbone: unknown key"):
        load_config(TrainConfig, None, ["model.backbone.nme=resnet18"])


def test_resume_continues_from_last_checkpoint(tiny_model, blob_data, tmp_path):
    """--resume picks up the epoch counter and optimiser state of an interrupted run."""
    import pandas as pd

    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import train_detector

    last = tiny_model.parent / "checkpoints" / "last.ckpt"
    cfg = load_config(
        TrainConfig,
        None,
        [
            f"data.train={blob_data['train']}",
            f"data.val={blob_data['val']}",
            "optim.max_epochs=4",
            "optim.lr=1e-3",
            "trainer.progress_bar=false",
        ],
    )
    cfg.model = load_detector(tiny_model).model_config
    cfg.model.backbone.name = "resnet18"
    out = train_detector(cfg, out=tmp_path / "resumed", resume=last)
    log = pd.read_csv(tmp_path / "resumed" / "logs" / "metrics.csv")
    epochs = sorted(log["epoch"].dropna().unique().astype(int).tolist())
    # a fresh run would log epochs 0..3; the resumed one continues from last.ckpt (end of the
    # fixture's 3 epochs), so it never trains epoch 0 again and stops at max_epochs
    assert epochs[-1] == 3 and 0 not in epochs, epochs
    assert out.is_file()
    with pytest.raises(InputError, match="not found"):
        train_detector(cfg, out=tmp_path / "x", resume=tmp_path / "missing.ckpt")


def test_resume_with_no_epoch_left_exports_validation_metrics(tiny_model, blob_data, tmp_path):
    """A run resumed at its last epoch exports the exported epoch's metrics and threshold.

    With the per-epoch metrics saved in ``last.ckpt`` they come from there; from a checkpoint
    without them (older files), the restored weights are validated once.
    """
    import json

    import torch

    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import train_detector

    last = tiny_model.parent / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["clumpdet_epoch_metrics"], "last.ckpt keeps the per-epoch validation metrics"
    stripped = tmp_path / "old.ckpt"
    torch.save({k: v for k, v in state.items() if k != "clumpdet_epoch_metrics"}, stripped)
    cfg = load_config(
        TrainConfig,
        None,
        [
            f"data.train={blob_data['train']}",
            f"data.val={blob_data['val']}",
            "optim.max_epochs=3",  # the fixture ran 3 epochs: nothing is left to train
            "trainer.progress_bar=false",
            "eval.operating_threshold=val_f1",
        ],
    )
    cfg.model = load_detector(tiny_model).model_config
    cfg.model.backbone.name = "resnet18"
    for name, ckpt in (("saved", last), ("validated", stripped)):
        out = train_detector(cfg, out=tmp_path / name, resume=ckpt)
        record = json.loads((tmp_path / name / "val_metrics.json").read_text())
        assert "AP50" in record and "operating_threshold" in record, (name, record)
        assert load_detector(out).model_config.score_threshold == record["operating_threshold"]


def test_catalogue_with_no_detections_has_every_column(tmp_path):
    from clumpdet.detections import Detections
    from clumpdet.inference.catalogue import build_catalogue, write_catalogue

    image = ImageData(data=np.zeros((3, 8, 8), np.float32), bands=("g", "r", "i"))
    table = build_catalogue([image], [Detections()], class_names=("clump", "odd_clump"))
    assert len(table) == 0 and "flux_ratio_r" in table.colnames and "ra" in table.colnames
    write_catalogue(table, tmp_path / "empty.fits")
    assert (tmp_path / "empty.fits").stat().st_mode & 0o044  # readable by others, not 0600


def test_init_from_warm_starts_weights_and_rejects_other_shapes(tiny_model, blob_data, tmp_path):
    from pathlib import Path

    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import train_detector

    base = Path(__file__).parents[1] / "configs" / "detector" / "cpu_resnet18.yaml"
    common = [
        f"data.train={blob_data['train']}",
        f"data.val={blob_data['val']}",
        "optim.max_epochs=1",
        "optim.lr=1e-12",  # effectively frozen: the warm-started weights must survive
        "trainer.progress_bar=false",
        f"init_from={tiny_model}",
    ]
    out = train_detector(load_config(TrainConfig, base, common), out=tmp_path / "warm")
    before = load_detector(tiny_model).model.state_dict()
    after = load_detector(out).model.state_dict()
    key = "roi_heads.box_predictor.cls_score.weight"
    assert torch.allclose(before[key], after[key], atol=1e-6)
    bad = load_config(TrainConfig, base, [*common, "model.class_names=[a, b, c]"])
    with pytest.raises(CheckpointError, match="init_from weights do not fit this model"):
        train_detector(bad, out=tmp_path / "bad")


def test_predict_coco_equals_per_image_prediction(tiny_model, blob_data, tmp_path):
    """One prediction path: predict_coco (chunked, batched) gives the detections of predicting
    each image alone, and writes them as validated COCO results."""
    from clumpdet.data.coco import load_coco, load_predictions
    from clumpdet.data.images import read_image
    from clumpdet.detections import coco_results

    pred = Predictor.from_checkpoint(tiny_model, batch_size=2)
    found = pred.predict_coco(blob_data["val"])
    doc = load_coco(blob_data["val"])
    assert found.image_ids == [int(im["id"]) for im in doc["images"]]
    for im, det in zip(doc["images"], found.detections):
        image = read_image(doc["_root"] / im["file_name"], bands=("g", "r", "i"))
        (alone,) = pred.predict([image])
        assert len(alone) == len(det)
        np.testing.assert_allclose(det.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(det.scores, alone.scores, atol=1e-4)
        np.testing.assert_array_equal(det.labels, alone.labels)
    assert sum(len(d) for d in found.detections) > 0
    out = found.write(tmp_path / "pred.json")
    assert load_predictions(out, coco=doc) == coco_results(found.detections, found.image_ids)
    images, dets = pred.predict_files([doc["_root"] / im["file_name"] for im in doc["images"]])
    assert len(images) == len(dets) == len(doc["images"]) and images[0].wcs is not None
    np.testing.assert_allclose(dets[0].boxes, found.detections[0].boxes, atol=1e-3)


def test_stored_detection_kind_picks_catalogue_columns(tiny_model, blob_data, tmp_path):
    """The catalogue columns follow the checkpoint's detection kind, not the class names."""
    obj = torch.load(tiny_model, weights_only=True)
    assert obj["detection_kind"] == "clumps"
    obj["detection_kind"] = "sources"  # clump class names, but a source detector
    sources = tmp_path / "sources.pt"
    torch.save(obj, sources)
    for ckpt, name in ((tiny_model, "clumps.csv"), (sources, "sources.csv")):
        args = ["detect", str(ckpt), "--coco", str(blob_data["val"]), "--out", str(tmp_path / name)]
        assert main(args) == 0
    clumps = Table.read(tmp_path / "clumps.csv")
    srcs = Table.read(tmp_path / "sources.csv")
    assert len(clumps) == len(srcs) > 0
    assert "clump_id" in clumps.colnames and "host_segment" in clumps.colnames
    assert "source_id" in srcs.colnames and "clump_id" not in srcs.colnames
    assert "host_segment" not in srcs.colnames and "flux_ratio" not in srcs.colnames


def test_input_of_another_kind_than_the_training_input_warns(tiny_model, blob_data, tmp_path):
    import warnings

    from PIL import Image

    png = tmp_path / "cutout.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(png)
    fits_file = blob_data["val"].parent / "images" / "0000.fits"
    pred = Predictor.from_checkpoint(tiny_model)
    assert pred.bundle.input["kind"] == "fits"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert pred.read(fits_file).bands == ("g", "r", "i")  # the training kind: silent
    with pytest.warns(UserWarning, match="cutout.png: the model was trained on fits images"):
        assert pred.read(png).shape == (3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred.read(png)  # once per predictor
    pred.bundle.input = {"kind": "unknown", "unit": ""}
    pred._warned_input = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred.read(png)  # nothing to compare with


def test_simulated_val_set_can_use_another_population(tmp_path, monkeypatch):
    """data.simulate.val_config: train on one sim config, validate on another (same seeds)."""
    import clumpdet.sim.run as sim_run
    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import _simulate_if_needed

    calls = []

    def fake_prepare_sets(kind, splits, *, config, out):
        calls.append((dict(splits), config))
        return {name: Path(out) / name for name in splits}

    monkeypatch.setattr(sim_run, "prepare_sets", fake_prepare_sets)
    shipped = load_config(TrainConfig, ROOT / "configs" / "detector" / "cpu_resnet18.yaml")
    s = shipped.data.simulate
    assert s.config.endswith("clumps_sdss_trainmix.yaml")
    assert s.val_config.endswith("clumps_sdss.yaml")
    train, val = _simulate_if_needed(shipped, tmp_path)
    assert calls == [
        ({"train": (s.n_train, s.seed)}, s.config),
        ({"val": (s.n_val, s.seed + 1)}, s.val_config),
    ]
    assert (train, val) == tuple(str(tmp_path / "data" / k / "annotations.json")
                                 for k in ("train", "val"))  # fmt: skip
    calls.clear()
    same = load_config(TrainConfig, None, {"data": {"simulate": {"config": "a.yaml"}}})
    _simulate_if_needed(same, tmp_path)
    assert calls == [({"train": (300, 0), "val": (60, 1)}, "a.yaml")]
