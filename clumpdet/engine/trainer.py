"""Plumbing shared by the training loops (detector, classifier, pretraining).

One run layout for all of them: ``RUN/checkpoints/*.ckpt`` (Lightning, for ``--resume``) and
``RUN/logs/metrics.csv`` (per-epoch metrics), with the trainer settings of
:class:`~clumpdet.engine.config.TrainerConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch

from clumpdet.engine.checkpoint import read_lightning_checkpoint
from clumpdet.engine.config import TrainerConfig


def start_run(out: str | Path, trainer: TrainerConfig, *, resume: str | Path | None = None) -> Path:
    """Create the run directory, check ``resume``, set the torch threads and seed everything.

    Parameters
    ----------
    out : str or Path
        Run directory (created).
    trainer : TrainerConfig
        ``threads`` (torch intra-op threads, unset: torch's default) and ``seed`` (python,
        numpy, torch and dataloader workers).
    resume : str or Path, optional
        A Lightning checkpoint to continue from, checked before any work
        (:func:`~clumpdet.engine.checkpoint.read_lightning_checkpoint`).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    InputError, CheckpointError
        ``resume`` is missing, unreadable or not a Lightning training checkpoint.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if resume is not None:
        read_lightning_checkpoint(resume)
    if trainer.threads:
        torch.set_num_threads(trainer.threads)
    L.seed_everything(trainer.seed, workers=True, verbose=False)
    return out


def build_trainer(
    trainer: TrainerConfig,
    *,
    out: Path,
    max_epochs: int,
    callbacks: Sequence[Any],
    **options: Any,
) -> L.Trainer:
    """A Lightning ``Trainer`` with the run's settings, logging to ``out/logs/metrics.csv``.

    Parameters
    ----------
    trainer : TrainerConfig
        Accelerator, devices, strategy, nodes, precision, validation and logging intervals,
        progress bar.
    out : Path
        Run directory.
    max_epochs : int
        Epoch limit.
    callbacks : sequence
        Lightning callbacks (checkpointing, early stopping).
    **options
        Further ``Trainer`` arguments of one loop.

    Returns
    -------
    lightning.Trainer
        Without a sanity validation or a model summary.
    """
    from lightning.pytorch.loggers import CSVLogger

    return L.Trainer(
        accelerator=trainer.accelerator,
        devices=trainer.devices,
        strategy=trainer.strategy,
        num_nodes=trainer.num_nodes,
        precision=trainer.precision,
        max_epochs=max_epochs,
        callbacks=list(callbacks),
        logger=CSVLogger(save_dir=out, name="logs", version=""),
        log_every_n_steps=trainer.log_every_n_steps,
        check_val_every_n_epoch=trainer.check_val_every_n_epoch,
        enable_progress_bar=trainer.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **options,
    )


def fit(
    trainer: L.Trainer,
    module: L.LightningModule,
    train: Any,
    val: Any,
    *,
    resume: str | Path | None = None,
) -> None:
    """``trainer.fit`` on the ``train`` / ``val`` loaders, resuming from ``resume`` if given.

    The resume file is read with ``weights_only=True``.
    """
    trainer.fit(module, train, val, ckpt_path=str(resume) if resume else None, weights_only=True)


def fit_by_val_loss(
    trainer: TrainerConfig,
    module: L.LightningModule,
    train: Any,
    val: Any,
    *,
    out: Path,
    max_epochs: int,
    patience: int,
    **options: Any,
) -> tuple[L.Trainer, Any]:
    """Train with early stopping on ``val/loss`` and restore the weights of its lowest epoch.

    The loop of the pretraining objectives (supervised tasks, SSL): best and last Lightning
    checkpoints in ``out/checkpoints``, :func:`build_trainer` with ``options``, :func:`fit`, then
    :func:`~clumpdet.engine.checkpoint.restore_best_weights`.

    Returns
    -------
    (lightning.Trainer, ModelCheckpoint)
        The trainer after fitting (metrics, epochs, steps) and its best-checkpoint callback.
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from clumpdet.engine.checkpoint import restore_best_weights

    best = ModelCheckpoint(
        dirpath=out / "checkpoints", filename="best", monitor="val/loss", mode="min", save_last=True
    )
    lt = build_trainer(
        trainer,
        out=out,
        max_epochs=max_epochs,
        callbacks=[best, EarlyStopping(monitor="val/loss", patience=patience)],
        **options,
    )
    fit(lt, module, train, val)
    restore_best_weights(module, best)
    return lt, best


class EpochLossModule(L.LightningModule):
    """A module whose per-batch loss is logged per epoch as ``train/loss`` and ``val/loss``.

    Subclasses define :meth:`step_loss`.
    """

    def step_loss(self, batch: Any) -> tuple[torch.Tensor, Any]:
        """``(loss, outputs)`` of one batch (outputs are the subclass's, for validation)."""
        raise NotImplementedError

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss, _ = self.step_loss(batch)
        self.log(
            "train/loss",
            loss,
            prog_bar=True,
            on_step=False,
            on_epoch=True,
            batch_size=len(batch[0]),
        )
        return loss

    def validation_outputs(self, batch: Any) -> Any:
        """Log the batch's ``val/loss`` and return its outputs (of :meth:`step_loss`)."""
        loss, outputs = self.step_loss(batch)
        self.log("val/loss", loss, prog_bar=True, on_epoch=True, batch_size=len(batch[0]))
        return outputs
