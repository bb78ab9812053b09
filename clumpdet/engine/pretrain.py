"""Zoobot-style galaxy pretraining: one trunk trained jointly on several galaxy tasks.

``clumpdet pretrain CONFIG --out DIR`` trains a shared trunk with one head per task (vote-fraction
morphology, mergers, four-class ...). Every galaxy carries the label of the task it came from;
the other tasks' labels are *missing* and masked out of the loss, so sets with different labels
(and sizes) train one trunk together. All images are resized to ``image_size``. The result is
``DIR/backbone.pt``: a backbone checkpoint the detector registry loads by path, with the
preprocessing of the first task (its bands, stretch and mean/std) and its input kind.

Fine-tuning controls (Zoobot-like) are the backbone's ``trainable_stages`` (0 = heads only, a
linear probe of the pretrained trunk; n = top n stages) and ``optim.layer_decay`` (e.g. 0.75:
each deeper stage trains at 0.75x the learning rate of the one above).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from clumpdet.checkpoints import save_checkpoint
from clumpdet.config import save_config
from clumpdet.engine.classify import (
    ClassifierDataConfig,
    ClassifierOptimConfig,
    make_classification_splits,
    parameter_groups,
)
from clumpdet.engine.config import TrainerConfig
from clumpdet.engine.trainer import EpochLossModule, fit_by_val_loss, start_run
from clumpdet.errors import ConfigError
from clumpdet.models.backbones import BackboneConfig, build_trunk
from clumpdet.models.classifier import TaskHead
from clumpdet.tasks import TASKS, Task, get_task
from clumpdet.utils import atomic_write


@dataclass
class PretrainTask:
    """One task of the joint pretraining and where its labelled galaxies come from."""

    task: str = "gz_votes"
    weight: float = 1.0
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)


def _default_tasks() -> list[PretrainTask]:
    return [
        PretrainTask(task="gz_votes"),
        PretrainTask(task="merger"),
        PretrainTask(task="four_class"),
    ]


@dataclass
class PretrainConfig:
    """Joint multi-task pretraining.

    Attributes
    ----------
    tasks : list of PretrainTask
        Tasks, their loss weights and data (simulated by default).
    image_size : int
        Every image is resized to this side (pixels).
    backbone : BackboneConfig
        The trunk to pretrain (all stages returned; the last one is pooled).
    """

    tasks: list[PretrainTask] = field(default_factory=_default_tasks)
    image_size: int = 64
    backbone: BackboneConfig = field(
        default_factory=lambda: BackboneConfig(name="resnet18", out_indices=(1, 2, 3, 4))
    )
    dropout: float = 0.2
    optim: ClassifierOptimConfig = field(default_factory=ClassifierOptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ConfigError("tasks: give at least one task")
        names = [t.task for t in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"tasks: each task once, got {names}")
        for t in self.tasks:
            if t.task not in TASKS:
                raise ConfigError(
                    f"tasks: unknown task {t.task!r}; registered tasks: {', '.join(TASKS)}"
                )


class _Tagged(Dataset):
    """Items ``(image, target padded to k_max, task index)``: other tasks' labels are missing."""

    def __init__(self, base: Dataset, task_index: int, k_max: int) -> None:
        self.base, self.task_index, self.k_max = base, task_index, k_max

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        x, y = self.base[i][:2]
        pad = torch.full((self.k_max,), float("nan"))
        pad[: len(y)] = y
        return x, pad, self.task_index


