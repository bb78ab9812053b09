"""Galaxy classifiers: models, metrics, a tiny training run per task, TTA/ensembles, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import write_task_dir

from clumpdet.checkpoints import load_classifier, read_checkpoint
from clumpdet.config import load_config
from clumpdet.engine.classify import ClassifierTrainConfig, train_classifier
from clumpdet.evaluation.classification import (
    binary_metrics,
    multiclass_metrics,
    roc_auc,
    vote_fraction_metrics,
)
from clumpdet.models.classifier import ClassifierConfig, build_classifier


def test_metrics_hand_computed():
    y = np.array([0, 0, 1, 1])
    assert roc_auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    m = binary_metrics(y, np.array([0.1, 0.6, 0.35, 0.8]))
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["brier"] == pytest.approx((0.01 + 0.36 + 0.4225 + 0.04) / 4)
    mc = multiclass_metrics(np.array([0, 1, 2, 2]), np.eye(3)[[0, 1, 2, 1]], class_names="abc")
    assert mc["accuracy"] == 0.75
    assert mc["confusion_normalised"][2] == [0.0, 0.5, 0.5]
    v = vote_fraction_metrics(
        np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.5, 1.0], [1.0, 0.0]]), names=["a", "b"]
    )
    assert v["rmse"] == pytest.approx(np.sqrt(0.25 / 4))
    assert v["per_output_rmse"]["a"] == pytest.approx(np.sqrt(0.125))


@pytest.mark.parametrize(
    ("model", "task", "size", "n_out"),
    [
        ("trunk", "merger", 64, 1),
        ("deepmerge_cnn", "merger", 75, 1),
        ("dieleman_cnn", "gz_votes", 45, 37),
        ("trunk", "four_class", 64, 4),
        ("trunk", "candels", 64, 5),
    ],
)
def test_models_build_and_run(model, task, size, n_out):
    cfg = ClassifierConfig(model=model, task=task)
    net = build_classifier(config=cfg, in_chans=3, image_size=size).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, size, size))
    assert out.shape == (2, n_out)


def test_deepmerge_architecture_is_exact():
    net = build_classifier(
        config=ClassifierConfig(model="deepmerge_cnn"), in_chans=3, image_size=75
    )
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [
        (8, (5, 5)),
        (16, (3, 3)),
        (32, (3, 3)),
    ]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 3
    dense = [m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert dense == [64, 32, 1]
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in net.modules())


@pytest.mark.parametrize(
    ("task", "model", "extra"),
    [
        ("merger", "deepmerge_cnn", ["data.resize=75"]),
        ("four_class", "trunk", []),
        ("gz_votes", "trunk", ["model.dirichlet=true"]),
        ("candels", "trunk", ["tta=true"]),
    ],
)
def test_tiny_training_run_per_task(task, model, extra, tmp_path):
    data = write_task_dir(tmp_path / "data", task)
    cfg = load_config(
        ClassifierTrainConfig,
        None,
        [
            "data.source=sim_dir",
            f"data.path={data}",
            f"model.task={task}",
            f"model.model={model}",
            "model.backbone.name=resnet18",
            "optim.max_epochs=2",
            "optim.batch_size=16",
            "trainer.progress_bar=false",
            *extra,
        ],
    )
    path = train_classifier(cfg, out=tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    if task in ("gz_votes", "candels"):
        assert 0 < metrics["rmse"] < 1
    else:
        assert "accuracy" in metrics and "auc" in metrics
    png = {
        "merger": "roc.png",
        "four_class": "confusion.png",
        "gz_votes": "rmse_per_question.png",
        "candels": "rmse_per_question.png",
    }
    assert (tmp_path / "run" / png[task]).stat().st_size > 5000
    assert (tmp_path / "run" / "feature_maps.png").stat().st_size > 5000
    bundle = load_classifier(path)
    assert bundle.task == task and bundle.meta["preprocessing"]["bands"] == ["g", "r", "i"]
    assert (tmp_path / "run" / "backbone.pt").is_file() == (model == "trunk")
    # an ensemble of the same checkpoint twice equals that checkpoint alone
    from clumpdet.inference.classifier import predict_with_checkpoints

    imgs = np.load(data / "images.npy")[:4]
    one = predict_with_checkpoints([path], imgs)
    two = predict_with_checkpoints([path, path], imgs, tta=False)
    assert one.shape[0] == 4 and np.allclose(one, two, atol=1e-6)


def test_exported_backbone_loads_into_detector(tmp_path):
    from clumpdet.models.backbones import BackboneConfig
    from clumpdet.models.detector import DetectorConfig, build_detector

    data = write_task_dir(tmp_path / "data", "merger")
    (data / "config.yaml").write_text("image:\n  bands: [g, r, i]\n_run_:\n  unit: nanomaggy\n")
    cfg = load_config(
        ClassifierTrainConfig,
        None,
        [
            "data.source=sim_dir",
            f"data.path={data}",
            "optim.max_epochs=1",
            "optim.batch_size=16",
            "trainer.progress_bar=false",
        ],
    )
    train_classifier(cfg, out=tmp_path / "run")
    exported = tmp_path / "run" / "backbone.pt"
    bundle = load_classifier(tmp_path / "run" / "classifier.pt")
    # both checkpoints record the simulated input: FITS-like floats in the simulator's unit
    assert bundle.input == {"kind": "fits", "unit": "nanomaggy"}
    assert read_checkpoint(exported, "backbone")["input"] == bundle.input
    classifier = bundle.model
    det = build_detector(
        config=DetectorConfig(backbone=BackboneConfig(name=str(exported), trainable_stages=2)),
        in_chans=3,
        image_mean=[0] * 3,
        image_std=[1] * 3,
    )
    key = "layer3.0.conv1.weight"
    assert torch.equal(
        det.backbone.trunk.body.state_dict()[key], classifier.trunk.body.state_dict()[key]
    )
    assert det.backbone.trunk.pretrained_preprocessing["bands"] == ["g", "r", "i"]


def test_resume_refuses_a_file_that_is_not_a_lightning_checkpoint(tmp_path):
    from clumpdet.errors import CheckpointError, InputError

    data = write_task_dir(tmp_path / "data", "merger", n=8)
    cfg = load_config(ClassifierTrainConfig, None, ["data.source=sim_dir", f"data.path={data}"])
    not_ckpt = tmp_path / "model.pt"
    torch.save({"state_dict": {}}, not_ckpt)
    with pytest.raises(CheckpointError, match="model.pt: is not a Lightning training checkpoint"):
        train_classifier(cfg, out=tmp_path / "run", resume=not_ckpt)
    with pytest.raises(InputError, match="missing.ckpt: checkpoint to resume from not found"):
        train_classifier(cfg, out=tmp_path / "run", resume=tmp_path / "missing.ckpt")
    assert not (tmp_path / "run" / "config.yaml").exists()  # refused before any work


def test_training_runs_use_every_trainer_setting(tmp_path):
    from clumpdet.engine.config import TrainerConfig
    from clumpdet.engine.trainer import build_trainer

    t = TrainerConfig(log_every_n_steps=3, check_val_every_n_epoch=2, progress_bar=False)
    trainer = build_trainer(t, out=tmp_path, max_epochs=5, callbacks=[])
    assert trainer.log_every_n_steps == 3 and trainer.check_val_every_n_epoch == 2
    assert trainer.max_epochs == 5 and trainer.num_sanity_val_steps == 0
    assert Path(trainer.logger.log_dir) == tmp_path / "logs"


def test_tta_and_ensemble_average():
    class Const(torch.nn.Module):
        def __init__(self, v):
            super().__init__()
            self.v = v

        def forward(self, x):
            return torch.full((len(x), 1), self.v)

    from clumpdet.inference.classifier import predict_arrays

    loader = [(torch.zeros(3, 1, 4, 4), torch.zeros(3, 1))]
    _, p = predict_arrays([Const(0.0), Const(100.0)], loader, task="merger", tta=True)
    assert p == pytest.approx(np.full((3, 1), 0.75))  # mean of sigmoid(0)=0.5 and sigmoid(100)=1


def test_pretrain_two_tasks_masks_labels_and_exports(tmp_path):
    from clumpdet.engine.pretrain import PretrainConfig, pretrain_backbone
    from clumpdet.models.backbones import BackboneConfig, build_trunk

    a = write_task_dir(tmp_path / "a", "merger", n=32)
    b = write_task_dir(tmp_path / "b", "four_class", n=32)
    cfg = load_config(
        PretrainConfig,
        None,
        {
            "image_size": 32,
            "tasks": [
                {
                    "task": "merger",
                    "data": {"source": "sim_dir", "path": str(a), "split": [0.5, 0.25, 0.25]},
                },
                {
                    "task": "four_class",
                    "data": {"source": "sim_dir", "path": str(b), "split": [0.5, 0.25, 0.25]},
                },
            ],
            "optim": {"max_epochs": 1, "batch_size": 16},
            "trainer": {"progress_bar": False},
        },
    )
    path = pretrain_backbone(cfg, out=tmp_path / "pre")
    assert read_checkpoint(path, "backbone")["input"] == {"kind": "fits", "unit": "unknown"}
    trunk = build_trunk(BackboneConfig(name=str(path)), in_chans=3)
    assert trunk.pretrained_preprocessing["bands"] == ["g", "r", "i"]
    log = (tmp_path / "pre" / "logs" / "metrics.csv").read_text()
    assert "val/merger_auc" in log and "val/four_class_accuracy" in log
