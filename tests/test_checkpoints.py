"""clumpdet.checkpoints: round trips of the three kinds, one error path, legacy defaults, and
safe (weights_only) loading of Lightning training checkpoints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clumpdet.checkpoints import (
    DETECTOR_FORMAT,
    input_kind_of,
    load_backbone,
    load_classifier,
    load_detector,
    read_checkpoint,
    save_checkpoint,
)
from clumpdet.config import to_dict
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.errors import CheckpointError, InputError
from clumpdet.models.backbones import BackboneConfig, build_timm_trunk, build_trunk

PRE = Preprocessing(bands=("g", "r", "i"), mean=(0.1, 0.2, 0.3), std=(1.0, 1.1, 1.2))
FITS_INPUT = {"kind": "fits", "unit": "nanomaggy"}


def _detector(**overrides):
    from clumpdet.models.detector import DetectorConfig, build_detector

    torch.manual_seed(0)
    cfg = DetectorConfig(**overrides)
    model = build_detector(config=cfg, in_chans=3, image_mean=PRE.mean, image_std=PRE.std)
    return cfg, model.eval()


def _save_detector(path: Path, **overrides) -> tuple[Path, torch.nn.Module]:
    cfg, model = _detector(**overrides)
    save_checkpoint(
        path,
        kind="detector",
        model=model,
        preprocessing=PRE,
        model_config=to_dict(cfg),
        image_size=(64, 48),
        input=FITS_INPUT,
        metrics={"f1": 0.5},
    )
    return path, model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    keys = [k for k in sa if not k.endswith("num_batches_tracked")]
    return all(torch.equal(sa[k], sb[k]) for k in keys)


def test_detector_round_trip(tmp_path):
    path, model = _save_detector(
        tmp_path / "det.pt", class_names=("star", "galaxy"), detection_kind="sources"
    )
    obj = torch.load(path, weights_only=True)
    assert obj["format"] == DETECTOR_FORMAT and obj["detection_kind"] == "sources"
    assert obj["input"] == FITS_INPUT
    bundle = load_detector(path)
    assert bundle.detection_kind == "sources" and bundle.model_config.detection_kind == "sources"
    assert bundle.input == FITS_INPUT and bundle.image_size == (64, 48)
    assert bundle.class_names == ("star", "galaxy") and bundle.preprocessing == PRE
    assert bundle.meta["metrics"] == {"f1": 0.5} and len(bundle.sha256) == 12
    assert _same_weights(model, bundle.model)
    x = [torch.rand(3, 64, 48)]
    with torch.inference_mode():
        out_a, out_b = model(x)[0], bundle.model(x)[0]
    assert torch.equal(out_a["boxes"], out_b["boxes"])


def test_classifier_round_trip(tmp_path):
    from clumpdet.models.classifier import ClassifierConfig, build_classifier

    torch.manual_seed(1)
    cfg = ClassifierConfig(task="four_class")
    model = build_classifier(config=cfg, in_chans=3, image_size=32).eval()
    path = save_checkpoint(
        tmp_path / "cls.pt",
        kind="classifier",
        model=model,
        preprocessing=PRE,
        model_config=to_dict(cfg),
        image_size=32,
        input={"kind": "jpeg", "unit": "8-bit colour / 255"},
        metrics={"accuracy": torch.tensor(0.25).item()},
    )
    bundle = load_classifier(path)
    assert bundle.task == "four_class" and len(bundle.label_names) == 4
    assert bundle.image_size == 32 and bundle.input["kind"] == "jpeg"
    assert bundle.model_config.backbone.weights == "none"
    assert _same_weights(model, bundle.model)
    x = torch.rand(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(model(x), bundle.model(x))


def test_backbone_round_trip(tmp_path):
    """A trunk saved as a backbone checkpoint loads by path, with its preprocessing."""
    torch.manual_seed(2)
    trunk = build_timm_trunk(arch="resnet18", in_chans=3, out_indices=(1, 2, 3, 4))
    path = save_checkpoint(
        tmp_path / "galaxy.pt",
        kind="backbone",
        model=trunk,
        preprocessing=PRE,
        source={"task": "gz_votes"},
    )
    loaded = build_trunk(BackboneConfig(name=str(path), trainable_stages=2), in_chans=3)
    assert loaded.pretrained_preprocessing == PRE.to_dict()
    key = "layer3.1.conv2.weight"
    assert torch.equal(loaded.body.state_dict()[key], trunk.body.state_dict()[key])
    assert loaded.strides == [4, 8, 16]
    five = load_backbone(path, in_chans=5)  # first conv adapted to 5 bands
    assert five.in_chans == 5 and five.body.state_dict()["conv1.weight"].shape[1] == 5
    assert read_checkpoint(path, "backbone")["input"] == {"kind": "unknown", "unit": ""}


@pytest.mark.parametrize(
    ("content", "loader", "found"),
    [
        ({"a": torch.zeros(1)}, load_backbone, "a 'plain state dict' file"),
        ({"format": "clumpdet-backbone", "state_dict": {}}, load_detector, "'clumpdet-backbone'"),
        ({"format": "clumpdet-detector", "state_dict": {}}, load_classifier, "'clumpdet-detector'"),
        ({"pytorch-lightning_version": "2", "state_dict": {}}, load_detector, "Lightning"),
        ([1, 2, 3], load_detector, "a list"),
    ],
)
def test_wrong_kind_is_a_one_line_error(tmp_path, content, loader, found):
    path = tmp_path / "other.pt"
    torch.save(content, path)
    with pytest.raises(CheckpointError) as err:
        loader(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: is not a clumpdet ") and found in msg


def test_foreign_pickle_and_missing_file_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": DETECTOR_FORMAT, "obj": Path("x")}, path)  # needs unpickling a class
    with pytest.raises(CheckpointError, match="evil.pt: not a readable checkpoint"):
        load_detector(path)
    with pytest.raises(CheckpointError, match="missing.pt: checkpoint not found"):
        load_classifier(tmp_path / "missing.pt")


def test_incomplete_detector_checkpoint(tmp_path):
    path, _ = _save_detector(tmp_path / "det.pt")
    obj = torch.load(path, weights_only=True)
    obj["state_dict"] = {k: v for k, v in obj["state_dict"].items() if "rpn" not in k}
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="incomplete or inconsistent.*missing"):
        load_detector(path)


@pytest.mark.parametrize(
    ("class_names", "kind"), [(("clump", "odd_clump"), "clumps"), (("star", "galaxy"), "sources")]
)
def test_legacy_checkpoint_defaults(tmp_path, class_names, kind):
    """Checkpoints written before detection_kind / input existed load with the documented
    defaults: the kind from the class names, FITS input of unknown unit."""
    path, _ = _save_detector(tmp_path / "old.pt", class_names=class_names)
    obj = torch.load(path, weights_only=True)
    del obj["detection_kind"], obj["input"], obj["model_config"]["detection_kind"]
    torch.save(obj, path)
    bundle = load_detector(path)
    assert bundle.detection_kind == kind and bundle.model_config.detection_kind == kind
    assert bundle.input == {"kind": "fits", "unit": "unknown"}


def test_bad_header_values_are_refused(tmp_path):
    path, _ = _save_detector(tmp_path / "det.pt")
    obj = torch.load(path, weights_only=True)
    obj["detection_kind"] = "galaxies"
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="detection kind 'galaxies' is not one of"):
        load_detector(path)
    _cfg, model = _detector()
    with pytest.raises(CheckpointError, match="input .* must be"):
        save_checkpoint(
            tmp_path / "x.pt",
            kind="detector",
            model=model,
            preprocessing=PRE,
            model_config=to_dict(_cfg),
            image_size=(8, 8),
            input={"kind": "tiff"},
        )


def test_input_kind_of(tmp_path):
    import numpy as np
    from astropy.io import fits

    from clumpdet.data.fits import write_image_fits

    write_image_fits(tmp_path / "a.fits", np.ones((1, 4, 4)), bands=("r",), unit="nanomaggy")
    fits.PrimaryHDU(np.ones((4, 4), np.float32)).writeto(tmp_path / "b.fits")  # no BUNIT
    assert input_kind_of(tmp_path / "a.fits") == {"kind": "fits", "unit": "nanomaggy"}
    assert input_kind_of(tmp_path / "b.fits") == {"kind": "fits", "unit": "unknown"}
    assert input_kind_of(tmp_path / "c.JPG")["kind"] == "jpeg"
    assert input_kind_of(tmp_path / "d.png") == {"kind": "png", "unit": "8-bit colour / 255"}


def test_trained_detector_records_its_input(tiny_model):
    bundle = load_detector(tiny_model)
    assert bundle.detection_kind == "clumps"
    assert bundle.input["kind"] == "fits"


def test_lightning_checkpoints_load_weights_only(tiny_model):
    from clumpdet.engine.checkpoint import read_lightning_checkpoint

    last = tiny_model.parent / "checkpoints" / "last.ckpt"
    torch.load(last, map_location="cpu", weights_only=True)  # what Trainer.fit is told to do
    obj = read_lightning_checkpoint(last)
    assert "optimizer_states" in obj and "state_dict" in obj


def test_restore_best_weights_refuses_foreign_pickles(tmp_path):
    from types import SimpleNamespace

    from clumpdet.engine.checkpoint import restore_best_weights

    module = torch.nn.Linear(2, 2)
    good = tmp_path / "best.ckpt"
    state = {k: torch.ones_like(v) for k, v in module.state_dict().items()}
    torch.save({"pytorch-lightning_version": "2.6", "state_dict": state}, good)
    cb = SimpleNamespace(best_model_path=str(good), last_model_path="")
    assert restore_best_weights(module, cb) == str(good)
    assert torch.equal(module.weight, torch.ones(2, 2))
    evil = tmp_path / "evil.ckpt"
    torch.save({"pytorch-lightning_version": "2.6", "state_dict": state, "x": Path("x")}, evil)
    with pytest.raises(CheckpointError, match="evil.ckpt: not a readable Lightning checkpoint"):
        restore_best_weights(module, SimpleNamespace(best_model_path=str(evil)))


def test_resume_refuses_unsafe_or_foreign_checkpoints(tmp_path):
    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import train_detector

    cfg = load_config(TrainConfig, None, ["trainer.progress_bar=false"])
    evil = tmp_path / "evil.ckpt"
    torch.save({"pytorch-lightning_version": "2.6", "state_dict": {}, "x": Path("x")}, evil)
    with pytest.raises(CheckpointError, match="evil.ckpt: not a readable Lightning checkpoint"):
        train_detector(cfg, out=tmp_path / "run", resume=evil)
    model_pt, _ = _save_detector(tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="model.pt: is not a Lightning training checkpoint"):
        train_detector(cfg, out=tmp_path / "run", resume=model_pt)
    with pytest.raises(InputError, match="not found"):
        train_detector(cfg, out=tmp_path / "run", resume=tmp_path / "missing.ckpt")
    assert not (tmp_path / "run" / "data").exists()  # refused before simulating anything


def test_inference_does_not_import_training():
    code = (
        "import sys, clumpdet.inference, clumpdet.inference.run, clumpdet.inference.classifier, "
        "clumpdet.checkpoints; "
        "assert 'clumpdet.engine' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
