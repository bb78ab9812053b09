"""Checkpoints of detectors, classifiers and backbones: one format, one loader per kind.

Every checkpoint is a ``torch.save``d dict of tensors and JSON-like values only, read back with
``torch.load(path, weights_only=True)``: nothing executable is ever unpickled. The header shared
by all kinds:

``format``
    ``clumpdet-detector``, ``clumpdet-classifier`` or ``clumpdet-backbone`` (:data:`FORMATS`).
``clumpdet_version``
    The package version that wrote the file.
``input``
    What the model was trained on: ``{"kind": "fits", "unit": "nanomaggy"}`` (physical units,
    the FITS ``BUNIT``; ``"unknown"`` when the files do not say), ``{"kind": "png" | "jpeg",
    "unit": "8-bit colour / 255", "channels": "red=i green=r blue=g", "bin": "2"}`` (colour
    channel to band order and the pixel binning applied before the network, when the trainer
    records them), or ``{"kind": "unknown", "unit": ""}`` when the trainer
    did not record it (:data:`INPUT_KINDS`).
``preprocessing``
    :meth:`clumpdet.data.preprocessing.Preprocessing.to_dict`.
``state_dict``
    The weights, on CPU.

Detector checkpoints also store ``detection_kind`` (``"clumps"``: clump catalogues with host
photometry; ``"sources"``: star/galaxy catalogues, :data:`DETECTION_KINDS`) and ``pixel_scale``
(arcsec/pixel of the training images, read from their WCS; inputs at another scale are resampled
to it by :class:`~clumpdet.inference.predictor.Predictor`) and ``psf_fwhm_px`` (median PSF FWHM
of the training images in their pixels, from the COCO ``images`` records; None when unknown).
Detector checkpoints written before ``pixel_scale`` existed load with
:data:`DEFAULT_PIXEL_SCALE` (0.396"/px, the SDSS scale of every simulated clump set of that time).

Older checkpoints, written before ``input`` and ``detection_kind`` existed, load with defaults
derived once, in :func:`_legacy_defaults`: a detector's detection kind is ``"clumps"`` when a
class name contains ``"clump"`` and ``"sources"`` otherwise, and its input is
``{"kind": "fits", "unit": "unknown"}`` (every detector training path of that time read FITS);
classifier and backbone inputs are ``{"kind": "unknown", "unit": ""}``.

Loading (:func:`load_detector`, :func:`load_classifier`, :func:`load_backbone`) checks the
header once (:func:`read_checkpoint`) and turns every problem into a one-line
:class:`~clumpdet.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch

from clumpdet import __version__
from clumpdet.config import from_dict
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.errors import CheckpointError
from clumpdet.utils import atomic_path, file_sha256, load_torch_file

if TYPE_CHECKING:
    from torch import nn

    from clumpdet.models.backbones import Trunk
    from clumpdet.models.classifier import ClassifierConfig
    from clumpdet.models.detector import DetectorConfig

CheckpointKind = Literal["detector", "classifier", "backbone"]

#: Training pixel scale (arcsec/pixel) assumed for detector checkpoints that do not record one.
DEFAULT_PIXEL_SCALE: float = 0.396

#: ``format`` tag of each checkpoint kind.
FORMATS: dict[str, str] = {
    "detector": "clumpdet-detector",
    "classifier": "clumpdet-classifier",
    "backbone": "clumpdet-backbone",
}
DETECTOR_FORMAT = FORMATS["detector"]
CLASSIFIER_FORMAT = FORMATS["classifier"]
BACKBONE_FORMAT = FORMATS["backbone"]

#: What a detector finds: clumps inside galaxies, or stars and galaxies (sources).
DETECTION_KINDS: tuple[str, ...] = ("clumps", "sources")

#: Kinds of training input: FITS pixels in physical units, 8-bit colour rasters, not recorded.
INPUT_KINDS: tuple[str, ...] = ("fits", "png", "jpeg", "unknown")

#: ``input`` of a checkpoint whose trainer did not record it.
UNKNOWN_INPUT: dict[str, str] = {"kind": "unknown", "unit": ""}

_RASTER_UNIT = "8-bit colour / 255"


def input_kind_of(path: str | Path) -> dict[str, str]:
    """Describe a training image file as a checkpoint ``input`` record.

    Parameters
    ----------
    path : str or Path
        A FITS, PNG or JPEG image.

    Returns
    -------
    dict
        ``{"kind": "fits", "unit": <BUNIT or "unknown">}`` for FITS (the unit is read from the
        header), ``{"kind": "png" | "jpeg", "unit": "8-bit colour / 255"}`` for rasters.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return {"kind": "png", "unit": _RASTER_UNIT}
    if suffix in (".jpg", ".jpeg"):
        return {"kind": "jpeg", "unit": _RASTER_UNIT}
    from clumpdet.data.images import read_image

    unit = str(read_image(path, nan_policy="zero").header.get("BUNIT", "")).strip()
    return {"kind": "fits", "unit": unit or "unknown"}


