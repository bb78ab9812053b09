"""Backbone weight files: safe reading, loading into a trunk (band adaptation), ImageNet stats.

Nothing executable is unpickled (:func:`clumpdet.utils.load_torch_file`); the first convolution
of a weights file is adapted to the trunk's band count as timm does.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from clumpdet.checkpoints import BACKBONE_FORMAT
from clumpdet.errors import CheckpointError
from clumpdet.utils import load_torch_file

if TYPE_CHECKING:
    from clumpdet.models.backbones.trunk import Trunk

#: Format tag stored in backbone checkpoints written by this package.

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_TORCHVISION_RESNETS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
}


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


def _load_state_into(trunk: Trunk, state: Mapping[str, torch.Tensor], *, source_name: str) -> None:
    """Load an in-memory state dict (e.g. a download) via the same path as local files."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"{source_name}.pt"
        torch.save(dict(state), p)
        load_trunk_weights(trunk, p)