class MultiTaskModule(EpochLossModule):
    """A shared trunk with one head per task; per-sample task masks select the loss terms.

    ``tasks`` are the :class:`~clumpdet.tasks.Task` objects of ``config.tasks``, in order (with
    the label names their data gave them).
    """

    def __init__(self, config: PretrainConfig, *, in_chans: int, tasks: list[Task]) -> None:
        super().__init__()
        self.config = config
        self.tasks = tasks
        self.trunk = build_trunk(config.backbone, in_chans=in_chans)
        self.heads = nn.ModuleList(
            TaskHead(self.trunk.channels[-1], n_out=t.n_outputs, dropout=config.dropout)
            for t in tasks
        )
        self._val: dict[int, list] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled trunk features ``(B, F)``."""
        maps = self.trunk(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(list(maps.values())[-1], 1), 1)

    def step_loss(self, batch):
        x, y, task_idx = batch
        feats = self(x)
        total = feats.new_zeros(())
        per_task = {}
        for k, (spec, task, head) in enumerate(zip(self.config.tasks, self.tasks, self.heads)):
            mask = task_idx == k
            if not bool(mask.any()):
                continue
            out = head(feats[mask])
            target = y[mask][:, : task.n_outputs]
            loss = task.loss(out, target)
            per_task[k] = (loss, out, target)
            total = total + spec.weight * loss
        return total, per_task

    def on_validation_epoch_start(self) -> None:
        self._val = {}

    def validation_step(self, batch, batch_idx: int) -> None:
        per_task = self.validation_outputs(batch)
        for k, (_, out, target) in per_task.items():
            pred = self.tasks[k].predict(out)
            self._val.setdefault(k, []).append((target.cpu().numpy(), pred.detach().cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        for k, rows in self._val.items():
            y = np.concatenate([r[0] for r in rows])
            p = np.concatenate([r[1] for r in rows])
            task = self.tasks[k]
            for name, v in task.headline_metrics(y, p).items():
                self.log(f"val/{self.config.tasks[k].task}_{name}", v)

    def configure_optimizers(self):
        o = self.config.optim
        groups = parameter_groups(self, lr=o.lr, layer_decay=o.layer_decay)
        return torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)


def pretrain_backbone(config: PretrainConfig, *, out: str | Path) -> Path:
    """Pretrain a trunk on the configured tasks and save ``out/backbone.pt``.

    Returns
    -------
    Path
        The backbone checkpoint (load it in a detector with ``model.backbone.name: <path>``).
    """

    t = config.trainer
    out = start_run(out, t)
    save_config(config, out / "config.yaml")
    splits = []
    for i, spec in enumerate(config.tasks):
        spec.data.resize = config.image_size
        s = make_classification_splits(
            spec.data, task=get_task(spec.task), out=out / f"task{i}", seed=t.seed
        )
        splits.append(s)
    tasks = [s.task for s in splits]
    k_max = max(t.n_outputs for t in tasks)
    n_chans = {s.preprocessing.n_bands for s in splits}
    if len(n_chans) != 1:
        raise ConfigError(f"tasks: all tasks need the same number of bands, got {sorted(n_chans)}")
    train = ConcatDataset([_Tagged(s.train, i, k_max) for i, s in enumerate(splits)])
    val = ConcatDataset([_Tagged(s.val, i, k_max) for i, s in enumerate(splits)])
    bs = config.optim.batch_size
    train_dl = DataLoader(train, batch_size=bs, shuffle=True)
    val_dl = DataLoader(val, batch_size=bs, shuffle=False)
    module = MultiTaskModule(config, in_chans=n_chans.pop(), tasks=tasks)
    trainer, _ = fit_by_val_loss(
        t,
        module,
        train_dl,
        val_dl,
        out=out,
        max_epochs=config.optim.max_epochs,
        patience=config.optim.patience,
    )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    with atomic_write(out / "pretrain_metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2)
    return save_checkpoint(
        out / "backbone.pt",
        kind="backbone",
        model=module.trunk,
        preprocessing=splits[0].preprocessing,
        input=splits[0].input,
        source={
            "pretrain_tasks": [s.task for s in config.tasks],
            "run": str(out),
            "image_size": config.image_size,
        },
    )


#: ``objective`` values of a pretraining config served by :mod:`clumpdet.engine.ssl`.
SSL_OBJECTIVES = ("simclr", "byol")


def load_pretrain_config(path: str | Path | None, overrides=()):
    """The pretraining config of ``path``: a :class:`PretrainConfig` (supervised galaxy tasks,
    ``objective: tasks`` or no ``objective``) or an :class:`~clumpdet.engine.ssl.SSLConfig`
    (``objective: simclr | byol``, self-supervised on a folder of unlabelled images).
    """
    from clumpdet.config import deep_merge, from_dict, parse_overrides, read_yaml

    data = read_yaml(path) if path is not None else {}
    data = deep_merge(data, parse_overrides(overrides))
    objective = str(data.get("objective", "tasks"))
    where = str(path) if path is not None else "config"
    if objective in SSL_OBJECTIVES:
        from clumpdet.engine.ssl import SSLConfig

        return from_dict(SSLConfig, data, where=where)
    if objective != "tasks":
        raise ConfigError(
            f"{where}: objective: choose tasks (supervised galaxy tasks) or "
            f"{' | '.join(SSL_OBJECTIVES)} (self-supervised), got {objective!r}"
        )
    data.pop("objective", None)
    return from_dict(PretrainConfig, data, where=where)


def run_pretraining(config, *, out: str | Path) -> Path:
    """Run :func:`pretrain_backbone` or :func:`~clumpdet.engine.ssl.pretrain_ssl` by config type."""
    from clumpdet.engine.ssl import SSLConfig, pretrain_ssl

    if isinstance(config, SSLConfig):
        return pretrain_ssl(config, out=out)
    return pretrain_backbone(config, out=out)
