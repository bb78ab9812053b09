"""Self-supervised pretraining (clumpdet.engine.ssl) and the Zoobot-style fine-tuning recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clumpdet.engine.pretrain import PretrainConfig, load_pretrain_config
from clumpdet.engine.ssl import SSLConfig, SSLModule, gaussian_blur, pretrain_ssl
from clumpdet.errors import ConfigError, InputError
from clumpdet.models.backbones import BackboneConfig, build_trunk


def _write_galaxies(folder, n=12, size=32, seed=0):
    """PNG 'galaxies': elliptical Gaussians of random size, axis ratio and angle, plus noise."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - size / 2
    for i in range(n):
        q, pa, r = rng.uniform(0.3, 1), rng.uniform(0, np.pi), rng.uniform(2, 6)
        u = xx * np.cos(pa) + yy * np.sin(pa)
        v = -xx * np.sin(pa) + yy * np.cos(pa)
        img = np.exp(-0.5 * ((u / r) ** 2 + (v / (q * r)) ** 2))
        rgb = np.stack([img * c for c in rng.uniform(0.5, 1, 3)], -1)
        rgb = np.clip(rgb + rng.normal(0, 0.02, rgb.shape), 0, 1)
        Image.fromarray((rgb * 255).astype(np.uint8)).save(folder / f"{1000 + i}.png")
    return folder


def _config(folder, **extra):
    over = {
        "objective": "simclr",
        "image_size": 16,
        "data": {"images_dir": str(folder), "val_fraction": 0.25},
        "hidden_dim": 32,
        "projection_dim": 16,
        "optim": {"batch_size": 8, "max_epochs": 1, "lr": 1e-3},
        "trainer": {"progress_bar": False, "threads": 1},
    }
    over.update(extra)
    return load_pretrain_config(None, [f"{k}={v}" for k, v in _flat(over)])


