"""Backbone-transfer experiment: detection quality vs backbone, trainable depth and training size.

The grid is ``backbones x trainable x train_sizes x seeds`` (Popp et al. 2024 compare ImageNet
and Zoobot ResNet-50s, frozen vs top-3 trainable, on learning curves from 200 to ~13k images).
Every *cell* trains a detector from a base detector config with ``data.max_train_images = size``,
the cell's seed and backbone, then scores it on one fixed test set (completeness, purity, F1,
AP50, per class). Output layout::

    OUT/transfer_config.yaml        the resolved experiment config
    OUT/data/{train,val,test}/      simulated sets (when no COCO files are given)
    OUT/data/clumpy/                clumpy-vs-not cutouts of ``clump_classifier`` arms
    OUT/pretrain/<label>/           trunks trained for ``pretrain`` / ``clump_classifier`` arms
    OUT/cells/<cell_id>/run/        the cell's training run (model.pt, curves ...)
    OUT/cells/<cell_id>/eval/       its test metrics and plots
    OUT/cells/<cell_id>/result.json the cell's row, written atomically last
    OUT/results.csv, results.parquet    one row per cell (tidy)
    OUT/classification.csv          one row per classification cell (when configured)
    OUT/learning_curves.png, OUT/backbones_at_largest_size.png, OUT/summary.md

Resuming: a cell whose ``result.json`` exists with status ``ok`` is not recomputed; a cell whose
backbone could not be built (e.g. ImageNet weights offline, a ``backbone.pt`` not written yet)
is recorded as ``"skipped: <reason>"`` and retried on the next run (the check costs a second).

Each cell trains until validation stops improving, within a step budget that grows with its
training set (:func:`clumpdet.experiments.transfer_config.cell_schedule`), and records the
budget, the epochs and steps it used, its best and its early-stopping epoch. The grid
is configured in :mod:`~clumpdet.experiments.transfer_config`; tables, plots and the summary
are written by :mod:`~clumpdet.experiments.transfer_report`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from clumpdet.config import deep_merge, load_config, save_config, to_dict
from clumpdet.errors import ClumpdetError, ConfigError
from clumpdet.experiments.transfer_config import (
    BackboneEntry,
    ClassificationEntry,
    TransferConfig,
    cell_id,
    cell_schedule,
    slug,
)
from clumpdet.experiments.transfer_report import (
    CLASSIFICATION_COLUMNS,
    RESULT_COLUMNS,
    plot_transfer_results,
    write_table,
    write_transfer_summary,
)
from clumpdet.utils import atomic_write


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, obj: Any) -> None:
    with atomic_write(path, "w") as fh:
        json.dump(obj, fh, indent=2, default=float)


def _unloadable_backbone(backbone: Any, *, in_chans: int) -> str | None:
    """``"skipped: <why>"`` when a cell's backbone (config) cannot be built, else ``None``.

    A backbone whose weights cannot be loaded skips its cell instead of crashing the grid.
    """
    from clumpdet.models.backbones import BackboneConfig, build_trunk

    name = str(to_dict(backbone).get("name", ""))
    if name.endswith((".pt", ".pth", ".safetensors")) and not Path(name).is_file():
        return f"skipped: backbone file {name} not found"
    try:
        build_trunk(BackboneConfig(**to_dict(backbone)), in_chans=in_chans)
    except ClumpdetError as exc:
        return f"skipped: {_one_line(exc)}"
    return None


def _finished(cell_dir: Path) -> dict[str, Any] | None:
    """The result of a cell that an earlier run finished (status ``ok``), else ``None``."""
    done = _read_result(cell_dir / "result.json")
    return done if done is not None and done.get("status") == "ok" else None


def _run_cell(
    cell_dir: Path,
    row: dict[str, Any],
    *,
    pretrain_error: str | None,
    run: Callable[..., dict[str, Any]],
) -> dict[str, Any]:
    """``run(row=row)`` unless the cell's backbone failed to pretrain; writes ``result.json``."""
    if pretrain_error is not None:
        row.update(status=pretrain_error, wall_s=0.0)
    else:
        row = run(row=row)
    _write_json(cell_dir / "result.json", row)
    return row


