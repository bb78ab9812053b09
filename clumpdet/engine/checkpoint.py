"""Detector checkpoints: weights plus everything needed to use them, loaded without unpickling.

A checkpoint is a ``torch.save``d dict of tensors and JSON-like values only, so
``torch.load(path, weights_only=True)`` reads it; nothing executable is ever unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clumpdet import __version__
from clumpdet.config import from_dict
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.errors import CheckpointError
from clumpdet.models.backbones import BACKBONES, bare_arch
from clumpdet.models.detector import DetectorConfig, build_detector
from clumpdet.utils import atomic_path, file_sha256, load_torch_file

DETECTOR_FORMAT = "clumpdet-detector"


@dataclass
class DetectorBundle:
    """A loaded detector with its metadata.

    Attributes
    ----------
    model : torchvision FasterRCNN
        In eval mode.
    model_config : DetectorConfig
    preprocessing : Preprocessing
        Bands, stretch and mean/std the model was trained with (mean/std are applied inside the
        model; feed it ``preprocessing.stretch_only(image)``).
    class_names : tuple of str
        Label 1 first.
    image_size : tuple of int
        ``(H, W)`` of the training images; larger inputs are tiled at this size.
    meta : dict
        Everything else stored (config, metrics, version).
    path : Path or None
    sha256 : str
        Short hash of the checkpoint file (catalogue provenance).
    """

    model: torch.nn.Module
    model_config: DetectorConfig
    preprocessing: Preprocessing
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    meta: dict[str, Any]
    path: Path | None = None
    sha256: str = ""


def save_detector_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    model_config: Mapping[str, Any],
    preprocessing: Preprocessing,
    image_size: tuple[int, int],
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Write a detector checkpoint atomically.

    Parameters
    ----------
    path : str or Path
        Output ``.pt`` file.
    model : nn.Module
        The detector (its ``state_dict`` is stored on CPU).
    model_config : mapping
        ``clumpdet.config.to_dict(DetectorConfig)``.
    preprocessing : Preprocessing
        Bands, stretch and mean/std used in training.
    image_size : (int, int)
        Training image ``(H, W)`` in pixels (tile size for large images).
    config : mapping, optional
        The resolved training config.
    metrics : mapping, optional
        Best validation metrics (floats).
    """
    payload = {
        "format": DETECTOR_FORMAT,
        "clumpdet_version": __version__,
        "model_config": dict(model_config),
        "class_names": list(model_config.get("class_names", ())),
        "backbone": dict(model_config.get("backbone", {})),
        "bands": list(preprocessing.bands),
        "preprocessing": preprocessing.to_dict(),
        "image_size": [int(image_size[0]), int(image_size[1])],
        "config": dict(config or {}),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "backbone_arch": bare_arch(model.backbone.trunk),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_detector_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu"
) -> DetectorBundle:
    """Load a detector checkpoint (``weights_only=True``) and rebuild the model.

    Raises
    ------
    CheckpointError
        Missing, corrupt or truncated file, or a checkpoint of another kind (e.g. a backbone
        checkpoint or a Lightning ``.ckpt``).
    """
    path = Path(path)
    obj = load_torch_file(path, what="checkpoint")
    if not isinstance(obj, Mapping) or obj.get("format") != DETECTOR_FORMAT:
        if isinstance(obj, Mapping) and "pytorch-lightning_version" in obj:
            kind = "a Lightning training checkpoint (use RUNDIR/model.pt, or --resume)"
        elif isinstance(obj, Mapping):
            kind = f"a {obj.get('format', 'plain state dict')!r} file"
        else:
            kind = type(obj).__name__
        raise CheckpointError(path, f"is not a clumpdet detector checkpoint; it is {kind}")
    try:
        model_config = from_dict(DetectorConfig, obj["model_config"], where=f"{path}:model_config")
        preprocessing = Preprocessing.from_dict(obj["preprocessing"])
        # the trunk weights come from the checkpoint: never fetch or read pretrained ones again
        model_config.backbone.weights = "none"
        name = model_config.backbone.name
        if name not in BACKBONES and not name.startswith("timm:"):
            # a galaxy-checkpoint path or hub source: rebuild the bare timm architecture
            model_config.backbone.name = f"timm:{obj['backbone_arch']}"
        model = _rebuild(model_config, preprocessing, obj["state_dict"])
    except CheckpointError:
        raise
    except (KeyError, RuntimeError, ValueError) as exc:
        raise CheckpointError(path, f"checkpoint is incomplete or inconsistent ({exc})") from None
    model.to(device).eval()
    return DetectorBundle(
        model=model,
        model_config=model_config,
        preprocessing=preprocessing,
        class_names=tuple(obj["class_names"]),
        image_size=(int(obj["image_size"][0]), int(obj["image_size"][1])),
        meta={k: v for k, v in obj.items() if k != "state_dict"},
        path=path,
        sha256=file_sha256(path),
    )


def _rebuild(
    model_config: DetectorConfig, preprocessing: Preprocessing, state: Mapping[str, torch.Tensor]
) -> torch.nn.Module:
    model = build_detector(
        config=model_config,
        in_chans=preprocessing.n_bands,
        image_mean=preprocessing.mean,
        image_std=preprocessing.std,
    )
    missing, unexpected = model.load_state_dict(dict(state), strict=False)
    # trained with frozen BatchNorm (pretrained trunks), rebuilt with plain BatchNorm: the
    # eval-mode maths is identical; only the step counters are absent
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise RuntimeError(
            f"{len(missing)} missing / {len(unexpected)} unexpected weights "
            f"(e.g. {(missing or unexpected)[0]!r})"
        )
    return model


def restore_best_weights(module: torch.nn.Module, callback) -> str:
    """Load the best (else last) weights a Lightning ``ModelCheckpoint`` saved into ``module``.

    The file was written by this same run, so it is trusted and read with ``weights_only=False``
    (Lightning checkpoints hold optimiser and callback state). Returns the path used, or ``""``
    when nothing was saved.
    """
    path = callback.best_model_path or callback.last_model_path
    if path:
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    return path
