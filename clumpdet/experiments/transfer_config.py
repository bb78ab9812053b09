"""Configuration of the backbone-transfer grid: its axes, data and epoch rule.

See :mod:`clumpdet.experiments.transfer` for what the grid runs and writes.

Epochs: either a fixed ``epochs``, or ``steps``, a target number of optimiser steps per cell
(``epochs = clamp(round(steps / ceil(size / batch)), min_epochs, max_epochs)``) so that small
training sets are not under-trained relative to large ones. Neither keeps the detector config's
``optim.max_epochs``. The detector's early stopping on the validation set still applies.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from clumpdet.errors import ConfigError


@dataclass
class TransferSimulateConfig:
    """Simulated train / val / test sets (seeds ``seed``, ``seed + 1``, ``seed + 2``).

    Attributes
    ----------
    config : str or None
        Simulation YAML (``configs/sim/...``); ``None`` is the built-in SDSS-like default.
    n_train, n_val, n_test : int
        Images per set. ``n_train`` should be at least the largest ``train_sizes`` entry.
    seed : int
        Seed of the training set.
    """

    config: str | None = None
    n_train: int = 500
    n_val: int = 100
    n_test: int = 200
    seed: int = 0


@dataclass
class TransferDataConfig:
    """The fixed data of the grid: COCO files, or ``simulate`` when ``train`` is unset.

    Attributes
    ----------
    train, val, test : str or None
        COCO annotation files. ``val`` and ``test`` are required when ``train`` is given.
    simulate : TransferSimulateConfig
        Used when ``train`` is ``None``.
    """

    train: str | None = None
    val: str | None = None
    test: str | None = None
    simulate: TransferSimulateConfig = field(default_factory=TransferSimulateConfig)


@dataclass
class BackboneEntry:
    """One backbone of the grid.

    Attributes
    ----------
    name : str
        Label used in tables, plots and cell ids (e.g. ``scratch``, ``imagenet``, ``galaxy``).
    backbone : dict
        Overrides of the detector's ``model.backbone`` (``name``, ``weights``, ``out_indices``):
        ``{name: resnet18, weights: none}``, ``{weights: /path/resnet18.pth}``,
        ``{name: RUN/backbone.pt}``, ``{name: "timm:convnext_nano"}`` ...
        ``trainable_stages`` comes from the ``trainable`` axis.
    pretrain : str or None
        A joint pretraining config (``configs/pretrain/...``, the ``clumpdet pretrain`` job) or a
        single-task classifier config (``configs/classifier/...``). When set, the trunk is
        trained once under ``OUT/pretrain/<name>/`` and its ``backbone.pt`` becomes this entry's
        trunk (the Zoobot-style path, self-contained).
    pretrain_set : list of str
        ``key=value`` overrides of the pretraining config.
    """

    name: str
    backbone: dict[str, Any] = field(default_factory=dict)
    pretrain: str | None = None
    pretrain_set: list[str] = field(default_factory=list)


@dataclass
class TrainableEntry:
    """A trainable-depth setting: a label and ``trainable_stages`` (0 frozen, -1 all)."""

    name: str
    stages: int


@dataclass
class ClassificationEntry:
    """Score the grid's backbones on a galaxy-classification head too.

    Attributes
    ----------
    config : str
        Classifier config YAML with ``model.model: trunk``; the backbone ``name``, ``weights``
        and ``trainable_stages`` are replaced by each grid cell's.
    name : str or None
        Label (default: the config's task).
    set : list of str
        ``key=value`` overrides of the classifier config.
    """

    config: str
    name: str | None = None
    set: list[str] = field(default_factory=list)


@dataclass
class TransferConfig:
    """The backbone-transfer grid (``tools/transfer_experiment.py CONFIG.yaml``).

    Attributes
    ----------
    detector_config : str
        Base detector config (``configs/detector/...``); relative paths are from the working dir.
    detector_set : list of str
        ``key=value`` overrides applied to every cell's detector config.
    data : TransferDataConfig
        Train / val / test sets (fixed across cells).
    backbones : list of BackboneEntry
        Backbone axis.
    trainable : list of TrainableEntry
        Trainable-depth axis (e.g. frozen 0, top3 3, all -1).
    train_sizes : list of int
        Learning-curve axis (``data.max_train_images``).
    seeds : list of int
        Seeds (``trainer.seed``).
    epochs : int or None
        Fixed epochs per cell; exclusive with ``steps``.
    steps : int or None
        Target optimiser steps per cell (see module docstring).
    min_epochs, max_epochs : int
        Clamp of the ``steps`` rule.
    score_threshold : float or None
        Operating threshold of completeness/purity; default the detector's ``score_threshold``.
    classification : list of ClassificationEntry
        Optional classification heads scored with every backbone x trainable x seed.
    """

    detector_config: str = "configs/detector/cpu_resnet18.yaml"
    detector_set: list[str] = field(default_factory=list)
    data: TransferDataConfig = field(default_factory=TransferDataConfig)
    backbones: list[BackboneEntry] = field(
        default_factory=lambda: [BackboneEntry(name="scratch", backbone={"weights": "none"})]
    )
    trainable: list[TrainableEntry] = field(
        default_factory=lambda: [TrainableEntry(name="all", stages=-1)]
    )
    train_sizes: list[int] = field(default_factory=lambda: [100, 200])
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None
    steps: int | None = None
    min_epochs: int = 1
    max_epochs: int = 100
    score_threshold: float | None = None
    classification: list[ClassificationEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        for axis in ("backbones", "trainable", "train_sizes", "seeds"):
            if not getattr(self, axis):
                raise ConfigError(f"{axis}: give at least one value")
        for axis, labels in (
            ("backbones", [b.name for b in self.backbones]),
            ("trainable", [t.name for t in self.trainable]),
        ):
            if len(set(labels)) != len(labels):
                raise ConfigError(f"{axis}: labels must be unique, got {labels}")
            for lab in labels:
                if not slug(lab):
                    raise ConfigError(f"{axis}: label {lab!r} has no letters or digits")
        if any(s < 1 for s in self.train_sizes):
            raise ConfigError(f"train_sizes: must be >= 1, got {self.train_sizes}")
        if self.epochs is not None and self.steps is not None:
            raise ConfigError("epochs and steps: set one of them, not both")
        if (self.epochs is not None and self.epochs < 1) or (
            self.steps is not None and self.steps < 1
        ):
            raise ConfigError("epochs / steps: must be >= 1")
        if not 1 <= self.min_epochs <= self.max_epochs:
            raise ConfigError("min_epochs / max_epochs: need 1 <= min_epochs <= max_epochs")
        d = self.data
        if d.train is not None and (d.val is None or d.test is None):
            raise ConfigError("data: with data.train, give data.val and data.test too")
        for b in self.backbones:
            if "trainable_stages" in b.backbone:
                raise ConfigError(
                    f"backbones[{b.name}].backbone.trainable_stages: set it on the trainable axis"
                )


def slug(text: str) -> str:
    """File-name-safe form of a label: runs of other characters become ``-``."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(text)).strip("-")


def cell_id(*, backbone: str, trainable: str, train_size: int, seed: int) -> str:
    """Stable, file-name-safe id of a detection cell, e.g. ``galaxy__top3__n200__s0``."""
    return f"{slug(backbone)}__{slug(trainable)}__n{int(train_size)}__s{int(seed)}"


def epochs_for_size(
    config: TransferConfig, *, train_size: int, batch_size: int, default: int
) -> int:
    """Epochs of a cell with ``train_size`` images (see the module docstring for the rule).

    Parameters
    ----------
    config : TransferConfig
        The grid (``epochs`` / ``steps`` / ``min_epochs`` / ``max_epochs``).
    train_size : int
        Training images of the cell.
    batch_size : int
        Detector batch size.
    default : int
        Epochs when neither ``epochs`` nor ``steps`` is set.
    """
    if config.epochs is not None:
        return config.epochs
    if config.steps is None:
        return default
    per_epoch = math.ceil(train_size / batch_size)
    return int(min(config.max_epochs, max(config.min_epochs, round(config.steps / per_epoch))))
