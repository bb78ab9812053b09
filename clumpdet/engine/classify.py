"""Galaxy-classifier training on Lightning (``clumpdet train-classifier CONFIG --out RUN``).

Run layout::

    RUN/config.yaml              resolved config
    RUN/checkpoints/best.ckpt    lowest validation loss (Lightning, for --resume)
    RUN/checkpoints/last.ckpt
    RUN/logs/metrics.csv         per-epoch losses and metrics
    RUN/classifier.pt            the best model (weights_only checkpoint, with preprocessing)
    RUN/backbone.pt              its trunk as a backbone checkpoint the detector can load
                                 (``model: trunk`` only)
    RUN/test_metrics.json        metrics on the held-out test split (+ PNG plots)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from clumpdet.checkpoints import UNKNOWN_INPUT, input_kind_of, save_checkpoint
from clumpdet.config import save_config, to_dict
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.engine.config import TrainerConfig
from clumpdet.engine.trainer import EpochLossModule, build_trainer, fit, start_run
from clumpdet.errors import ConfigError
from clumpdet.models.classifier import ClassifierConfig, build_classifier
from clumpdet.tasks import Task
from clumpdet.utils import atomic_write

if TYPE_CHECKING:
    from clumpdet.data.containers import ClassificationData


@dataclass
class ClassifierDataConfig:
    """Where the labelled galaxies come from (see :func:`clumpdet.data.readers.load_data`).

    Attributes
    ----------
    source : str
        ``simulate`` (clumpdet's own simulated task data, the offline default) or a
        :data:`clumpdet.data.readers.SOURCES` name: ``sim_dir`` (a folder written by
        ``clumpdet simulate mergers|four_class|morphology``), ``deepmerge_fits``,
        ``deepmerge_npy``, ``gz_kaggle``, ``gz2``, ``four_class_npz``, ``candels`` or
        ``folder``.
    path, labels, images_dir, mapping : str or None
        Files of the source (e.g. the HLSP FITS; the Kaggle CSV + image folder; hart16 CSV +
        filename mapping + image folder).
    label_columns : tuple of str
        Label columns for ``folder`` / ``candels`` (their names also name the outputs of the
        ``binary`` and ``multiclass`` tasks).
    id_column : str or None
        Id column of the label CSV (default ``id`` for ``folder``, ``ID`` for ``candels``).
    image_pattern : str or None
        Image file name of a galaxy, ``{id}`` standing for its id (default ``{id}`` for
        ``folder``, ``{id}.fits`` for ``candels``); with ``image_bands`` the name of one band's
        file, using ``{band}`` too (``{id}_{band}.fits``).
    image_bands : tuple of str
        One single-band file per galaxy and band (real CANDELS stamps: ``[h, j, v, z]``): the
        values of ``{band}`` in ``image_pattern``, which also name the bands.
    missing : {"error", "drop"}
        Galaxies of the catalogue whose image file is missing: an error, or dropped (with one
        warning saying how many).
    simulate_n, simulate_seed : int
        Size and seed of the simulated set for ``source: simulate``.
    split : tuple of float
        Train / validation / test fractions (stratified for classes).
    split_seed : int or None
        Seed of the random split (default: ``trainer.seed``).
    split_column : str or None
        Explicit split: a label-table column of ``train``/``val``/``test`` per galaxy
        (``folder``, ``candels``, ``sim_dir``); ``split`` and ``split_seed`` are then unused.
    test_ids : str or None
        Explicit test set: a text file of galaxy ids, one per line; the other galaxies are
        split into train and validation in the ratio of ``split``.
    bands, stretch, stretch_params
        Preprocessing (stored in the checkpoint). Empty ``bands`` keeps the file's bands.
    center_crop, resize : int or None
        Square centre crop, then resize (Dieleman: crop then downsample to 45 px).
    rotate, flips, zoom : bool, bool, float
        Galaxy augmentation: arbitrary rotations, flips, +-zoom scale jitter. No colour jitter.
    cache : bool
        Keep decoded, preprocessed images in memory after their first read, already reduced to
        the crop (plus a margin for rotations) and the resize scale, so JPEGs are decoded once
        rather than every epoch (each DataLoader worker keeps its own copy).
    max_train : int or None
        Use only the first N training galaxies (learning curves).
    """

    source: str = "simulate"
    path: str | None = None
    labels: str | None = None
    images_dir: str | None = None
    mapping: str | None = None
    label_columns: tuple[str, ...] = ()
    id_column: str | None = None
    image_pattern: str | None = None
    image_bands: tuple[str, ...] = ()
    missing: Literal["error", "drop"] = "error"
    simulate_n: int = 600
    simulate_seed: int = 0
    split: tuple[float, ...] = (0.7, 0.1, 0.2)
    split_seed: int | None = None
    split_column: str | None = None
    test_ids: str | None = None
    bands: tuple[str, ...] = ()
    stretch: str = "asinh"
    stretch_params: dict[str, Any] = field(default_factory=dict)
    center_crop: int | None = None
    resize: int | None = None
    rotate: bool = True
    flips: bool = True
    zoom: float = 0.1
    cache: bool = True
    max_train: int | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        from clumpdet.data.readers import SOURCES

        if self.source != "simulate" and self.source not in SOURCES:
            raise ConfigError(
                f"source: unknown data source {self.source!r}; choose simulate, "
                f"{', '.join(SOURCES)}"
            )
        if self.split_column is not None and self.test_ids is not None:
            raise ConfigError("split_column, test_ids: give one explicit split, not both")


@dataclass
class ClassifierOptimConfig:
    """Optimiser, schedule and early stopping (DeepMerge: Adam, BCE, batch 128, patience 50).

    ``layer_decay`` (Zoobot: 0.75) scales each trunk stage's learning rate by ``layer_decay``
    per stage below the head (:func:`parameter_groups`). ``head_epochs`` > 0 trains the head
    alone (trunk frozen, BatchNorm in eval mode) for that many epochs before the stages that
    ``model.backbone.trainable_stages`` opens start to train (Zoobot's head-first fine-tuning;
    see ``configs/classifier/zoobot_recipe.yaml``).
    """

    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 64
    max_epochs: int = 30
    scheduler: Literal["none", "cosine", "plateau"] = "plateau"
    patience: int = 8
    layer_decay: float | None = None
    head_epochs: int = 0

    def __post_init__(self) -> None:
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            raise ConfigError(f"optim.layer_decay must be in (0, 1], got {self.layer_decay}")
        if self.head_epochs < 0:
            raise ConfigError(f"optim.head_epochs must be >= 0, got {self.head_epochs}")


@dataclass
class ClassifierTrainConfig:
    """Everything ``clumpdet train-classifier`` needs."""

    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    optim: ClassifierOptimConfig = field(default_factory=ClassifierOptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)  # monitors val/loss
    tta: bool = False

    def __post_init__(self) -> None:
        if not math.isclose(sum(self.data.split), 1.0, abs_tol=1e-6) or len(self.data.split) != 3:
            raise ConfigError("data.split: give three fractions (train, val, test) summing to 1")
        task = self.model.build_task()
        if self.data.source == "simulate" and task.simulator is None:
            raise ConfigError(
                f"data.source: task {task.name!r} has no simulator, so the default "
                "data.source: simulate cannot serve it; read a labelled table instead (e.g. "
                "data.source: folder with data.labels, data.images_dir, data.label_columns)"
            )


class ClassifierModule(EpochLossModule):
    """LightningModule for one classification task."""

    def __init__(self, config: ClassifierTrainConfig, *, in_chans: int, image_size: int) -> None:
        super().__init__()
        self.config = config
        self.task: Task = config.model.build_task()
        self.model = build_classifier(config=config.model, in_chans=in_chans, image_size=image_size)
        self._val: list[tuple[np.ndarray, np.ndarray]] = []
        trunk = getattr(self.model, "trunk", None)
        #: trunk parameters that train after the head-only epochs (``optim.head_epochs``)
        self._trunk_trainable = (
            [p for p in trunk.parameters() if p.requires_grad] if trunk is not None else []
        )

    @property
    def head_only(self) -> bool:
        """Whether the current epoch trains the head alone (``optim.head_epochs``)."""
        return self.current_epoch < self.config.optim.head_epochs and bool(self._trunk_trainable)

    def on_train_epoch_start(self) -> None:
        head_only = self.head_only
        for p in self._trunk_trainable:
            p.requires_grad_(not head_only)
        if head_only:
            self.model.trunk.eval()  # no BatchNorm statistics updates while the trunk is frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def step_loss(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch[0], batch[1]
        counts = batch[2] if len(batch) > 2 else None
        out = self.model(x)
        loss = self.task.loss(out, y, dirichlet=self.config.model.dirichlet, counts=counts)
        return loss, out

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch, batch_idx: int) -> None:
        out = self.validation_outputs(batch)
        pred = self.task.predict(out, dirichlet=self.config.model.dirichlet)
        self._val.append((batch[1].cpu().numpy(), pred.detach().cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        if not self._val or self.trainer.sanity_checking:
            return
        y = np.concatenate([v[0] for v in self._val])
        p = np.concatenate([v[1] for v in self._val])
        for k, v in self.task.headline_metrics(y, p).items():
            self.log(f"val/{k}", v)

    def configure_optimizers(self):
        o = self.config.optim
        groups = parameter_groups(self.model, lr=o.lr, layer_decay=o.layer_decay)
        opt = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
        if o.scheduler == "none":
            return opt
        if o.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=o.max_epochs)
            return {"optimizer": opt, "lr_scheduler": sched}
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=0.5, patience=max(1, o.patience // 3)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val/loss"}}


def parameter_groups(model: nn.Module, *, lr: float, layer_decay: float | None) -> list[dict]:
    """Optimiser groups; with ``layer_decay`` (Zoobot: 0.75) deeper trunk stages get larger lr.

    The head trains at ``lr``; the top trunk stage at ``lr * d``, the next at ``lr * d**2`` ...
    (one group per stage of the architecture, also when the trunk returns only its last map).
    Frozen parameters are left out.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    trunk = getattr(model, "trunk", None)
    if layer_decay is None or trunk is None:
        return [{"params": trainable, "lr": lr}]
    groups = trunk.stage_parameter_groups()
    named = dict(trunk.body.named_parameters())
    out, seen = [], set()
    for depth, names in enumerate(reversed(groups), start=1):
        params = [named[n] for n in names if named[n].requires_grad]
        seen.update(id(p) for p in params)
        if params:
            out.append({"params": params, "lr": lr * layer_decay**depth})
    rest = [p for p in trainable if id(p) not in seen]
    out.append({"params": rest, "lr": lr})
    return out


def train_classifier(
    config: ClassifierTrainConfig, *, out: str | Path, resume: str | Path | None = None
) -> Path:
    """Train, test and export a galaxy classifier (see the module docstring for outputs)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from torch.utils.data import DataLoader

    from clumpdet.engine.checkpoint import restore_best_weights
    from clumpdet.inference.classifier import predict_arrays

    t = config.trainer
    out = start_run(out, t, resume=resume)  # a bad resume file fails before any work
    splits = make_classification_splits(
        config.data,
        task=config.model.build_task(),
        out=out,
        seed=t.seed,
        return_counts=config.model.dirichlet,
    )
    if splits.task.names_from_data:
        config.model.label_names = splits.task.label_names
    save_config(config, out / "config.yaml")
    module = ClassifierModule(
        config, in_chans=splits.preprocessing.n_bands, image_size=splits.image_size
    )
    bs = config.optim.batch_size
    kw = dict(num_workers=config.data.num_workers)
    train_dl = DataLoader(splits.train, batch_size=bs, shuffle=True, **kw)
    val_dl = DataLoader(splits.val, batch_size=bs, shuffle=False, **kw)
    test_dl = DataLoader(splits.test, batch_size=bs, shuffle=False, **kw)
    best = ModelCheckpoint(
        dirpath=out / "checkpoints", filename="best", monitor="val/loss", mode="min", save_last=True
    )
    trainer = build_trainer(
        t,
        out=out,
        max_epochs=config.optim.max_epochs,
        callbacks=[
            best,
            EarlyStopping(monitor="val/loss", mode="min", patience=config.optim.patience),
        ],
    )
    fit(trainer, module, train_dl, val_dl, resume=resume)
    if not trainer.is_global_zero:
        return out / "classifier.pt"
    restore_best_weights(module, best)
    module.eval()
    y, p = predict_arrays(
        [module.model],
        test_dl,
        task=config.model.task,
        dirichlet=config.model.dirichlet,
        tta=config.tta,
    )
    metrics = splits.task.evaluate(y, p, out=out)
    from clumpdet.evaluation.classification import plot_feature_maps

    first = next(iter(test_dl))[0][:3]
    plot_feature_maps(module.model, first, out / "feature_maps.png")
    metrics["n_train"] = len(splits.train)
    with atomic_write(out / "test_metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2, default=float)
    path = save_checkpoint(
        out / "classifier.pt",
        kind="classifier",
        model=module.model,
        preprocessing=splits.preprocessing,
        model_config=to_dict(config.model),
        image_size=splits.image_size,
        input=splits.input,
        config=to_dict(config),
        metrics=metrics,
    )
    trunk = getattr(module.model, "trunk", None)
    if trunk is not None:
        save_checkpoint(
            out / "backbone.pt",
            kind="backbone",
            model=trunk,
            preprocessing=splits.preprocessing,
            input=splits.input,
            source={"task": config.model.task, "run": str(out)},
        )
    metrics_csv = out / "logs" / "metrics.csv"
    if metrics_csv.is_file():
        from clumpdet.engine.curves import plot_training_curves

        plot_training_curves(
            metrics_csv, out / "training_curves.png", monitor="val/loss", mode="min"
        )
    return path


@dataclass
class ClassificationSplits:
    """Train / validation / test datasets with the preprocessing they share.

    ``input`` is the checkpoint ``input`` record of the data (:func:`training_input`).
    """

    train: Any
    val: Any
    test: Any
    preprocessing: Preprocessing
    image_size: int
    task: Task
    input: dict[str, str]


def training_input(data: ClassificationData) -> dict[str, str]:
    """The checkpoint ``input`` record of a ``ClassificationData`` (:mod:`clumpdet.checkpoints`).

    The reader's own record when it has one (simulated folders: ``{"kind": "fits", "unit":
    <simulator unit>}``), else :func:`~clumpdet.checkpoints.input_kind_of` of the first image
    file (the first band's file of per-band stamps), else ``{"kind": "unknown", "unit": ""}``
    (arrays whose provenance the reader does not know).
    """
    from clumpdet.data.containers import FileImages

    if data.input is not None:
        return dict(data.input)
    images = data.images
    if isinstance(images, FileImages) and len(images):
        first = images.paths[0]
        return input_kind_of(first if isinstance(first, Path) else first[0])
    return dict(UNKNOWN_INPUT)


def load_classification_data(cfg: ClassifierDataConfig, *, task: Task, out: Path):
    """The labelled set named by ``cfg`` (simulated into ``out/data`` when asked)."""
    from clumpdet.data.readers import SOURCES, load_data, read_sim_dir

    if cfg.source == "simulate" and task.simulator is None:
        raise ConfigError(
            f"data.source: task {task.name!r} has no simulator; read real data instead "
            f"(data.source: {', '.join(SOURCES)})"
        )
    if cfg.source == "simulate":
        from clumpdet.sim.run import prepare_sets

        kind = task.simulator
        sets = prepare_sets(kind, {kind: (cfg.simulate_n, cfg.simulate_seed)}, out=out / "data")
        return read_sim_dir(sets[kind], task=task, split_column=cfg.split_column)
    return load_data(
        source=cfg.source,
        path=cfg.path,
        labels=cfg.labels,
        images_dir=cfg.images_dir,
        mapping=cfg.mapping,
        label_columns=cfg.label_columns,
        task=task.name,
        id_column=cfg.id_column,
        image_pattern=cfg.image_pattern,
        image_bands=cfg.image_bands,
        missing=cfg.missing,
        split_column=cfg.split_column,
    )


def split_rows(
    data, cfg: ClassifierDataConfig, *, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / val / test row indices of ``data`` (a ``ClassificationData``).

    Explicit (``cfg.split_column``, ``cfg.test_ids``) or random with the ``cfg.split``
    fractions, stratified for class tasks and seeded by ``cfg.split_seed`` (default ``seed``,
    the trainer's).
    """
    from clumpdet.data.splits import (
        assigned_split,
        read_id_list,
        split_by_test_ids,
        stratified_split,
    )

    task = data.task_spec
    strata = task.class_index(data.labels) if task.stratify else np.zeros(len(data), int)
    split_seed = seed if cfg.split_seed is None else cfg.split_seed
    if cfg.split_column is not None:
        return assigned_split(data.split)
    if cfg.test_ids is not None:
        return split_by_test_ids(
            data.ids,
            read_id_list(cfg.test_ids),
            strata,
            fractions=cfg.split,
            seed=split_seed,
            source=cfg.test_ids,
        )
    return stratified_split(strata, fractions=cfg.split, seed=split_seed)


def make_classification_splits(
    cfg: ClassifierDataConfig,
    *,
    task: Task,
    out: Path,
    seed: int = 0,
    return_counts: bool = False,
) -> ClassificationSplits:
    """Load, split (:func:`split_rows`), fit normalisation on train, build the datasets.

    The returned :attr:`ClassificationSplits.task` is ``task`` with the label names of the
    data (for the ``binary`` and ``multiclass`` tasks, named by their data).
    """
    from clumpdet.data.galaxy_dataset import ClassificationDataset, GalaxyAugmentation

    data = load_classification_data(cfg, task=task, out=out)
    tr, va, te = split_rows(data, cfg, seed=seed)
    if cfg.max_train is not None:
        tr = tr[: cfg.max_train]
    bands = cfg.bands or data.bands
    pre = Preprocessing(bands=tuple(bands), stretch=cfg.stretch, stretch_params=cfg.stretch_params)
    sample = [data.image(int(i)) for i in tr[:200]]
    pre = pre.fit_normalisation(sample)
    aug = GalaxyAugmentation(rot90=cfg.flips, flips=cfg.flips, rotate=cfg.rotate, zoom=cfg.zoom)
    kw = dict(
        preprocessing=pre,
        center_crop=cfg.center_crop,
        resize=cfg.resize,
        return_counts=return_counts,
        cache=cfg.cache,
    )
    train = ClassificationDataset(data.subset(tr), augmentation=aug, **kw)
    val = ClassificationDataset(data.subset(va), **kw)
    test = ClassificationDataset(data.subset(te), **kw)
    task = data.task_spec if task.names_from_data else task
    return ClassificationSplits(
        train, val, test, pre, int(train.image_size[0]), task, training_input(data)
    )
