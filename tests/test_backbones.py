"""Backbone registry: every family builds, trains, loads local weights, adapts bands, freezes."""

from __future__ import annotations

import pytest
import torch

from clumpdet.errors import CheckpointError, RegistryError
from clumpdet.models.backbones import (
    BackboneConfig,
    build_timm_trunk,
    build_trunk,
    list_backbones,
)
from clumpdet.models.detector import DetectorConfig, build_detector


def test_registry_lists_families():
    names = list_backbones()
    for n in (
        "resnet18",
        "resnet34",
        "resnet50",
        "convnext_nano",
        "efficientnet_b0",
        "zoobot_convnext_nano",
    ):
        assert names.get(n)


def test_unknown_backbone_lists_registered():
    with pytest.raises(RegistryError, match="registered: .*resnet18"):
        build_trunk(BackboneConfig(name="resnet9000"), in_chans=3)


@pytest.mark.parametrize(
    ("name", "out_indices", "anchors"),
    [
        ("resnet18", (1, 2, 3), ((8.0,), (16.0,), (32.0,))),
        ("convnext_nano", (0, 1, 2), ((8.0,), (16.0,), (32.0,))),
        ("efficientnet_b0", (1, 2, 3), ((8.0,), (16.0,), (32.0,))),
        ("timm:mobilenetv3_small_050", (1, 2, 3), ((8.0,), (16.0,), (32.0,))),
    ],
)
def test_forward_backward_every_family(name, out_indices, anchors):
    """Train-mode forward/backward with one real and one empty target; eval-mode outputs."""
    torch.manual_seed(0)
    cfg = DetectorConfig(
        backbone=BackboneConfig(name=name, out_indices=out_indices), anchor_sizes=anchors
    )
    model = build_detector(config=cfg, in_chans=4, image_mean=[0] * 4, image_std=[1] * 4)
    images = [torch.rand(4, 64, 64), torch.rand(4, 64, 64)]
    targets = [
        {"boxes": torch.tensor([[10.0, 10.0, 26.0, 26.0]]), "labels": torch.tensor([1])},
        {"boxes": torch.zeros((0, 4)), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    model.train()
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    grads = [p.grad for p in model.backbone.trunk.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    # torchvision's contract: an image with no boxes contributes no box-regression loss
    only_empty = model([images[1]], [targets[1]])
    assert float(only_empty["loss_box_reg"].detach()) == 0.0
    assert float(only_empty["loss_rpn_box_reg"].detach()) == 0.0
    model.eval()
    with torch.inference_mode():
        out = model(images)
    assert out[0]["boxes"].shape[1] == 4 and out[0]["labels"].dtype == torch.int64


def test_trainable_stages_freeze_bottom_up():
    frozen = build_trunk(BackboneConfig(name="resnet18", trainable_stages=0), in_chans=3)
    assert not any(p.requires_grad for p in frozen.parameters())
    top1 = build_trunk(BackboneConfig(name="resnet18", trainable_stages=1), in_chans=3)
    trainable = {n.split(".")[1] for n, p in top1.named_parameters() if p.requires_grad}
    assert trainable == {"layer3"}
    full = build_trunk(BackboneConfig(name="resnet18", trainable_stages=-1), in_chans=3)
    assert all(p.requires_grad for p in full.parameters())


def test_local_torchvision_weights_adapt_to_bands(tmp_path):
    """A torchvision ResNet state dict on disk loads into a 5-band trunk (conv1 adapted)."""
    import torchvision

    torch.manual_seed(1)
    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-local.pth"
    torch.save(tv.state_dict(), path)
    trunk = build_trunk(BackboneConfig(name="resnet18", weights=str(path)), in_chans=5)
    assert torch.equal(trunk.body.state_dict()["layer2.0.conv1.weight"], tv.layer2[0].conv1.weight)
    w = trunk.body.state_dict()["conv1.weight"]
    assert w.shape == (64, 5, 7, 7)
    # timm's adapt_input_conv: repeat RGB kernels and rescale by 3 / C
    expected = tv.conv1.weight.repeat(1, 2, 1, 1)[:, :5] * (3 / 5)
    assert torch.allclose(w, expected)
    assert trunk.pretrained_preprocessing["mean"][:3] == pytest.approx([0.485, 0.456, 0.406])


def test_local_safetensors_weights(tmp_path):
    from safetensors.torch import save_file

    src = build_timm_trunk(arch="efficientnet_b0", in_chans=3)
    path = tmp_path / "eff.safetensors"
    save_file({k: v.contiguous() for k, v in src.body.state_dict().items()}, str(path))
    trunk = build_trunk(BackboneConfig(name="efficientnet_b0", weights=str(path)), in_chans=3)
    key = "blocks.1.0.conv_pw.weight"
    assert torch.equal(trunk.body.state_dict()[key], src.body.state_dict()[key])


def test_wrong_weights_file_is_clear(tmp_path):
    bad = tmp_path / "garbage.pth"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match="garbage.pth: not a readable weights file"):
        build_trunk(BackboneConfig(name="resnet18", weights=str(bad)), in_chans=3)
    other = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, other)
    with pytest.raises(CheckpointError, match="does not fit backbone 'resnet18'"):
        build_trunk(BackboneConfig(name="resnet18", weights=str(other)), in_chans=3)
    with pytest.raises(CheckpointError, match="not found"):
        build_trunk(BackboneConfig(name="resnet18", weights=str(tmp_path / "nope.pth")), in_chans=3)


def test_offline_imagenet_request_fails_clearly(monkeypatch):
    import torchvision.models as tvm

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvm.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", no_network)
    with pytest.raises(CheckpointError, match="weights: /path/to/file"):
        build_trunk(BackboneConfig(name="resnet18", weights="imagenet"), in_chans=3)


def test_class_agnostic_nms_leaves_no_cross_class_duplicates():
    from torchvision.ops import box_iou

    torch.manual_seed(3)
    model = build_detector(
        config=DetectorConfig(), in_chans=3, image_mean=[0] * 3, image_std=[1] * 3
    ).eval()
    with torch.inference_mode():
        (out,) = model([torch.rand(3, 96, 96)])
    assert len(out["boxes"]) > 1  # an untrained head scores many random boxes
    iou = box_iou(out["boxes"], out["boxes"]).fill_diagonal_(0)
    assert float(iou.max()) <= 0.2 + 1e-6
    model.class_agnostic_nms = False
    with torch.inference_mode():
        (plain,) = model([torch.rand(3, 96, 96)])
    assert len(plain["boxes"]) >= 1
