"""Configuration of the backbone-transfer grid: its axes, data, arms and training budget.

See :mod:`clumpdet.experiments.transfer` for what the grid runs and writes.

Training length: every cell trains until the validation metric stops improving (early stopping
with ``budget.patience`` validations, the best checkpoint restored), within a step budget that
grows with the training set: ``steps(n) = clamp(budget.epochs * ceil(n / batch),
budget.min_steps, budget.max_steps)``, run as ``ceil(steps(n) / ceil(n / batch))`` epochs. The
validation set is scored about every ``budget.val_every_steps`` optimiser steps (at least once
an epoch), so a 30-image cell is not validated after every 8 steps. A fixed ``epochs`` (no
budget) remains for quick runs and tests.
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
class ClumpClassifierStage:
    """Fine-tune a trunk as a clumpy-vs-not classifier before the detector (Popp et al.'s arm).

    The grid simulates ``n_images`` clump-simulation cutouts (seed ``data.simulate.seed + 3``,
    disjoint from the detector's sets), labels each ``clumpy`` when its truth holds at least
    one class-1 clump, trains the classifier of ``config`` on them (a ``binary`` task with
    ``model: trunk``) starting from the trunk of arm ``start``, and uses its exported
    ``backbone.pt`` as this arm's trunk.

    Attributes
    ----------
    start : str
        Name of the arm whose trunk is fine-tuned (e.g. ``galaxy``); it must come earlier in
        ``backbones``.
    config : str
        Classifier config YAML (``configs/transfer/clumpy_classifier.yaml``).
    n_images : int
        Simulated cutouts for the classifier (train / val / test split by the config).
    set : list of str
        ``key=value`` overrides of the classifier config.
    """

    start: str
    config: str = "configs/transfer/clumpy_classifier.yaml"
    n_images: int = 600
    set: list[str] = field(default_factory=list)


@dataclass
class BudgetConfig:
    """Training length of a cell (see the module docstring for the rule).

    Attributes
    ----------
    epochs : float
        Passes over the training set that the step budget allows before clamping.
    min_steps, max_steps : int
        Clamp of the step budget.
    val_every_steps : int
        Validate about every this many optimiser steps (at least once an epoch).
    patience : int
        Early-stopping patience in validations (replaces the detector's ``trainer.patience``).
    """

    epochs: float = 20.0
    min_steps: int = 200
    max_steps: int = 4000
    val_every_steps: int = 50
    patience: int = 4

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ConfigError(f"budget.epochs: must be > 0, got {self.epochs}")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ConfigError("budget.min_steps / max_steps: need 1 <= min_steps <= max_steps")
        if self.val_every_steps < 1 or self.patience < 0:
            raise ConfigError("budget.val_every_steps >= 1 and budget.patience >= 0 needed")


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
        ``{name: RUN/backbone.pt}`` (e.g. a self-supervised trunk of ``clumpdet pretrain``;
        a missing file skips the arm's cells with the reason), ``{name: "timm:convnext_nano"}``
        ... ``trainable_stages`` comes from the ``trainable`` axis.
    pretrain : str or None
        A joint pretraining config (``configs/pretrain/...``, the ``clumpdet pretrain`` job) or a
        single-task classifier config (``configs/classifier/...``). When set, the trunk is
        trained once under ``OUT/pretrain/<name>/`` and its ``backbone.pt`` becomes this entry's
        trunk (the Zoobot-style path, self-contained).
    pretrain_set : list of str
        ``key=value`` overrides of the pretraining config.
    clump_classifier : ClumpClassifierStage or None
        Galaxy-pretrained-then-clump-classifier arm: fine-tune another arm's trunk as a
        clumpy-vs-not classifier first (``backbone`` and ``pretrain`` are then unused).
    """

    name: str
    backbone: dict[str, Any] = field(default_factory=dict)
    pretrain: str | None = None
    pretrain_set: list[str] = field(default_factory=list)
    clump_classifier: ClumpClassifierStage | None = None


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
        Fixed epochs per cell (validation every epoch, the detector's patience) instead of
        ``budget``.
    budget : BudgetConfig
        Step budget, validation interval and patience of each cell (see module docstring).
    reference : str or None
        ``backbone/trainable`` of the reference curve of the data-saving factor (default: the
        ``scratch`` arm's setting with the best F1 at the largest size).
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
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    reference: str | None = None
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
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs: must be >= 1, got {self.epochs}")
        names = [b.name for b in self.backbones]
        for i, b in enumerate(self.backbones):
            stage = b.clump_classifier
            if stage is not None and stage.start not in names[:i]:
                raise ConfigError(
                    f"backbones[{b.name}].clump_classifier.start: {stage.start!r} is not an "
                    f"earlier arm (have {names[:i]})"
                )
            if stage is not None and stage.n_images < 10:
                raise ConfigError(f"backbones[{b.name}].clump_classifier.n_images: need >= 10")
        if self.reference is not None and self.reference.count("/") != 1:
            raise ConfigError(f"reference: expected 'backbone/trainable', got {self.reference!r}")
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


@dataclass(frozen=True)
class CellSchedule:
    """Training length of one cell.

    Attributes
    ----------
    max_epochs : int
        Epochs that the budget allows.
    step_budget : int
        Optimiser steps that the budget allows (``max_epochs * steps_per_epoch``).
    steps_per_epoch : int
        ``ceil(n / batch)``.
    val_every : int
        Validate every this many epochs.
    patience : int or None
        Early-stopping patience in validations (``None``: the detector config's).
    """

    max_epochs: int
    step_budget: int
    steps_per_epoch: int
    val_every: int
    patience: int | None


def cell_schedule(config: TransferConfig, *, train_size: int, batch_size: int) -> CellSchedule:
    """Epochs, step budget, validation interval and patience of a cell of ``train_size`` images.

    Parameters
    ----------
    config : TransferConfig
        The grid (``epochs`` or ``budget``).
    train_size : int
        Training images of the cell.
    batch_size : int
        Detector batch size.

    Returns
    -------
    CellSchedule
        With ``epochs`` set: that many epochs, validated every epoch, the detector's patience.
    """
    per_epoch = max(1, math.ceil(train_size / batch_size))
    if config.epochs is not None:
        e = int(config.epochs)
        return CellSchedule(e, e * per_epoch, per_epoch, 1, None)
    b = config.budget
    steps = int(min(b.max_steps, max(b.min_steps, round(b.epochs * per_epoch))))
    epochs = max(1, math.ceil(steps / per_epoch))
    val_every = max(1, min(epochs, round(b.val_every_steps / per_epoch)))
    epochs = math.ceil(epochs / val_every) * val_every  # the last epoch is validated
    return CellSchedule(epochs, epochs * per_epoch, per_epoch, val_every, b.patience)
