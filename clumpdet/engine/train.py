"""Detector training on Lightning: progress bar, best-checkpoint selection, early stopping, CSV log,
resume, seeding, and the same config on CPU, one GPU or many (DDP).

Run layout (``clumpdet train CONFIG --out RUNDIR``)::

    RUNDIR/config.yaml            resolved config
    RUNDIR/checkpoints/last.ckpt  Lightning state for --resume (loaded with weights_only=True)
    RUNDIR/checkpoints/best.ckpt  best validation metric
    RUNDIR/model.pt               the best model as a clumpdet detector checkpoint (weights_only)
    RUNDIR/logs/metrics.csv       per-step / per-epoch log (Lightning CSVLogger)
    RUNDIR/training_curves.png    loss and validation metrics
    RUNDIR/val_metrics.json       best model's validation metrics
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from clumpdet.checkpoints import input_kind_of, load_detector, save_checkpoint
from clumpdet.config import save_config, to_dict
from clumpdet.data.coco import load_coco
from clumpdet.data.fits import file_pixel_scale
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.engine.checkpoint import restore_best_weights
from clumpdet.engine.config import TrainConfig
from clumpdet.engine.trainer import build_trainer, fit, start_run
from clumpdet.errors import CheckpointError, ConfigError, InputError
from clumpdet.models.detector import build_detector
from clumpdet.utils import atomic_write

log = logging.getLogger(__name__)

#: Validation metrics logged every epoch (``val/<name>``).
VAL_METRICS = ("f1", "completeness", "purity", "AP", "AP50")


class DetectorModule(L.LightningModule):
    """LightningModule around the torchvision Faster R-CNN.

    Parameters
    ----------
    config : TrainConfig
        Resolved training config.
    preprocessing : Preprocessing
        Bands, stretch and mean/std (mean/std are applied inside the model's transform).
    val_truth : dict
        COCO truth of the validation images (in memory).
    image_size : (int, int)
        Training image size, stored in the exported checkpoint.
    """

    def __init__(
        self,
        config: TrainConfig,
        preprocessing: Preprocessing,
        val_truth: dict[str, Any] | None,
        image_size: tuple[int, int],
    ) -> None:
        super().__init__()
        self.config = config
        self.preprocessing = preprocessing
        self.image_size = image_size
        self.val_truth = val_truth
        self.model = build_detector(
            config=config.model,
            in_chans=preprocessing.n_bands,
            image_mean=preprocessing.mean,
            image_std=preprocessing.std,
        )
        self._evaluator = None
        self._val_rows: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        self.epoch_metrics: dict[int, dict[str, float]] = {}

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        losses = self.model(images, targets)
        loss = sum(losses.values())
        bs = len(images)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=bs)
        for k, v in losses.items():
            self.log(f"train/{k}", v, on_step=False, on_epoch=True, batch_size=bs)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_rows = []

    def validation_step(self, batch, batch_idx: int) -> None:
        images, targets = batch
        outputs = self.model(images)
        for out, tgt in zip(outputs, targets):
            self._val_rows.append(
                (
                    int(tgt["image_id"]),
                    out["boxes"].detach().cpu().numpy(),
                    out["labels"].detach().cpu().numpy(),
                    out["scores"].detach().cpu().numpy(),
                )
            )

    def on_validation_epoch_end(self) -> None:
        from clumpdet.evaluation import DetectionEvaluator

        rows = self._val_rows
        if self.trainer.world_size > 1:  # gather every rank's detections (DDP)
            gathered: list[Any] = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        if self.val_truth is None or self.trainer.sanity_checking:
            return
        ev = DetectionEvaluator(
            self.val_truth,
            score_threshold=self.config.model.score_threshold,
            match=self.config.eval.match,
            iou_threshold=self.config.eval.iou_threshold,
            centre_radius=self.config.eval.centre_radius,
        )
        seen = set()
        for iid, b, lab, sc in rows:
            if iid in seen:  # DDP samplers may pad with repeated images
                continue
            seen.add(iid)
            ev.process(iid, b, lab, sc)
        metrics = ev.evaluate()
        logged = {}
        for name in VAL_METRICS:
            value = metrics.get(name, math.nan)
            value = 0.0 if value is None or not math.isfinite(value) else float(value)
            self.log(f"val/{name}", value, prog_bar=name in ("f1", "AP50"), sync_dist=False)
            logged[name] = value
        best_f1 = metrics.get("best_f1") or {}
        for name in ("threshold", "f1", "completeness", "purity"):
            value = best_f1.get(name, math.nan)
            logged[f"best_f1_{name}"] = math.nan if value is None else float(value)
        self.epoch_metrics[int(self.current_epoch)] = logged

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the per-epoch validation metrics in Lightning checkpoints (``last.ckpt``).

        A resumed run then exports the metrics, and the operating threshold, of the epoch whose
        weights it exports, not only those of the epochs it ran itself.
        """
        checkpoint["clumpdet_epoch_metrics"] = {
            int(e): {k: float(v) for k, v in m.items()} for e, m in self.epoch_metrics.items()
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the per-epoch validation metrics saved by :meth:`on_save_checkpoint`."""
        saved = checkpoint.get("clumpdet_epoch_metrics") or {}
        self.epoch_metrics.update({int(e): dict(m) for e, m in saved.items()})

    def configure_optimizers(self):
        o = self.config.optim
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
        if o.scheduler == "none":
            return opt
        total = max(1, int(self.trainer.estimated_stepping_batches))
        if o.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=o.lr, total_steps=total)
        else:
            warm = int(total * o.warmup_epochs / max(1, o.max_epochs))

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                t = (step - warm) / max(1, total - warm)
                return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@dataclasses.dataclass
class PreparedData:
    """Datasets and truth for a training run.

    ``input`` describes the training images (:func:`clumpdet.checkpoints.input_kind_of` of the
    first one), ``pixel_scale`` their arcsec/pixel (from the first one's WCS, else
    :data:`clumpdet.checkpoints.DEFAULT_PIXEL_SCALE`) and ``psf_fwhm_px`` their median PSF FWHM
    in pixels (the COCO ``images`` records' ``psf_fwhm_px``; None when absent); all are stored in
    the exported checkpoint.
    """

    train: Any
    val: Any
    val_truth: dict[str, Any]
    preprocessing: Preprocessing
    image_size: tuple[int, int]
    input: dict[str, str]
    pixel_scale: float | None = None
    psf_fwhm_px: float | None = None


def _median_psf_fwhm_px(doc: dict[str, Any]) -> float | None:
    """Median ``psf_fwhm_px`` of a COCO set's image records (None if none has one)."""
    vals = [float(im["psf_fwhm_px"]) for im in doc["images"] if im.get("psf_fwhm_px")]
    return float(np.median(vals)) if vals else None


def _subset_coco(doc: dict[str, Any], ids: list[int]) -> dict[str, Any]:
    keep = set(ids)
    out = {k: v for k, v in doc.items() if k not in ("images", "annotations")}
    out["images"] = [im for im in doc["images"] if int(im["id"]) in keep]
    out["annotations"] = [a for a in doc["annotations"] if int(a["image_id"]) in keep]
    return out


def _simulate_if_needed(config: TrainConfig, out: Path) -> tuple[str, str | None]:
    d = config.data
    if d.train is not None:
        return d.train, d.val
    from clumpdet.sim.run import prepare_sets, simulator

    s = d.simulate
    sim = simulator(s.kind)
    if not sim.detection:
        raise ConfigError(f"data.simulate.kind: {s.kind!r} simulates classification sets")
    if tuple(config.model.class_names) != sim.class_names:
        raise ConfigError(
            f"model.class_names {list(config.model.class_names)} do not match the {s.kind!r} "
            f"simulator's categories {list(sim.class_names)}"
        )
    if s.val_config is None or s.val_config == s.config:
        splits = {"train": (s.n_train, s.seed), "val": (s.n_val, s.seed + 1)}
        sets = prepare_sets(s.kind, splits, config=s.config, out=out / "data")
    else:  # train on one population, select the checkpoint on another
        sets = {
            **prepare_sets(
                s.kind, {"train": (s.n_train, s.seed)}, config=s.config, out=out / "data"
            ),
            **prepare_sets(
                s.kind, {"val": (s.n_val, s.seed + 1)}, config=s.val_config, out=out / "data"
            ),
        }
    if s.rendering == "fits":
        if s.bin != 1:
            raise ConfigError("data.simulate.bin applies to rendering: colour only")
        return str(sets["train"] / "annotations.json"), str(sets["val"] / "annotations.json")
    return tuple(str(_colour_set(Path(sets[k]), s.bin)) for k in ("train", "val"))  # type: ignore[return-value]


def _colour_set(sim_dir: Path, factor: int) -> Path:
    """The colour detection set of a simulated dir (``DIR/colour/``), binned if asked."""
    from clumpdet.data.dataset import bin_detection_set

    ann = sim_dir / "colour" / "annotations.json"
    if not ann.is_file():
        raise ConfigError(
            f"data.simulate.rendering: colour but {ann} was not written; use a sim config with "
            "render.colour: true (configs/sim/clumps_sdss_colour.yaml)"
        )
    if factor == 1:
        return ann
    target = sim_dir / f"colour_bin{int(factor)}" / "annotations.json"
    if target.is_file():
        return target
    return bin_detection_set(ann, target.parent, factor=int(factor))


def prepare_data(
    config: TrainConfig, out: Path, *, backbone_preprocessing: dict | None
) -> PreparedData:
    """Load (or simulate) the data, split it and fix the preprocessing.

    The stretch and bands come from ``config.data``; per-band mean/std come from the backbone's
    pretrained preprocessing when it has one (ImageNet or a galaxy checkpoint), otherwise they
    are fitted on up to 200 training images.
    """
    from clumpdet.data.augment import build_augmentation
    from clumpdet.data.dataset import DetectionDataset, split_ids

    d = config.data
    train_path, val_path = _simulate_if_needed(config, out)
    train_doc = load_coco(train_path)
    train_ids = [int(im["id"]) for im in train_doc["images"]]
    if not train_ids:
        raise InputError(train_path, "no images listed")
    if val_path is None:
        tr, va = split_ids(train_ids, fractions=(1 - d.val_fraction, d.val_fraction), seed=0)[:2]
        train_ids, val_ids, val_doc, val_src = list(tr), list(va), train_doc, train_path
    else:
        val_doc = load_coco(val_path)
        val_ids = [int(im["id"]) for im in val_doc["images"]]
        val_src = val_path
    if d.max_train_images is not None:
        train_ids = train_ids[: d.max_train_images]
    sizes = {(int(im["height"]), int(im["width"])) for im in train_doc["images"]}
    image_size = max(sizes)

    stretch_pre = Preprocessing(bands=d.bands, stretch=d.stretch, stretch_params=d.stretch_params)
    if backbone_preprocessing and backbone_preprocessing.get("mean"):
        mean, std = backbone_preprocessing["mean"], backbone_preprocessing["std"]
        if len(mean) != len(d.bands):
            mean = [float(np.mean(mean))] * len(d.bands)
            std = [float(np.mean(std))] * len(d.bands)
        preprocessing = dataclasses.replace(stretch_pre, mean=tuple(mean), std=tuple(std))
    else:
        root = Path(train_doc["_root"])
        by_id = {int(im["id"]): im for im in train_doc["images"]}
        sample = [root / by_id[i]["file_name"] for i in train_ids[:200]]
        preprocessing = stretch_pre.fit_normalisation(sample)

    a = d.augment
    aug = build_augmentation(
        hflip=a.hflip, vflip=a.vflip, rot90=a.rot90, shift=a.shift, scale=a.scale
    )
    train_ds = DetectionDataset(
        train_path, preprocessing=stretch_pre, augmentation=aug, image_ids=train_ids, cache=d.cache
    )
    val_ds = DetectionDataset(
        val_src, preprocessing=stretch_pre, augmentation=None, image_ids=val_ids, cache=d.cache
    )
    return PreparedData(
        train=train_ds,
        val=val_ds,
        val_truth=_subset_coco(val_doc, val_ids),
        preprocessing=preprocessing,
        image_size=image_size,
        input=_input_record(train_doc),
        pixel_scale=file_pixel_scale(
            Path(train_doc["_root"]) / train_doc["images"][0]["file_name"]
        ),
        psf_fwhm_px=_median_psf_fwhm_px(train_doc),
    )


def _input_record(train_doc: dict[str, Any]) -> dict[str, str]:
    """Checkpoint ``input`` of a training set; colour sets also state their channel order."""
    rec = input_kind_of(Path(train_doc["_root"]) / train_doc["images"][0]["file_name"])
    if rec["kind"] in ("png", "jpeg"):
        rendering = (train_doc.get("info") or {}).get("rendering") or {}
        ch = rendering.get("channels") or {"red": "i", "green": "r", "blue": "g"}
        rec["channels"] = " ".join(f"{c}={ch.get(c, '?')}" for c in ("red", "green", "blue"))
        rec["bin"] = str(int((train_doc.get("info") or {}).get("bin", 1)))
    return rec


def train_detector(
    config: TrainConfig,
    *,
    out: str | Path,
    resume: str | Path | None = None,
) -> Path:
    """Train a detector and export the best model as ``out/model.pt``.

    Parameters
    ----------
    config : TrainConfig
        Resolved configuration (see ``configs/detector/``).
    out : str or Path
        Run directory (created).
    resume : str or Path, optional
        A Lightning ``last.ckpt`` of an interrupted run to continue from.

    Returns
    -------
    Path
        The exported detector checkpoint.
    """
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

    from clumpdet.data.dataset import detection_collate
    from clumpdet.models.backbones import build_trunk

    t = config.trainer
    out = start_run(out, t, resume=resume)  # a bad resume file fails before any work
    save_config(config, out / "config.yaml")

    # the trunk's own preprocessing (pretrained mean/std) decides the normalisation
    probe = build_trunk(config.model.backbone, in_chans=len(config.data.bands))
    data = prepare_data(config, out, backbone_preprocessing=probe.pretrained_preprocessing)
    del probe

    preprocessing = data.preprocessing
    warm = None
    if config.init_from is not None:
        warm = load_detector(config.init_from)
        preprocessing = warm.preprocessing
    module = DetectorModule(config, preprocessing, data.val_truth, data.image_size)
    if warm is not None:
        try:
            module.model.load_state_dict(warm.model.state_dict())
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise CheckpointError(
                config.init_from, f"init_from weights do not fit this model ({first})"
            ) from None
        del warm
    bs = config.optim.batch_size
    loader_kw = dict(
        collate_fn=detection_collate,
        num_workers=config.data.num_workers,
        persistent_workers=config.data.num_workers > 0,
    )
    train_dl = DataLoader(data.train, batch_size=bs, shuffle=True, drop_last=False, **loader_kw)
    val_dl = DataLoader(data.val, batch_size=max(bs, 8), shuffle=False, **loader_kw)

    ckpt_dir = out / "checkpoints"
    best_cb = ModelCheckpoint(
        dirpath=ckpt_dir, filename="best", monitor=t.monitor, mode="max", save_last=True
    )
    stop_cb = EarlyStopping(monitor=t.monitor, mode="max", patience=t.patience)
    trainer = build_trainer(
        t,
        out=out,
        max_epochs=config.optim.max_epochs,
        callbacks=[best_cb, stop_cb],
        deterministic=False,
    )
    fit(trainer, module, train_dl, val_dl, resume=resume)

    if not trainer.is_global_zero:
        return out / "model.pt"
    best_path = restore_best_weights(module, best_cb)
    if not module.epoch_metrics and data.val_truth is not None:
        # a run resumed from a checkpoint without saved metrics that had no epoch left to run:
        # measure the exported weights once, so the threshold still comes from validation
        trainer.validate(module, val_dl, verbose=False)
    # the validation metrics of the epoch whose weights are exported (not the last epoch's)
    key = t.monitor.split("/", 1)[1]
    metrics: dict[str, float] = {}
    if module.epoch_metrics:
        best_epoch = max(module.epoch_metrics, key=lambda e: module.epoch_metrics[e][key])
        metrics = {"epoch": float(best_epoch), **module.epoch_metrics[best_epoch]}
    schedule = training_schedule(trainer, stop_cb, module)
    model_config = to_dict(config.model)
    model_config["score_threshold"] = metrics["operating_threshold"] = operating_threshold(
        config, metrics
    )
    model_path = save_checkpoint(
        out / "model.pt",
        kind="detector",
        model=module.model,
        preprocessing=preprocessing,
        model_config=model_config,
        image_size=data.image_size,
        input=data.input,
        pixel_scale=data.pixel_scale,
        psf_fwhm_px=data.psf_fwhm_px,
        config=to_dict(config),
        metrics=metrics,
    )
    metrics_csv = out / "logs" / "metrics.csv"
    if metrics_csv.is_file():
        from clumpdet.engine.curves import plot_training_curves

        plot_training_curves(metrics_csv, out / "training_curves.png", monitor=t.monitor)
    with atomic_write(out / "val_metrics.json", "w") as fh:
        record = {"best_checkpoint": os.path.basename(best_path or ""), **metrics, **schedule}
        json.dump(record, fh, indent=2)
    return model_path


def operating_threshold(config: TrainConfig, metrics: dict[str, float]) -> float:
    """Score threshold of the exported checkpoint (``eval.operating_threshold``).

    Parameters
    ----------
    config : TrainConfig
        ``eval.operating_threshold``: ``"config"`` keeps ``model.score_threshold``; ``"val_f1"``
        takes ``metrics["best_f1_threshold"]`` (the exported epoch's best validation F1),
        raised to at least ``model.min_score``.
    metrics : dict
        Validation metrics of the exported epoch.

    Returns
    -------
    float
        The threshold (``model.score_threshold`` when the validation gave none, e.g. no
        detections).
    """
    chosen = metrics.get("best_f1_threshold", math.nan)
    if config.eval.operating_threshold == "config" or not math.isfinite(chosen):
        return float(config.model.score_threshold)
    return float(min(1.0, max(config.model.min_score, chosen)))


def training_schedule(trainer: L.Trainer, stop_cb: Any, module: DetectorModule) -> dict[str, Any]:
    """How long a finished run trained and why it stopped (written to ``val_metrics.json``).

    Returns
    -------
    dict
        ``epochs_run`` (epochs completed), ``steps`` (optimiser steps), ``best_epoch`` (epoch,
        from 0, of the exported weights), ``early_stopped`` (early stopping ended the run) and
        ``stopped_epoch`` (that epoch, from 0; ``None`` when the run used its whole budget).
    """
    max_epochs = trainer.max_epochs if trainer.max_epochs is not None else -1
    early = int(getattr(stop_cb, "stopped_epoch", 0) or 0) > 0 or (
        0 <= trainer.current_epoch < max_epochs
    )
    monitor = module.config.trainer.monitor.split("/", 1)[1]
    best = None
    if module.epoch_metrics:
        best = int(max(module.epoch_metrics, key=lambda e: module.epoch_metrics[e][monitor]))
    return {
        "epochs_run": int(trainer.current_epoch),
        "steps": int(trainer.global_step),
        "best_epoch": best,
        "early_stopped": early,
        "stopped_epoch": int(trainer.current_epoch) - 1 if early else None,
    }
