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
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from torch import nn

from clumpdet.checkpoints import save_checkpoint
from clumpdet.config import save_config, to_dict
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.engine.config import TrainerConfig
from clumpdet.errors import ConfigError
from clumpdet.models.classifier import (
    ClassifierConfig,
    build_classifier,
    label_names,
    predict_from_outputs,
)
from clumpdet.utils import atomic_write


@dataclass
class ClassifierDataConfig:
    """Where the labelled galaxies come from (see :func:`clumpdet.data.classification.load_data`).

    Attributes
    ----------
    source : str
        ``simulate`` (clumpdet's own simulated task data, the offline default), ``sim_dir`` (a
        folder written by ``clumpdet simulate mergers|four_class|morphology``),
        ``deepmerge_fits``, ``deepmerge_npy``, ``gz_kaggle``, ``gz2``, ``four_class_npz``,
        ``candels`` or ``folder``.
    path, labels, images_dir, mapping : str or None
        Files of the source (e.g. the HLSP FITS; the Kaggle CSV + image folder; hart16 CSV +
        filename mapping + image folder).
    label_columns : tuple of str
        Label columns for ``folder`` / ``candels``.
    simulate_n, simulate_seed : int
        Size and seed of the simulated set for ``source: simulate``.
    split : tuple of float
        Train / validation / test fractions (stratified for classes).
    bands, stretch, stretch_params
        Preprocessing (stored in the checkpoint). Empty ``bands`` keeps the file's bands.
    center_crop, resize : int or None
        Square centre crop, then resize (Dieleman: crop then downsample to 45 px).
    rotate, flips, zoom : bool, bool, float
        Galaxy augmentation: arbitrary rotations, flips, +-zoom scale jitter. No colour jitter.
    max_train : int or None
        Use only the first N training galaxies (learning curves).
    """

    source: str = "simulate"
    path: str | None = None
    labels: str | None = None
    images_dir: str | None = None
    mapping: str | None = None
    label_columns: tuple[str, ...] = ()
    simulate_n: int = 600
    simulate_seed: int = 0
    split: tuple[float, ...] = (0.7, 0.1, 0.2)
    bands: tuple[str, ...] = ()
    stretch: str = "asinh"
    stretch_params: dict[str, Any] = field(default_factory=dict)
    center_crop: int | None = None
    resize: int | None = None
    rotate: bool = True
    flips: bool = True
    zoom: float = 0.1
    max_train: int | None = None
    num_workers: int = 0


@dataclass
class ClassifierOptimConfig:
    """Optimiser, schedule and early stopping (DeepMerge: Adam, BCE, batch 128, patience 50)."""

    lr: float = 1e-3
    weight_decay: float = 1e-5
    batch_size: int = 64
    max_epochs: int = 30
    scheduler: Literal["none", "cosine", "plateau"] = "plateau"
    patience: int = 8
    layer_decay: float | None = None


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