def _flat(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flat(v, prefix + k + ".")
        else:
            yield prefix + k, v


@pytest.mark.parametrize("objective", ["simclr", "byol"])
def test_a_few_ssl_steps_make_the_loss_fall(objective):
    torch.manual_seed(0)
    cfg = SSLConfig(objective=objective, image_size=16, hidden_dim=32, projection_dim=16)
    module = SSLModule(cfg, in_chans=3, steps_per_epoch=20)
    opt = module.configure_optimizers()["optimizer"]
    base = torch.randn(8, 3, 16, 16)
    views = (base + 0.1 * torch.randn_like(base), base + 0.1 * torch.randn_like(base))
    module.train()

    def loss():
        with torch.no_grad():
            return float(module.step_loss(views)[0])

    before = np.mean([loss() for _ in range(2)])
    for _ in range(15):
        opt.zero_grad()
        module.step_loss(views)[0].backward()
        opt.step()
        if objective == "byol":
            module.on_train_batch_start(views, 0)
    after = np.mean([loss() for _ in range(2)])
    assert after < before - 0.05, (before, after)


def test_ssl_export_loads_in_a_detector_and_a_classifier(tmp_path):
    from clumpdet.checkpoints import read_checkpoint
    from clumpdet.models.classifier import ClassifierConfig, build_classifier
    from clumpdet.models.detector import DetectorConfig, build_detector

    folder = _write_galaxies(tmp_path / "imgs")
    (tmp_path / "held_out.txt").write_text("1000\n1001\n")
    cfg = _config(folder, **{"data": {"images_dir": str(folder), "val_fraction": 0.25,
                                      "exclude_ids": str(tmp_path / "held_out.txt")}})  # fmt: skip
    assert isinstance(cfg, SSLConfig)
    path = pretrain_ssl(cfg, out=tmp_path / "run")
    assert path == tmp_path / "run" / "backbone.pt"
    used = (tmp_path / "run" / "ssl_images.txt").read_text()
    assert "1000.png" not in used and "1001.png" not in used and "1002.png" in used
    header = read_checkpoint(path, "backbone")
    assert header["source"]["ssl_objective"] == "simclr"
    stored = header["state_dict"] if "state_dict" in header else None
    det = build_detector(
        config=DetectorConfig(backbone=BackboneConfig(name=str(path), trainable_stages=2)),
        in_chans=3,
        image_mean=[0] * 3,
        image_std=[1] * 3,
    )
    clf = build_classifier(
        config=ClassifierConfig(
            task="binary",
            label_names=("spiral",),
            backbone=BackboneConfig(name=str(path), out_indices=(4,)),
        ),
        in_chans=3,
        image_size=16,
    )
    key = "layer3.0.conv1.weight"
    a = det.backbone.trunk.body.state_dict()[key]
    assert torch.equal(a, clf.trunk.body.state_dict()[key])
    if stored is not None and key in stored:
        assert torch.equal(a, stored[key])
    assert clf(torch.zeros(2, 3, 16, 16)).shape == (2, 1)


def test_pretrain_config_dispatch_and_bad_input(tmp_path):
    assert isinstance(load_pretrain_config(None), PretrainConfig)
    with pytest.raises(ConfigError, match="objective"):
        load_pretrain_config(None, ["objective=dino"])
    cfg = _config(tmp_path / "missing")
    with pytest.raises(InputError, match="missing: SSL image folder not found"):
        pretrain_ssl(cfg, out=tmp_path / "run")


def test_gaussian_blur_keeps_flux_and_shape():
    x = torch.zeros(2, 15, 15)
    x[:, 7, 7] = 1.0
    y = gaussian_blur(x, 1.0)
    assert y.shape == x.shape
    assert torch.allclose(y.sum((1, 2)), torch.ones(2), atol=1e-4)
    assert float(y[0, 7, 7]) < 0.2


def test_layer_decay_gives_one_group_per_block_for_a_last_map_classifier():
    from clumpdet.engine.classify import parameter_groups
    from clumpdet.models.classifier import ClassifierConfig, build_classifier

    cfg = ClassifierConfig(task="binary", label_names=("s",), backbone=BackboneConfig(
        name="resnet18", out_indices=(4,)))  # fmt: skip
    model = build_classifier(config=cfg, in_chans=3, image_size=32)
    groups = parameter_groups(model, lr=1e-4, layer_decay=0.75)
    lrs = [g["lr"] for g in groups]
    # 4 ResNet stages (stem joins layer1) + the head at the base lr
    assert lrs == pytest.approx([1e-4 * 0.75**k for k in (1, 2, 3, 4)] + [1e-4])
    n = sum(len(g["params"]) for g in groups)
    assert n == sum(1 for _ in model.parameters())


def test_top_k_stages_train_only_k_blocks_with_last_map_output():
    trunk = build_trunk(
        BackboneConfig(name="resnet18", out_indices=(4,), trainable_stages=1), in_chans=3
    )
    train = {n.split(".")[0] for n, p in trunk.body.named_parameters() if p.requires_grad}
    assert train == {"layer4"}


def test_head_first_epochs_freeze_the_trunk_then_release_it(tmp_path):
    from clumpdet.config import load_config
    from clumpdet.engine.classify import ClassifierModule, ClassifierTrainConfig

    cfg = load_config(
        ClassifierTrainConfig,
        "configs/classifier/zoobot_recipe.yaml",
        ["data.labels=x.csv", "data.images_dir=.", "model.backbone.name=resnet18"],
    )
    assert cfg.optim.lr == 1e-4 and cfg.optim.layer_decay == 0.75
    assert cfg.optim.weight_decay == 0.05 and cfg.model.dropout == 0.5
    module = ClassifierModule(cfg, in_chans=3, image_size=32)

    class _T:  # the two trainer attributes the hook reads
        current_epoch = 0

    for epoch, frozen in ((0, True), (cfg.optim.head_epochs, False)):
        _T.current_epoch = epoch
        module._trainer = _T
        module.on_train_epoch_start()
        flags = {p.requires_grad for p in module.model.trunk.parameters()}
        assert flags == {not frozen}
        assert all(p.requires_grad for p in module.model.head.parameters())
    with pytest.raises(ConfigError, match="layer_decay"):
        load_config(ClassifierTrainConfig, None, ["optim.layer_decay=1.5"])


def test_trunk_comparison_split_is_by_galaxy_and_summary_has_uncertainties(tmp_path):
    from clumpdet.experiments.trunk_comparison import (
        ComparisonConfig,
        _write_split,
        held_out_split,
        summarise,
        write_summary,
    )

    ids = np.array([str(i) for i in range(60)])
    labels = np.array([1] * 15 + [0] * 45)
    pool, held = held_out_split(ids, labels, fraction=1 / 3, seed=0)
    assert not set(pool) & set(held) and len(pool) + len(held) == 60
    assert sum(labels[int(i)] for i in held) == 5  # stratified: a third of the positives
    csv = tmp_path / "labels.csv"
    csv.write_text("galaxy_id,spiral\n" + "".join(f"{i},{y}\n" for i, y in zip(ids, labels)))
    held_file = tmp_path / "held.txt"
    held_file.write_text("\n".join(held))
    cfg = ComparisonConfig(labels=str(csv))
    split = _write_split(cfg, tmp_path / "split.csv", pool[:10], pool[10:15], held_file)
    rows = split.read_text().splitlines()[1:]
    assert sum(r.endswith(",test") for r in rows) == len(held) and len(rows) == 15 + len(held)
    runs = [
        {"trunk": t, "mode": "full", "seed": s, "accuracy": a, "auc": a}
        for t, vals in (("scratch", (0.6, 0.7)), ("ssl", (0.8, 0.9)))
        for s, a in enumerate(vals)
    ]
    summary = summarise(runs)
    assert summary["ssl"]["full"]["auc_mean"] == pytest.approx(0.85)
    assert summary["ssl"]["full"]["auc_sem"] == pytest.approx(np.std([0.8, 0.9], ddof=1) / 2**0.5)
    result = {
        "command": "cmd",
        "summary": summary,
        "n_pool": 40,
        "n_held_out": 20,
        "held_out_positive_fraction": 0.25,
        "config": {"n_labels": 10, "n_val": 5},
    }
    text = write_summary(result, tmp_path / "summary.md").read_text()
    assert "| ssl | full | 0.850" in text and "ssl full: +0.200" in text
    with pytest.raises(ConfigError, match="trunks"):
        ComparisonConfig(trunks=["imagenet"])
    from clumpdet.experiments.trunk_comparison import hanley_mcneil_se

    assert hanley_mcneil_se(0.8, 100, 300) < hanley_mcneil_se(0.8, 25, 75)
    assert hanley_mcneil_se(0.6, 127, 373) == pytest.approx(0.030, abs=0.002)