def _check_input(record: Mapping[str, Any] | None, where: str | Path) -> dict[str, str]:
    rec = dict(UNKNOWN_INPUT if record is None else record)
    if rec.get("kind") not in INPUT_KINDS or not isinstance(rec.get("unit", ""), str):
        raise CheckpointError(
            where, f"input {record!r} must be {{kind: one of {list(INPUT_KINDS)}, unit: str}}"
        )
    out = {"kind": str(rec["kind"]), "unit": str(rec.get("unit", ""))}
    if "channels" in rec:  # colour input: "red=i green=r blue=g" (SDSS / Galaxy Zoo order)
        out["channels"] = str(rec["channels"])
    if "bin" in rec:  # colour input binned b x b before the network (detection does the same)
        out["bin"] = str(int(rec["bin"]))
    return out


def _check_detection_kind(kind: Any, where: str | Path) -> str:
    if kind not in DETECTION_KINDS:
        raise CheckpointError(
            where, f"detection kind {kind!r} is not one of {list(DETECTION_KINDS)}"
        )
    return str(kind)


def _check_pixel_scale(value: Any, where: str | Path) -> float:
    scale = DEFAULT_PIXEL_SCALE if value is None else value
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        scale = float("nan")
    if not scale > 0 or scale == float("inf"):
        raise CheckpointError(where, f"pixel_scale {value!r} must be a positive arcsec/pixel")
    return scale


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value or {}, default=float))