def task_loss(
    task: str,
    outputs: torch.Tensor,
    target: torch.Tensor,
    *,
    dirichlet: bool = False,
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss of ``task`` on raw outputs ``(B, K)`` and targets ``(B, K)``.

    merger: binary cross-entropy on the logit; four_class: cross-entropy on the class index;
    candels: MSE of the softmax fractions; gz_votes: MSE of the decision-tree-normalised fractions
    (Dieleman), or the Dirichlet-multinomial negative log-likelihood of the vote counts (Zoobot).
    """
    if task == "merger":
        return nn.functional.binary_cross_entropy_with_logits(outputs, target)
    if task == "four_class":
        return nn.functional.cross_entropy(outputs, target.argmax(dim=1))
    if task == "gz_votes" and dirichlet:
        from clumpdet.models.losses import dirichlet_multinomial_loss

        if counts is None:
            raise ConfigError("model.dirichlet: the Dirichlet loss needs vote counts in the data")
        return dirichlet_multinomial_loss(outputs, counts)
    pred = predict_from_outputs(task, outputs)
    return nn.functional.mse_loss(pred, target)


class ClassifierModule(L.LightningModule):
    """LightningModule for one classification task."""

    def __init__(self, config: ClassifierTrainConfig, *, in_chans: int, image_size: int) -> None:
        super().__init__()
        self.config = config
        self.task = config.model.task
        self.model = build_classifier(config=config.model, in_chans=in_chans, image_size=image_size)
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _step(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch[0], batch[1]
        counts = batch[2] if len(batch) > 2 else None
        out = self.model(x)
        loss = task_loss(self.task, out, y, dirichlet=self.config.model.dirichlet, counts=counts)
        return loss, out

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._step(batch)
        self.log(
            "train/loss",
            loss,
            prog_bar=True,
            on_step=False,
            on_epoch=True,
            batch_size=len(batch[0]),
        )
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val = []

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, out = self._step(batch)
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, batch_size=len(batch[0]))
        pred = predict_from_outputs(self.task, out, dirichlet=self.config.model.dirichlet)
        self._val.append((batch[1].cpu().numpy(), pred.detach().cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        if not self._val or self.trainer.sanity_checking:
            return
        y = np.concatenate([v[0] for v in self._val])
        p = np.concatenate([v[1] for v in self._val])
        for k, v in headline_metrics(self.task, y, p).items():
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


def headline_metrics(task: str, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """The few numbers logged every epoch (accuracy/AUC or RMSE)."""
    from clumpdet.evaluation.classification import binary_metrics, multiclass_metrics

    if task == "merger":
        m = binary_metrics(y[:, 0], p[:, 0])
        return {"accuracy": m["accuracy"], "auc": _finite(m["auc"])}
    if task == "four_class":
        m = multiclass_metrics(y.argmax(1), p, class_names=label_names(task))
        return {"accuracy": m["accuracy"], "auc": _finite(m["auc"])}
    return {"rmse": float(np.sqrt(np.mean((p - y) ** 2)))}


def _finite(v: float) -> float:
    return 0.0 if v is None or not math.isfinite(v) else float(v)


def evaluate_classifier(
    task: str, y: np.ndarray, p: np.ndarray, *, out: Path | None
) -> dict[str, Any]:
    """Full metrics (and PNGs in ``out``) for targets ``y`` and predictions ``p`` (N, K)."""
    from clumpdet.evaluation import classification as C

    names = list(label_names(task))
    if task == "merger":
        m = C.binary_metrics(y[:, 0], p[:, 0])
        if out is not None:
            fpr, tpr, _ = C.roc_curve(y[:, 0], p[:, 0])
            C.plot_roc({"merger": (fpr, tpr, m["auc"])}, out / "roc.png")
            cm = np.asarray(m["confusion"], float)
            cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
            C.plot_confusion(cm, ["non-merger", "merger"], out / "confusion.png")
    elif task == "four_class":
        m = C.multiclass_metrics(y.argmax(1), p, class_names=names)
        if out is not None:
            curves = {}
            for i, n in enumerate(names):
                fpr, tpr, _ = C.roc_curve(y.argmax(1) == i, p[:, i])
                curves[n] = (fpr, tpr, m["per_class"][n]["auc"])
            C.plot_roc(curves, out / "roc.png")
            C.plot_confusion(np.asarray(m["confusion_normalised"]), names, out / "confusion.png")
    else:
        groups = None
        if task == "gz_votes":
            from clumpdet.models.gz_tree import question_slices

            groups = [(f"Q{q}", sl) for q, sl in question_slices().items()]
        m = C.vote_fraction_metrics(y, p, names=names, groups=groups)
        if out is not None:
            C.plot_group_rmse(m["per_group"], out / "rmse_per_question.png")
    return m


def train_classifier(
    config: ClassifierTrainConfig, *, out: str | Path, resume: str | Path | None = None
) -> Path:
    """Train, test and export a galaxy classifier (see the module docstring for outputs)."""
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader

    from clumpdet.engine.checkpoint import restore_best_weights
    from clumpdet.inference.classifier import predict_arrays

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = config.trainer
    if t.threads:
        torch.set_num_threads(t.threads)
    L.seed_everything(t.seed, workers=True, verbose=False)
    save_config(config, out / "config.yaml")
    splits = make_classification_splits(
        config.data, task=config.model.task, out=out, return_counts=config.model.dirichlet
    )
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
    trainer = L.Trainer(
        accelerator=t.accelerator,
        devices=t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=t.precision,
        max_epochs=config.optim.max_epochs,
        callbacks=[
            best,
            EarlyStopping(monitor="val/loss", mode="min", patience=config.optim.patience),
        ],
        logger=CSVLogger(save_dir=out, name="logs", version=""),
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=t.log_every_n_steps,
    )
    trainer.fit(
        module, train_dl, val_dl, ckpt_path=str(resume) if resume else None, weights_only=True
    )
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
    metrics = evaluate_classifier(config.model.task, y, p, out=out)
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
            source={"task": config.model.task, "run": str(out)},
        )
    metrics_csv = out / "logs" / "metrics.csv"
    if metrics_csv.is_file():
        from clumpdet.engine.curves import plot_training_curves

        plot_training_curves(
            metrics_csv, out / "training_curves.png", monitor="val/loss", mode="min"
        )
    return path


#: Which simulated set serves each task.
SIM_TASK = {
    "merger": "mergers",
    "four_class": "four_class",
    "gz_votes": "morphology",
    "candels": "morphology",
}


def read_sim_dir(path: str | Path, *, task: str):
    """Read a folder written by ``clumpdet simulate mergers|four_class|morphology``.

    ``images.npy`` (N, C, H, W) is memory-mapped; ``labels.csv`` holds the task's columns
    (morphology also ``count_<answer>`` vote counts for the Dirichlet loss).
    """
    import pandas as pd
    import yaml

    from clumpdet.data.classification import ClassificationData, MappedArray
    from clumpdet.errors import InputError

    path = Path(path)
    for name in ("images.npy", "labels.csv"):
        if not (path / name).is_file():
            raise InputError(path / name, "not found; is this a `clumpdet simulate` folder?")
    df = pd.read_csv(path / "labels.csv")
    names = list(label_names(task))
    cols = ["MergerLabel"] if task == "merger" else names
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputError(path / "labels.csv", f"missing columns for task {task}: {missing[:5]}")
    counts = None
    count_cols = [f"count_{c}" for c in names]
    if task == "gz_votes" and all(c in df.columns for c in count_cols):
        counts = df[count_cols].to_numpy(np.float32)
    bands: tuple[str, ...] = ()
    cfg_file = path / "config.yaml"
    if cfg_file.is_file():
        cfg = yaml.safe_load(cfg_file.read_text()) or {}
        bands = tuple((cfg.get("image") or {}).get("bands") or ())
    images = MappedArray(path / "images.npy", kind="npy")
    if not bands:
        bands = tuple(f"band{i + 1}" for i in range(images.shape[1]))
    return ClassificationData(
        images=images,
        labels=df[cols].to_numpy(np.float32),
        task=task,
        label_names=tuple(names),
        bands=bands,
        ids=df[df.columns[0]].to_numpy(),
        source=path,
        counts=counts,
    )


@dataclass
class ClassificationSplits:
    """Train / validation / test datasets with the preprocessing they share."""

    train: Any
    val: Any
    test: Any
    preprocessing: Preprocessing
    image_size: int


def load_classification_data(cfg: ClassifierDataConfig, *, task: str, out: Path):
    """The labelled set named by ``cfg`` (simulated into ``out/data`` when asked)."""
    from clumpdet.data.classification import load_data

    if cfg.source == "simulate":
        from clumpdet.sim import simulate_galaxies

        target = out / "data" / SIM_TASK[task]
        if not (target / "labels.csv").is_file():
            simulate_galaxies(
                task=SIM_TASK[task],
                n=cfg.simulate_n,
                seed=cfg.simulate_seed,
                out=target,
                overwrite=True,
            )
        return read_sim_dir(target, task=task)
    if cfg.source == "sim_dir":
        if cfg.path is None:
            raise ConfigError("data.path: give the simulated folder for source: sim_dir")
        return read_sim_dir(cfg.path, task=task)
    return load_data(
        source=cfg.source,
        path=cfg.path,
        labels=cfg.labels,
        images_dir=cfg.images_dir,
        mapping=cfg.mapping,
        label_columns=cfg.label_columns or None,
        task=task,
    )


def make_classification_splits(
    cfg: ClassifierDataConfig, *, task: str, out: Path, return_counts: bool = False
) -> ClassificationSplits:
    """Load, split (stratified for classes), fit normalisation on train, build the datasets."""
    from clumpdet.data.classification import (
        ClassificationDataset,
        GalaxyAugmentation,
        stratified_split,
    )

    data = load_classification_data(cfg, task=task, out=out)
    strat = data.class_index() if task in ("merger", "four_class") else np.zeros(len(data), int)
    tr, va, te = stratified_split(strat, fractions=cfg.split, seed=0)
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
    )
    train = ClassificationDataset(data.subset(tr), augmentation=aug, **kw)
    val = ClassificationDataset(data.subset(va), **kw)
    test = ClassificationDataset(data.subset(te), **kw)
    return ClassificationSplits(train, val, test, pre, int(train.image_size[0]))