def _nan_to_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _prepare_data(config: TransferConfig, out: Path) -> dict[str, str]:
    d = config.data
    if d.train is not None:
        from clumpdet.data.coco import load_coco

        sets = {"train": d.train, "val": d.val, "test": d.test}
        for path in sets.values():
            load_coco(path)  # InputError naming the file if it is unreadable
        return {k: str(v) for k, v in sets.items()}
    from clumpdet.sim.run import prepare_sets

    s = d.simulate
    splits = {
        "train": (s.n_train, s.seed),
        "val": (s.n_val, s.seed + 1),
        "test": (s.n_test, s.seed + 2),
    }
    sets = prepare_sets("clumps", splits, config=s.config, out=out / "data")
    return {k: str(v / "annotations.json") for k, v in sets.items()}


def _pretrain_backbone(entry: BackboneEntry, out: Path, *, progress: bool) -> Path:
    """Pretrain the entry's galaxy trunk once (resumable) and return its ``backbone.pt``.

    A config with a ``tasks`` list is a joint ``clumpdet pretrain`` job; any other is a
    single-task classifier config.
    """
    import yaml

    from clumpdet.engine.classify import ClassifierTrainConfig, train_classifier
    from clumpdet.engine.pretrain import PretrainConfig, pretrain_backbone

    run = out / "pretrain" / slug(entry.name)
    backbone = run / "backbone.pt"
    if backbone.is_file():
        return backbone
    overrides = [*entry.pretrain_set]
    if not progress:
        overrides.append("trainer.progress_bar=false")
    with open(entry.pretrain, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    if isinstance(raw, dict) and "tasks" in raw:
        pretrain_backbone(load_config(PretrainConfig, entry.pretrain, overrides), out=run)
    else:
        train_classifier(load_config(ClassifierTrainConfig, entry.pretrain, overrides), out=run)
    if not backbone.is_file():
        raise ConfigError(f"{entry.pretrain}: pretraining wrote no backbone.pt (use model: trunk)")
    return backbone


def write_clumpy_labels(coco: str | Path, out: str | Path) -> Path:
    """A ``folder``-reader label table ``id,clumpy`` of the images of a COCO file.

    ``clumpy`` is 1 when the image's truth holds at least one box of the ``clump`` category
    (id 1 when no category has that name), else 0. ``id`` is the image file relative to the
    COCO file's folder (use ``images_dir`` = that folder and ``image_pattern: "{id}"``).

    Returns
    -------
    Path
        ``out`` (written atomically).
    """
    from clumpdet.data.coco import load_coco

    doc = load_coco(coco)
    clump = next((int(c["id"]) for c in doc["categories"] if c.get("name") == "clump"), 1)
    clumpy = {int(a["image_id"]) for a in doc["annotations"] if int(a["category_id"]) == clump}
    rows = [f"{im['file_name']},{int(int(im['id']) in clumpy)}" for im in doc["images"]]
    out = Path(out)
    with atomic_write(out, "w") as fh:
        fh.write("\n".join(["id,clumpy", *rows]) + "\n")
    return out


def _clump_classifier_backbone(
    entry: BackboneEntry,
    start: dict[str, Any],
    config: TransferConfig,
    sets: dict[str, str],
    out: Path,
    *,
    progress: bool,
) -> Path:
    """Fine-tune the trunk ``start`` as a clumpy-vs-not classifier; return its ``backbone.pt``.

    Resumable: an existing ``OUT/pretrain/<name>/backbone.pt`` is reused.
    """
    from clumpdet.engine.classify import ClassifierTrainConfig, train_classifier
    from clumpdet.sim.run import prepare_sets

    stage = entry.clump_classifier
    assert stage is not None
    run = out / "pretrain" / slug(entry.name)
    backbone = run / "backbone.pt"
    if backbone.is_file():
        return backbone
    if config.data.train is None:
        s = config.data.simulate
        split = {"clumpy": (stage.n_images, s.seed + 3)}
        folder = prepare_sets("clumps", split, config=s.config, out=out / "data")["clumpy"]
        coco = folder / "annotations.json"
    else:  # real labelled boxes: the detector's training images, labelled clumpy or not
        coco = Path(sets["train"])
    labels = write_clumpy_labels(coco, out / "data" / f"clumpy_labels_{slug(entry.name)}.csv")
    cfg = load_config(ClassifierTrainConfig, stage.config, stage.set)
    bb = {k: v for k, v in start.items() if k in ("name", "weights")}
    over: dict[str, Any] = {
        "data": {
            "source": "folder",
            "labels": str(labels),
            "images_dir": str(Path(coco).parent),
            "image_pattern": "{id}",
            "label_columns": ["clumpy"],
            "id_column": "id",
        },
        "model": {"backbone": bb},
    }
    if not progress:
        over["trainer"] = {"progress_bar": False}
    cfg = load_config(ClassifierTrainConfig, None, deep_merge(to_dict(cfg), over))
    missing = _unloadable_backbone(cfg.model.backbone, in_chans=len(cfg.data.bands) or 3)
    if missing is not None:
        raise ConfigError(f"clump_classifier of {entry.name}: start trunk {missing[9:]}")
    train_classifier(cfg, out=run)
    if not backbone.is_file():
        raise ConfigError(f"{stage.config}: the classifier wrote no backbone.pt (use model: trunk)")
    return backbone


def _backbone_dict(
    entry: BackboneEntry, stages: int, pretrained: dict[str, Path]
) -> dict[str, Any]:
    bb = dict(entry.backbone)
    if entry.name in pretrained:
        bb["name"] = str(pretrained[entry.name])
    bb["trainable_stages"] = stages
    return bb


def purity_at_completeness(metrics: dict[str, Any], target: float = 0.9) -> float:
    """Highest purity over the score thresholds whose completeness is at least ``target``.

    Parameters
    ----------
    metrics : dict
        :func:`clumpdet.evaluation.evaluate_detections` output (its ``curves.threshold``).
    target : float
        Required completeness.

    Returns
    -------
    float
        The purity, NaN when no threshold reaches ``target`` completeness.
    """
    curve = ((metrics.get("curves") or {}).get("threshold")) or {}
    best = math.nan
    for c, p in zip(curve.get("completeness", []), curve.get("purity", [])):
        if c is None or p is None or not (math.isfinite(c) and math.isfinite(p)):
            continue
        if c >= target and not p <= best:
            best = float(p)
    return best


def _metrics_row(m: dict[str, Any]) -> dict[str, Any]:
    pc = m.get("per_class", {}) or {}
    clump = pc.get("clump", {}) or {}
    return {
        "completeness": m.get("completeness"),
        "purity": m.get("purity"),
        "f1": m.get("f1"),
        "AP50": m.get("AP50"),
        "purity_at_c90": purity_at_completeness(m, 0.9),
        "clump_completeness": clump.get("completeness"),
        "clump_purity": clump.get("purity"),
    }


def _predict_test_set(checkpoint: Path, coco: str, out: Path) -> Path:
    """COCO results of ``checkpoint`` on every image of ``coco`` (all scores >= min_score).

    Only the COCO results are needed to score a cell, so the catalogue (photometry, WCS) that
    :func:`clumpdet.inference.run.run_detection` also builds is skipped.
    """
    from clumpdet.inference.predictor import Predictor

    return Predictor.from_checkpoint(checkpoint).predict_coco(coco).write(out)


def _run_detection_cell(
    *,
    config: TransferConfig,
    base: dict[str, Any],
    sets: dict[str, str],
    cell_dir: Path,
    row: dict[str, Any],
    backbone: dict[str, Any],
    progress: bool,
) -> dict[str, Any]:
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import train_detector
    from clumpdet.evaluation import evaluate_detections

    t0 = time.perf_counter()
    over = {
        "data": {
            "train": sets["train"],
            "val": sets["val"],
            "max_train_images": row["train_size"],
        },
        "model": {"backbone": backbone},
        "trainer": {"seed": row["seed"]},
    }
    if not progress:
        over["trainer"]["progress_bar"] = False
    cfg_dict = deep_merge(base, over)
    cfg = load_config(TrainConfig, None, cfg_dict)
    plan = cell_schedule(config, train_size=row["n_train"], batch_size=cfg.optim.batch_size)
    cfg.optim.max_epochs = plan.max_epochs
    cfg.trainer.check_val_every_n_epoch = plan.val_every
    if plan.patience is not None:
        cfg.trainer.patience = plan.patience
    row.update(
        epochs=plan.max_epochs,
        step_budget=plan.step_budget,
        val_every=plan.val_every,
        patience=cfg.trainer.patience,
    )
    skipped = _unloadable_backbone(cfg.model.backbone, in_chans=len(cfg.data.bands))
    if skipped is not None:
        row.update(status=skipped, wall_s=time.perf_counter() - t0)
        return row
    model = train_detector(cfg, out=cell_dir / "run")
    val = _read_result(cell_dir / "run" / "val_metrics.json") or {}
    for key in ("epochs_run", "steps", "best_epoch", "early_stopped", "stopped_epoch"):
        row[key] = val.get(key)
    row["val_f1"] = _nan_to_none(val.get("f1"))
    predictions = _predict_test_set(model, sets["test"], cell_dir / "test_predictions.json")
    thr = config.score_threshold
    metrics = evaluate_detections(
        truth=sets["test"],
        predictions=predictions,
        out=cell_dir / "eval",
        score_threshold=cfg.model.score_threshold if thr is None else thr,
        match=cfg.eval.match,
        iou_threshold=cfg.eval.iou_threshold,
        centre_radius=cfg.eval.centre_radius,
    )
    row.update({k: _nan_to_none(v) for k, v in _metrics_row(metrics).items()})
    row["checkpoint"] = str(model)
    row["status"] = "ok"
    row["wall_s"] = time.perf_counter() - t0
    return row


def _run_classification_cell(
    *,
    entry: ClassificationEntry,
    cell_dir: Path,
    row: dict[str, Any],
    backbone: dict[str, Any],
    progress: bool,
) -> dict[str, Any]:
    from clumpdet.engine.classify import ClassifierTrainConfig, train_classifier

    t0 = time.perf_counter()
    bb = {k: v for k, v in backbone.items() if k in ("name", "weights", "trainable_stages")}
    over: dict[str, Any] = {"model": {"backbone": bb}, "trainer": {"seed": row["seed"]}}
    if not progress:
        over["trainer"]["progress_bar"] = False
    cfg = load_config(ClassifierTrainConfig, entry.config, entry.set)
    cfg = load_config(ClassifierTrainConfig, None, deep_merge(to_dict(cfg), over))
    skipped = _unloadable_backbone(cfg.model.backbone, in_chans=3)
    if skipped is not None:
        row.update(status=skipped, wall_s=time.perf_counter() - t0)
        return row
    path = train_classifier(cfg, out=cell_dir / "run")
    metrics = json.loads((cell_dir / "run" / "test_metrics.json").read_text())
    for k in ("accuracy", "auc", "rmse"):
        row[k] = _nan_to_none(metrics.get(k))
    row.update(status="ok", checkpoint=str(path), wall_s=time.perf_counter() - t0)
    return row


def run_transfer_grid(
    config: TransferConfig,
    *,
    out: str | Path,
    command: str | None = None,
    progress: bool = True,
    report_only: bool = False,
) -> pd.DataFrame:
    """Run (or resume) the transfer grid and write tables, plots and the summary.

    Parameters
    ----------
    config : TransferConfig
        The grid.
    out : str or Path
        Output directory (created; an existing one is resumed).
    command : str, optional
        The command line, recorded in ``summary.md``.
    progress : bool
        Show training progress bars.
    report_only : bool
        Train nothing: tabulate and plot the cells finished so far (the others are listed as
        not run), e.g. while a long grid is still running elsewhere.

    Returns
    -------
    pandas.DataFrame
        One row per detection cell, columns :data:`RESULT_COLUMNS`.
    """
    from clumpdet.config import parse_overrides, read_yaml
    from clumpdet.data.coco import load_coco
    from clumpdet.engine.config import TrainConfig

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if not report_only:
        save_config(config, out / "transfer_config.yaml")
    # validate the base detector config and its overrides before any work
    load_config(TrainConfig, config.detector_config, config.detector_set)
    base = deep_merge(read_yaml(config.detector_config), parse_overrides(config.detector_set))
    sets: dict[str, str] = {}
    n_available = max(config.train_sizes)
    if not report_only:
        sets = _prepare_data(config, out)
        n_available = len(load_coco(sets["train"])["images"])

    pretrained: dict[str, Path] = {}
    pretrain_errors: dict[str, str] = {}
    by_name = {b.name: b for b in config.backbones}
    for entry in config.backbones:
        if report_only:
            break
        stage = entry.clump_classifier
        try:
            if stage is not None:
                if stage.start in pretrain_errors:
                    pretrain_errors[entry.name] = pretrain_errors[stage.start]
                    continue
                start = _backbone_dict(by_name[stage.start], -1, pretrained)
                pretrained[entry.name] = _clump_classifier_backbone(
                    entry, start, config, sets, out, progress=progress
                )
            elif entry.pretrain is not None:
                pretrained[entry.name] = _pretrain_backbone(entry, out, progress=progress)
        except ClumpdetError as exc:
            pretrain_errors[entry.name] = f"skipped: pretraining failed ({_one_line(exc)})"

    rows = []
    # seeds outermost, small sets first: an interrupted run holds every arm at the sizes it
    # reached
    cells = [
        (b, t, n, s)
        for s in config.seeds
        for n in sorted(config.train_sizes)
        for b in config.backbones
        for t in config.trainable
    ]
    for i, (b, t, n, s) in enumerate(cells):
        cid = cell_id(backbone=b.name, trainable=t.name, train_size=n, seed=s)
        cell_dir = out / "cells" / cid
        done = _finished(cell_dir)
        if done is not None:
            rows.append(done)
            continue
        row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
        row.update(
            cell_id=cid,
            backbone=b.name,
            trainable=t.name,
            trainable_stages=t.stages,
            train_size=n,
            n_train=min(n, n_available),
            seed=s,
        )
        if report_only:  # a skipped cell keeps its reason; a missing one is "not run yet"
            earlier = _read_result(cell_dir / "result.json") or {}
            row.update(status=earlier.get("status") or "not run yet", wall_s=0.0)
            rows.append(row)
            continue
        print(f"[transfer] cell {i + 1}/{len(cells)}: {cid}", flush=True)
        run = partial(
            _run_detection_cell,
            config=config,
            base=base,
            sets=sets,
            cell_dir=cell_dir,
            backbone=_backbone_dict(b, t.stages, pretrained),
            progress=progress,
        )
        row = _run_cell(cell_dir, row, pretrain_error=pretrain_errors.get(b.name), run=run)
        print(f"[transfer]   {row['status']} in {row['wall_s']:.1f} s", flush=True)
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    write_table(df, out, "results")

    cls_df = None
    if config.classification and not report_only:
        cls_df = _run_classification_grid(config, out, pretrained, pretrain_errors, progress)
        write_table(cls_df, out, "classification")
    plot_transfer_results(df, out=out)
    write_transfer_summary(
        df,
        out=out / "summary.md",
        command=command,
        classification=cls_df,
        reference=config.reference,
    )
    return df


def _run_classification_grid(
    config: TransferConfig,
    out: Path,
    pretrained: dict[str, Path],
    pretrain_errors: dict[str, str],
    progress: bool,
) -> pd.DataFrame:
    rows = []
    for entry in config.classification:
        task = entry.name or Path(entry.config).stem
        for b in config.backbones:
            for t in config.trainable:
                for s in config.seeds:
                    cid = f"{slug(task)}__{slug(b.name)}__{slug(t.name)}__s{int(s)}"
                    cell_dir = out / "classification" / cid
                    done = _finished(cell_dir)
                    if done is not None:
                        rows.append(done)
                        continue
                    row: dict[str, Any] = dict.fromkeys(CLASSIFICATION_COLUMNS)
                    row.update(
                        cell_id=cid,
                        task=task,
                        backbone=b.name,
                        trainable=t.name,
                        trainable_stages=t.stages,
                        seed=s,
                    )
                    run = partial(
                        _run_classification_cell,
                        entry=entry,
                        cell_dir=cell_dir,
                        backbone=_backbone_dict(b, t.stages, pretrained),
                        progress=progress,
                    )
                    pretrain_error = pretrain_errors.get(b.name)
                    rows.append(_run_cell(cell_dir, row, pretrain_error=pretrain_error, run=run))
    return pd.DataFrame(rows, columns=list(CLASSIFICATION_COLUMNS))
