"""Backbone trunks: ImageNet ResNets, any timm encoder, Zoobot, and our own galaxy trunks.

A *trunk* turns a ``(B, C, H, W)`` image batch into an ``OrderedDict`` of multi-scale feature
maps. Every trunk is a timm ``features_only`` model, so one code path serves ImageNet ResNets
(torchvision or timm weights), published Zoobot encoders (``hf_hub:mwalmsley/zoobot-encoder-*``),
any other timm architecture, and the trunks this project's galaxy classifiers export.

Weights
-------
``weights`` selects the initialisation:

``"none"``
    Random initialisation (train from scratch).
``"imagenet"``
    The real ImageNet weights: torchvision's for ``resnet18/34/50`` (downloaded once into the torch
    hub cache), timm's pretrained tag otherwise. Offline this fails with a clear message telling
    the user to pass a local file instead.
``"hub"``
    For ``hf_hub:``/``local-dir:`` names: timm's own pretrained loading (Zoobot encoders).
a path
    A local file: a torchvision/timm state dict (``.pth``/``.pt``/``.bin``/``.safetensors``) or a
    clumpdet backbone checkpoint (:func:`clumpdet.checkpoints.save_checkpoint`). This is the
    route for offline clusters. A clumpdet backbone checkpoint may also be given directly as
    ``name``.

The first convolution is adapted to any number of input bands exactly as timm does
(:func:`timm.models.adapt_input_conv`: repeat the RGB kernels and rescale).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clumpdet.errors import CheckpointError, ConfigError
from clumpdet.models.backbones.weights import (
    _TORCHVISION_RESNETS,
    _imagenet_preprocessing,
    _load_state_into,
    _torchvision_imagenet_state,
    load_trunk_weights,
)


@dataclass
class BackboneConfig:
    """How to build a trunk.

    Attributes
    ----------
    name : str
        A registered name (see :func:`list_backbones`), any timm model name prefixed with
        ``timm:``, a ``hf_hub:``/``local-dir:`` timm source, or the path of a clumpdet backbone
        checkpoint (``*.pt``).
    weights : str
        ``"none"``, ``"imagenet"``, ``"hub"`` or a local weights file (see module docstring).
    trainable_stages : int
        How many of the top feature stages train: 0 freezes the trunk, -1 trains everything
        (stem included). Frozen stages also freeze their BatchNorm statistics.
    out_indices : tuple of int
        Feature stages fed to the FPN (timm indices; for ResNets 1, 2, 3, 4 are strides 4..32).
        Clumps are 9-28 px, so the default stops at stride 16.
    freeze_bn : bool
        Pretrained trunks (``weights`` other than ``none``, or a backbone checkpoint) keep their
        BatchNorm statistics and affine parameters fixed (the default: detection batches are
        tiny). ``false`` lets them train, as fine-tuning to a new survey usually needs. Frozen
        stages (``trainable_stages``) always freeze theirs.
    """

    name: str = "resnet18"
    weights: str = "none"
    trainable_stages: int = -1
    out_indices: tuple[int, ...] = (1, 2, 3)
    freeze_bn: bool = True


class Trunk(nn.Module):
    """A multi-scale feature extractor with the metadata a detector or head needs.

    Parameters
    ----------
    body : nn.Module
        A timm ``features_only`` model returning a list of ``(B, C_k, H/s_k, W/s_k)`` tensors.
    arch : str
        The timm architecture (or ``hf_hub:``/``local-dir:`` source) it was built from.
    in_chans : int
        Number of input bands.
    pretrained_preprocessing : dict or None
        Preprocessing that came with the weights (a galaxy checkpoint's stretch and mean/std, or
        ImageNet mean/std); ``None`` when the weights impose none (scratch training).

    Attributes
    ----------
    channels : list of int
        Channels of each returned map.
    strides : list of int
        Pixel stride of each returned map.
    """

    def __init__(
        self,
        body: nn.Module,
        *,
        arch: str,
        in_chans: int,
        pretrained_preprocessing: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.body = body
        self.arch = arch
        self.in_chans = in_chans
        self.channels: list[int] = list(body.feature_info.channels())
        self.strides: list[int] = list(body.feature_info.reduction())
        self.pretrained_preprocessing = pretrained_preprocessing

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        """Return ``{"0": stride-s0 map, "1": ...}`` for a ``(B, C, H, W)`` batch."""
        return OrderedDict((str(i), f) for i, f in enumerate(self.body(x)))

    def stage_parameter_groups(self) -> list[list[str]]:
        """Parameter names grouped by feature stage, stem first.

        A parameter belongs to the stage whose module holds it; parameters between two stage
        modules (a stem, intermediate blocks not returned as features) join the next stage.
        """
        info = self.body.feature_info
        # every stage of the architecture, not only the returned ones (``out_indices``), so a
        # classifier pooling only the last map still has per-block groups (layer decay, top-k)
        names = [d["module"] for d in getattr(info, "info", [])] or info.module_name()
        stage_prefixes = []
        for name in names:
            stage_prefixes.append((name + ".", name.replace(".", "_") + "."))
        groups: list[list[str]] = [[] for _ in stage_prefixes]
        pending: list[str] = []
        for pname, _ in self.body.named_parameters():
            k = next(
                (i for i, pre in enumerate(stage_prefixes) if pname.startswith(pre)),
                None,
            )
            if k is None:
                pending.append(pname)
                continue
            groups[k].extend(pending)
            pending = []
            groups[k].append(pname)
        groups = [g for g in groups if g]  # stages without parameters or cut from the body
        if groups:
            groups[-1].extend(pending)  # trailing layers timm keeps after the last stage
        else:
            groups = [pending]
        return groups

    def set_trainable_stages(self, n: int) -> None:
        """Train only the top ``n`` stages (0: frozen trunk, -1 or >= n_stages: all).

        Frozen stages also get frozen BatchNorm statistics.
        """
        groups = self.stage_parameter_groups()
        n_train = len(groups) if n < 0 else min(n, len(groups))
        frozen = {p for g in groups[: len(groups) - n_train] for p in g}
        for pname, param in self.body.named_parameters():
            param.requires_grad_(pname not in frozen)
        if frozen:
            _freeze_bn(self.body, only=frozen)


def _freeze_bn(module: nn.Module, only: set[str] | None = None, prefix: str = "") -> None:
    """Replace BatchNorm layers under ``module`` by frozen ones, in place.

    Parameters
    ----------
    only : set of str, optional
        Restrict to BatchNorm layers whose weight parameter name is in this set.
    """
    from timm.layers import freeze_batch_norm_2d

    for name, child in list(module.named_children()):
        full = f"{prefix}{name}"
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            if only is None or f"{full}.weight" in only:
                setattr(module, name, freeze_batch_norm_2d(child))
        else:
            _freeze_bn(child, only, prefix=f"{full}.")


def _timm_features(
    arch: str, *, in_chans: int, out_indices: Sequence[int], pretrained: bool
) -> nn.Module:
    import timm

    try:
        return timm.create_model(
            arch,
            pretrained=pretrained,
            features_only=True,
            out_indices=tuple(out_indices),
            in_chans=in_chans,
        )
    except RuntimeError as exc:
        if "Unknown model" in str(exc):
            raise ConfigError(f"backbone: timm has no model {arch!r}") from None
        raise
    except (OSError, ValueError) as exc:  # network or hub errors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            arch,
            f"could not fetch pretrained weights ({first}); on an offline machine pass a local "
            "weights file as `weights: /path/to/file` or a timm `local-dir:` folder",
        ) from None


def build_timm_trunk(
    *,
    arch: str,
    in_chans: int = 3,
    weights: str = "none",
    out_indices: Sequence[int] = (1, 2, 3),
    trainable_stages: int = -1,
    freeze_bn: bool = True,
) -> Trunk:
    """Build a :class:`Trunk` from a timm architecture.

    Parameters
    ----------
    arch : str
        timm model name, or ``hf_hub:owner/repo`` / ``local-dir:/folder`` (timm sources).
    in_chans : int
        Input bands; the first convolution of pretrained weights is adapted to it.
    weights : {"none", "imagenet", "hub"} or path
        Initialisation, see the module docstring.
    out_indices : sequence of int
        Feature stages to return.
    trainable_stages : int
        Top stages left trainable (0 frozen, -1 all).
    freeze_bn : bool
        Freeze the BatchNorm layers of pretrained weights (see :class:`BackboneConfig`).
    """
    if in_chans < 1:
        raise ConfigError(f"backbone: in_chans must be >= 1, got {in_chans}")
    source = arch.split(":", 1)[0] if ":" in arch else None
    pretrained_pre: dict[str, Any] | None = None
    if weights == "none":
        body = _timm_features(arch, in_chans=in_chans, out_indices=out_indices, pretrained=False)
        trunk = Trunk(body, arch=arch, in_chans=in_chans)
    elif weights in ("imagenet", "hub"):
        if weights == "hub" and source not in ("hf_hub", "hf-hub", "local-dir"):
            raise ConfigError(
                f"backbone: weights 'hub' needs an hf_hub:/local-dir: name, not {arch!r}"
            )
        if arch in _TORCHVISION_RESNETS and weights == "imagenet":
            body = _timm_features(
                arch, in_chans=in_chans, out_indices=out_indices, pretrained=False
            )
            trunk = Trunk(body, arch=arch, in_chans=in_chans)
            _load_state_into(trunk, _torchvision_imagenet_state(arch), source_name=arch)
        else:
            body = _timm_features(arch, in_chans=in_chans, out_indices=out_indices, pretrained=True)
            trunk = Trunk(body, arch=arch, in_chans=in_chans)
        pretrained_pre = _imagenet_preprocessing(in_chans)
    else:
        body = _timm_features(arch, in_chans=in_chans, out_indices=out_indices, pretrained=False)
        trunk = Trunk(body, arch=arch, in_chans=in_chans)
        pretrained_pre = load_trunk_weights(trunk, weights) or _imagenet_preprocessing(in_chans)
    trunk.pretrained_preprocessing = pretrained_pre
    if weights != "none" and freeze_bn:
        # Pretrained statistics are meaningful: never update them with tiny detection batches.
        _freeze_bn(trunk.body)
    trunk.set_trainable_stages(trainable_stages)
    return trunk


def bare_arch(trunk: Trunk) -> str:
    """The timm architecture name without a hub/local source (rebuildable offline)."""
    cfg = getattr(trunk.body, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture") if isinstance(cfg, Mapping) else None
    return arch or trunk.arch.split(":", 1)[-1]
