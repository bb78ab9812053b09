"""Backbone (trunk) registry: ImageNet ResNets, any timm encoder, Zoobot, and our own galaxy trunks.

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
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clumpdet.checkpoints import BACKBONE_FORMAT
from clumpdet.errors import CheckpointError, ConfigError
from clumpdet.registry import Registry
from clumpdet.utils import load_torch_file

#: Family registry: name -> builder of a :class:`Trunk`.
BACKBONES: Registry = Registry("backbone")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_TORCHVISION_RESNETS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
}


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
    """

    name: str = "resnet18"
    weights: str = "none"
    trainable_stages: int = -1
    out_indices: tuple[int, ...] = (1, 2, 3)


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
        stage_prefixes = []
        for name in self.body.feature_info.module_name():
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
        groups[-1].extend(pending)  # trailing layers timm keeps after the last stage
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


def list_backbones() -> dict[str, str]:
    """Registered backbone names with a one-line description.

    Besides these, ``timm:<any timm model>``, ``hf_hub:<repo>``, ``local-dir:<folder>`` and the
    path of a clumpdet backbone checkpoint are accepted wherever a backbone name is.
    """
    return BACKBONES.describe()


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


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Read a weights file without unpickling code.

    Parameters
    ----------
    path : str or Path
        ``.safetensors``, or a torch file (``.pt``/``.pth``/``.bin``/``.ckpt``) holding a state
        dict, ``{"state_dict": ...}``, ``{"model": ...}`` or a clumpdet backbone checkpoint.

    Returns
    -------
    state_dict : dict of str -> Tensor
    preprocessing : dict or None
        The preprocessing stored in a clumpdet backbone checkpoint, else ``None``.
    """
    path = Path(path)
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path))), None
        except Exception as exc:
            raise CheckpointError(path, f"not a readable weights file ({exc})") from None
    obj = load_torch_file(path, what="weights file")
    if not isinstance(obj, Mapping):
        raise CheckpointError(path, f"expected a state dict, found {type(obj).__name__}")
    preprocessing = None
    if obj.get("format") == BACKBONE_FORMAT:
        preprocessing = obj.get("preprocessing")
        obj = obj["state_dict"]
    elif "format" in obj:
        raise CheckpointError(
            path, f"is a {obj['format']!r} checkpoint, not a backbone or weights file"
        )
    else:
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(path, "holds no tensors")
    return tensors, preprocessing


def load_trunk_weights(trunk: Trunk, path: str | Path) -> dict[str, Any] | None:
    """Load a local weights file into ``trunk``, adapting the first conv to its band count.

    Keys are matched by name (torchvision ResNet and timm ResNet share names); prefixes such as
    ``body.``, ``backbone.`` or ``model.`` are stripped. Every trunk weight must be present.

    Returns
    -------
    dict or None
        Preprocessing stored with the weights, if any.
    """
    from timm.models import adapt_input_conv

    state, preprocessing = read_state_dict(path)
    target = trunk.body.state_dict()
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        k = key
        for prefix in ("module.", "trunk.", "body.", "backbone.body.", "backbone.", "model."):
            if k.startswith(prefix) and k[len(prefix) :] in target:
                k = k[len(prefix) :]
                break
        if k in target:
            cleaned[k] = value
    missing = [k for k in target if k not in cleaned and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(
            path,
            f"does not fit backbone {trunk.arch!r}: {len(missing)} trunk weights missing "
            f"(e.g. {missing[0]!r})",
        )
    for k, v in cleaned.items():
        if v.ndim == 4 and target[k].ndim == 4 and v.shape[1] != target[k].shape[1]:
            if v.shape[0] == target[k].shape[0] and v.shape[2:] == target[k].shape[2:]:
                cleaned[k] = adapt_input_conv(target[k].shape[1], v)
        if cleaned[k].shape != target[k].shape:
            raise CheckpointError(
                path,
                f"weight {k!r} has shape {tuple(cleaned[k].shape)}, backbone "
                f"{trunk.arch!r} expects {tuple(target[k].shape)}",
            )
    trunk.body.load_state_dict(cleaned, strict=False)
    return preprocessing


def _imagenet_preprocessing(in_chans: int) -> dict[str, Any]:
    mean = [IMAGENET_MEAN[i % 3] for i in range(in_chans)]
    std = [IMAGENET_STD[i % 3] for i in range(in_chans)]
    return {"stretch": "asinh", "mean": mean, "std": std}


def _torchvision_imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    import torchvision.models as tvm

    weights = getattr(tvm, _TORCHVISION_RESNETS[arch]).IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # URLError, OSError, hash mismatch ...
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise CheckpointError(
            arch,
            f"could not download torchvision ImageNet weights ({first}); on an offline machine "
            f"download {weights.url} elsewhere and pass `weights: /path/to/file.pth`",
        ) from None


def build_timm_trunk(
    *,
    arch: str,
    in_chans: int = 3,
    weights: str = "none",
    out_indices: Sequence[int] = (1, 2, 3),
    trainable_stages: int = -1,
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
    if weights != "none":
        # Pretrained statistics are meaningful: never update them with tiny detection batches.
        _freeze_bn(trunk.body)
    trunk.set_trainable_stages(trainable_stages)
    return trunk


def _load_state_into(trunk: Trunk, state: Mapping[str, torch.Tensor], *, source_name: str) -> None:
    """Load an in-memory state dict (e.g. a download) via the same path as local files."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"{source_name}.pt"
        torch.save(dict(state), p)
        load_trunk_weights(trunk, p)


def _register_timm(name: str, arch: str, help: str, *, offline_arch: str | None = None) -> None:
    def builder(
        *,
        in_chans: int = 3,
        weights: str = "none",
        out_indices: Sequence[int] = (1, 2, 3),
        trainable_stages: int = -1,
    ) -> Trunk:
        # hub sources fetch their config even without weights: use the bare architecture then
        use_arch = arch if (weights == "hub" or offline_arch is None) else offline_arch
        return build_timm_trunk(
            arch=use_arch,
            in_chans=in_chans,
            weights=weights,
            out_indices=out_indices,
            trainable_stages=trainable_stages,
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
    )
    if name in BACKBONES:
        return BACKBONES.get(name)(**kwargs)
    if name.startswith("timm:"):
        return build_timm_trunk(arch=name[5:], **kwargs)
    if name.split(":", 1)[0] in ("hf_hub", "hf-hub", "local-dir"):
        return build_timm_trunk(arch=name, **kwargs)
    path = Path(name)
    if path.suffix in (".pt", ".pth", ".safetensors") or path.exists():
        from clumpdet.checkpoints import load_backbone

        return load_backbone(
            path,
            in_chans=in_chans,
            out_indices=config.out_indices,
            trainable_stages=config.trainable_stages,
        )
    BACKBONES.get(name)  # raises RegistryError listing the registered names
    raise AssertionError("unreachable")


def bare_arch(trunk: Trunk) -> str:
    """The timm architecture name without a hub/local source (rebuildable offline)."""
    cfg = getattr(trunk.body, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture") if isinstance(cfg, Mapping) else None
    return arch or trunk.arch.split(":", 1)[-1]


__all__ = [
    "BACKBONES",
    "BackboneConfig",
    "Trunk",
    "build_timm_trunk",
    "build_trunk",
    "list_backbones",
    "load_trunk_weights",
    "read_state_dict",
]