def save_checkpoint(
    path: str | Path,
    *,
    kind: CheckpointKind,
    model: nn.Module,
    preprocessing: Preprocessing,
    model_config: Mapping[str, Any] | None = None,
    image_size: int | Sequence[int] | None = None,
    input: Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
    pixel_scale: float | None = None,
    psf_fwhm_px: float | None = None,
) -> Path:
    """Write a checkpoint of any kind atomically (``weights_only``-loadable).

    Parameters
    ----------
    path : str or Path
        Output ``.pt`` file.
    kind : {"detector", "classifier", "backbone"}
        What ``model`` is.
    model : nn.Module
        The detector, the classifier, or the :class:`~clumpdet.models.backbones.Trunk`; its
        ``state_dict`` (the trunk's ``body``) is stored on CPU.
    preprocessing : Preprocessing
        Bands, stretch and mean/std used in training.
    model_config : mapping
        ``clumpdet.config.to_dict`` of the ``DetectorConfig`` / ``ClassifierConfig`` (required
        for detectors and classifiers; its ``detection_kind`` / ``task`` is copied into the
        header). Unused for backbones.
    image_size : int or (int, int)
        Training image size in pixels: ``(H, W)`` for detectors (the inference tile size), the
        side for classifiers. Unused for backbones.
    input : mapping, optional
        :func:`input_kind_of` of the training images; default :data:`UNKNOWN_INPUT`.
    config : mapping, optional
        The resolved training config.
    metrics : mapping, optional
        Validation / test metrics (JSON-safe after float conversion).
    source : mapping, optional
        Backbones: provenance (task, run ...).
    pixel_scale : float, optional
        Detectors: arcsec/pixel of the training images; default :data:`DEFAULT_PIXEL_SCALE`.
    psf_fwhm_px : float, optional
        Detectors: median PSF FWHM of the training images in their pixels (None: not known).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    CheckpointError
        A missing ``model_config`` or ``image_size``, or a bad ``input`` / detection kind.
    """
    if kind not in FORMATS:
        raise CheckpointError(path, f"unknown checkpoint kind {kind!r}; use one of {list(FORMATS)}")
    payload: dict[str, Any] = {
        "format": FORMATS[kind],
        "clumpdet_version": __version__,
        "input": _check_input(input, path),
        "preprocessing": preprocessing.to_dict(),
    }
    if kind == "backbone":
        from clumpdet.models.backbones import bare_arch

        payload.update(
            arch=bare_arch(model),
            in_chans=int(model.in_chans),
            out_indices=list(model.body.feature_info.out_indices),
            source=dict(source or {}),
        )
        state = model.body.state_dict()
    else:
        if model_config is None or image_size is None:
            raise CheckpointError(path, f"a {kind} checkpoint needs model_config and image_size")
        payload.update(
            model_config=dict(model_config),
            config=dict(config or {}),
            metrics=_jsonable(metrics),
        )
        if kind == "detector":
            from clumpdet.models.backbones import bare_arch

            h, w = image_size  # type: ignore[misc]
            payload.update(
                detection_kind=_check_detection_kind(model_config.get("detection_kind"), path),
                class_names=list(model_config.get("class_names", ())),
                bands=list(preprocessing.bands),
                backbone=dict(model_config.get("backbone", {})),
                backbone_arch=bare_arch(model.backbone.trunk),
                image_size=[int(h), int(w)],
                pixel_scale=_check_pixel_scale(pixel_scale, path),
                psf_fwhm_px=None if psf_fwhm_px is None else float(psf_fwhm_px),
            )
        else:
            from clumpdet.tasks import label_names

            # binary / multiclass tasks take their names from the data (model.label_names)
            names = model_config.get("label_names") or label_names(model_config["task"])
            payload.update(
                task=model_config["task"],
                image_size=int(image_size),  # type: ignore[arg-type]
                label_names=list(names),
            )
        state = model.state_dict()
    payload["state_dict"] = {k: v.detach().cpu() for k, v in state.items()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | Path, kind: CheckpointKind) -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``), check it is a clumpdet ``kind`` checkpoint.

    Legacy files get their ``input`` (and, for detectors, ``detection_kind``) filled in by the
    documented defaults (module docstring).

    Returns
    -------
    dict
        The stored payload, ``state_dict`` included.

    Raises
    ------
    CheckpointError
        ``"<path>: not a readable checkpoint (...)"``, ``"<path>: checkpoint not found"``, or
        ``"<path>: is not a clumpdet <kind> checkpoint; it is <what>"``.
    """
    path = Path(path)
    obj = load_torch_file(path, what="checkpoint")
    if not isinstance(obj, Mapping) or obj.get("format") != FORMATS[kind]:
        if isinstance(obj, Mapping) and "pytorch-lightning_version" in obj:
            found = "a Lightning training checkpoint (use RUNDIR/model.pt, or --resume)"
        elif isinstance(obj, Mapping):
            found = f"a {obj.get('format', 'plain state dict')!r} file"
        else:
            found = f"a {type(obj).__name__}"
        raise CheckpointError(path, f"is not a clumpdet {kind} checkpoint; it is {found}")
    obj = dict(obj)
    if not isinstance(obj.get("state_dict"), Mapping):
        raise CheckpointError(path, f"{kind} checkpoint holds no state_dict")
    for key, value in _legacy_defaults(obj, kind).items():
        obj.setdefault(key, value)
    obj["input"] = _check_input(obj["input"], path)
    if kind == "detector":
        obj["detection_kind"] = _check_detection_kind(obj["detection_kind"], path)
        obj["pixel_scale"] = _check_pixel_scale(obj["pixel_scale"], path)
    return obj


def _legacy_defaults(obj: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """Header values of checkpoints written before they were stored (module docstring)."""
    if kind != "detector":
        return {"input": dict(UNKNOWN_INPUT)}
    names = obj.get("class_names") or obj.get("model_config", {}).get("class_names", ())
    clumps = any("clump" in str(c) for c in names)
    return {
        "input": {"kind": "fits", "unit": "unknown"},
        "detection_kind": "clumps" if clumps else "sources",
        "pixel_scale": DEFAULT_PIXEL_SCALE,
    }


@dataclass
class DetectorBundle:
    """A loaded detector with its metadata.

    Attributes
    ----------
    model : torchvision FasterRCNN
        In eval mode.
    model_config : DetectorConfig
        Its ``detection_kind`` is the checkpoint's.
    preprocessing : Preprocessing
        Bands, stretch and mean/std the model was trained with (mean/std are applied inside the
        model; feed it ``preprocessing.stretch_only(image)``).
    class_names : tuple of str
        Label 1 first.
    image_size : tuple of int
        ``(H, W)`` of the training images; larger inputs are tiled at this size.
    detection_kind : str
        ``"clumps"`` or ``"sources"``: picks the catalogue columns.
    input : dict
        The training input kind and unit (module docstring).
    meta : dict
        Everything else stored (config, metrics, version).
    path : Path or None
    sha256 : str
        Short hash of the checkpoint file (catalogue provenance).
    pixel_scale : float
        Arcsec/pixel of the training images (:data:`DEFAULT_PIXEL_SCALE` for old checkpoints).
    psf_fwhm_px : float or None
        Median PSF FWHM of the training images, px (None when the checkpoint does not say).
    """

    model: torch.nn.Module
    model_config: DetectorConfig
    preprocessing: Preprocessing
    class_names: tuple[str, ...]
    image_size: tuple[int, int]
    detection_kind: str
    input: dict[str, str]
    meta: dict[str, Any]
    path: Path | None = None
    sha256: str = ""
    pixel_scale: float = DEFAULT_PIXEL_SCALE
    psf_fwhm_px: float | None = None


@dataclass
class ClassifierBundle:
    """A loaded galaxy classifier with its metadata.

    Attributes
    ----------
    model : nn.Module
        In eval mode; maps a preprocessed ``(B, C, S, S)`` batch to the task's outputs.
    model_config : ClassifierConfig
    preprocessing : Preprocessing
    task : str
        The classification task.
    label_names : tuple of str
        One per output column.
    image_size : int
        Side ``S`` in pixels of the training inputs.
    input : dict
        The training input kind and unit (module docstring).
    meta : dict
        Everything else stored (config, metrics, version).
    path : Path or None
    sha256 : str
    """

    model: torch.nn.Module
    model_config: ClassifierConfig
    preprocessing: Preprocessing
    task: str
    label_names: tuple[str, ...]
    image_size: int
    input: dict[str, str]
    meta: dict[str, Any]
    path: Path | None = None
    sha256: str = ""


@contextlib.contextmanager
def _rebuilding(path: Path) -> Iterator[None]:
    """Turn a missing key or a weight that does not fit into one CheckpointError."""
    try:
        yield
    except CheckpointError:
        raise
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(path, f"checkpoint is incomplete or inconsistent ({exc})") from None


def _provenance(obj: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The ``meta``, ``path`` and ``sha256`` fields of a bundle."""
    meta = {k: v for k, v in obj.items() if k != "state_dict"}
    return {"meta": meta, "path": path, "sha256": file_sha256(path)}


