"""The backbone family registry and the one builder that resolves a backbone name."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clumpdet.models.backbones.trunk import (
    BackboneConfig,
    Trunk,
    build_timm_trunk,
)
from clumpdet.registry import Registry

#: Family registry: name -> builder of a :class:`Trunk`.
BACKBONES: Registry = Registry("backbone")


def list_backbones() -> dict[str, str]:
    """Registered backbone names with a one-line description.

    Besides these, ``timm:<any timm model>``, ``hf_hub:<repo>``, ``local-dir:<folder>`` and the
    path of a clumpdet backbone checkpoint are accepted wherever a backbone name is.
    """
    return BACKBONES.describe()


def _register_timm(name: str, arch: str, help: str, *, offline_arch: str | None = None) -> None:
    def builder(
        *,
        in_chans: int = 3,
        weights: str = "none",
        out_indices: Sequence[int] = (1, 2, 3),
        trainable_stages: int = -1,
        freeze_bn: bool = True,
    ) -> Trunk:
        # hub sources fetch their config even without weights: use the bare architecture then
        use_arch = arch if (weights == "hub" or offline_arch is None) else offline_arch
        return build_timm_trunk(
            arch=use_arch,
            in_chans=in_chans,
            weights=weights,
            out_indices=out_indices,
            trainable_stages=trainable_stages,
            freeze_bn=freeze_bn,
        )

    builder.__doc__ = help
    BACKBONES.register(name, help=help)(builder)


for _depth in (18, 34, 50):
    _register_timm(
        f"resnet{_depth}",
        f"resnet{_depth}",
        f"ResNet-{_depth} (weights: none | imagenet [torchvision] | local file)",
    )
_register_timm(
    "convnext_nano", "convnext_nano", "timm ConvNeXt-nano (weights: none | imagenet | file)"
)
_register_timm(
    "efficientnet_b0", "efficientnet_b0", "timm EfficientNet-B0 (weights: none | imagenet | file)"
)
for _arch in ("convnext_nano", "resnet50", "efficientnet_b0"):
    _register_timm(
        f"zoobot_{_arch}",
        f"hf_hub:mwalmsley/zoobot-encoder-{_arch}",
        f"Zoobot {_arch} galaxy encoder from the HF hub (weights: hub | local file)",
        offline_arch=_arch,
    )


def build_trunk(config: BackboneConfig, *, in_chans: int) -> Trunk:
    """Build the trunk that ``config`` names.

    Parameters
    ----------
    config : BackboneConfig
        Name, weights, trainable depth and feature stages.
    in_chans : int
        Number of input bands of the data.
    """
    name = config.name
    kwargs = dict(
        in_chans=in_chans,
        weights=config.weights,
        out_indices=config.out_indices,
        trainable_stages=config.trainable_stages,
        freeze_bn=config.freeze_bn,
    )
    if name in BACKBONES:
        return BACKBONES.get(name)(**kwargs)
    if name.startswith("timm:"):
        return build_timm_trunk(arch=name[5:], **kwargs)
    if name.split(":", 1)[0] in ("hf_hub", "hf-hub", "local-dir"):
        return build_timm_trunk(arch=name, **kwargs)
    path = Path(name)
    if path.suffix in (".pt", ".pth", ".safetensors") or path.exists():
        from clumpdet.checkpoints import load_backbone  # checkpoints builds trunks: import late

        return load_backbone(
            path,
            in_chans=in_chans,
            out_indices=config.out_indices,
            trainable_stages=config.trainable_stages,
            freeze_bn=config.freeze_bn,
        )
    BACKBONES.get(name)  # raises RegistryError listing the registered names
    raise AssertionError("unreachable")