def load_detector(path: str | Path, *, device: str | torch.device = "cpu") -> DetectorBundle:
    """Load a detector checkpoint and rebuild the model (in eval mode on ``device``).

    Raises
    ------
    CheckpointError
        Missing, corrupt or truncated file, a checkpoint of another kind (a backbone or
        classifier checkpoint, a Lightning ``.ckpt``), or weights that do not fit the config.
    """
    from clumpdet.models.backbones import BACKBONES
    from clumpdet.models.detector import DetectorConfig

    path = Path(path)
    obj = read_checkpoint(path, "detector")
    with _rebuilding(path):
        model_config = from_dict(DetectorConfig, obj["model_config"], where=f"{path}:model_config")
        model_config.detection_kind = obj["detection_kind"]
        preprocessing = Preprocessing.from_dict(obj["preprocessing"])
        # the trunk weights come from the checkpoint: never fetch or read pretrained ones again
        model_config.backbone.weights = "none"
        name = model_config.backbone.name
        if name not in BACKBONES and not name.startswith("timm:"):
            # a galaxy-checkpoint path or hub source: rebuild the bare timm architecture
            model_config.backbone.name = f"timm:{obj['backbone_arch']}"
        model = _rebuild_detector(model_config, preprocessing, obj["state_dict"])
        class_names = tuple(obj["class_names"])
        image_size = (int(obj["image_size"][0]), int(obj["image_size"][1]))
    return DetectorBundle(
        model=model.to(device).eval(),
        model_config=model_config,
        preprocessing=preprocessing,
        class_names=class_names,
        image_size=image_size,
        detection_kind=obj["detection_kind"],
        input=obj["input"],
        pixel_scale=obj["pixel_scale"],
        psf_fwhm_px=obj.get("psf_fwhm_px"),
        **_provenance(obj, path),
    )


def _rebuild_detector(
    model_config: DetectorConfig, preprocessing: Preprocessing, state: Mapping[str, torch.Tensor]
) -> torch.nn.Module:
    from clumpdet.models.detector import build_detector

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


def load_classifier(path: str | Path, *, device: str | torch.device = "cpu") -> ClassifierBundle:
    """Load a classifier checkpoint and rebuild the model (in eval mode on ``device``).

    Raises
    ------
    CheckpointError
        Missing, corrupt or truncated file, a checkpoint of another kind, or weights that do not
        fit the stored config.
    """
    from clumpdet.models.classifier import ClassifierConfig, build_classifier

    path = Path(path)
    obj = read_checkpoint(path, "classifier")
    with _rebuilding(path):
        cfg = from_dict(ClassifierConfig, obj["model_config"], where=f"{path}:model_config")
        cfg.backbone = dataclasses.replace(cfg.backbone, weights="none")
        pre = Preprocessing.from_dict(obj["preprocessing"])
        model = build_classifier(config=cfg, in_chans=pre.n_bands, image_size=obj["image_size"])
        model.load_state_dict(obj["state_dict"], strict=False)
        task, image_size = str(obj["task"]), int(obj["image_size"])
    return ClassifierBundle(
        model=model.to(device).eval(),
        model_config=cfg,
        preprocessing=pre,
        task=task,
        label_names=tuple(obj.get("label_names", ())),
        image_size=image_size,
        input=obj["input"],
        **_provenance(obj, path),
    )


def load_backbone(
    path: str | Path,
    *,
    in_chans: int | None = None,
    out_indices: Sequence[int] = (1, 2, 3),
    trainable_stages: int = -1,
    freeze_bn: bool = True,
) -> Trunk:
    """Build a trunk from a backbone checkpoint.

    Parameters
    ----------
    path : str or Path
        File written by ``save_checkpoint(kind="backbone")``.
    in_chans : int, optional
        Bands of the new data; the first conv is adapted if it differs from the checkpoint's.
    out_indices, trainable_stages, freeze_bn
        As in :class:`~clumpdet.models.backbones.BackboneConfig`.

    Returns
    -------
    Trunk
        With ``pretrained_preprocessing`` set to the stored preprocessing, and its BatchNorm
        statistics frozen unless ``freeze_bn`` is false.
    """
    from clumpdet.models.backbones import build_timm_trunk

    path = Path(path)
    obj = read_checkpoint(path, "backbone")
    with _rebuilding(path):
        arch, stored_chans = str(obj["arch"]), int(obj["in_chans"])
    return build_timm_trunk(
        arch=arch,
        in_chans=in_chans or stored_chans,
        weights=str(path),
        out_indices=out_indices,
        trainable_stages=trainable_stages,
        freeze_bn=freeze_bn,
    )
