"""Backbone-transfer experiment: detection quality vs backbone, trainable depth and training size.

The grid is ``backbones x trainable x train_sizes x seeds`` (Popp et al. 2024 compare ImageNet
and Zoobot ResNet-50s, frozen vs top-3 trainable, on learning curves from 200 to ~13k images).
Every *cell* trains a detector from a base detector config with ``data.max_train_images = size``,
the cell's seed and backbone, then scores it on one fixed test set (completeness, purity, F1,
AP50, per class). Output layout::

    OUT/transfer_config.yaml        the resolved experiment config
    OUT/data/{train,val,test}/      simulated sets (when no COCO files are given)
    OUT/pretrain/<label>/           galaxy classifiers trained for ``pretrain`` backbones
    OUT/cells/<cell_id>/run/        the cell's training run (model.pt, curves ...)
    OUT/cells/<cell_id>/eval/       its test metrics and plots
    OUT/cells/<cell_id>/result.json the cell's row, written atomically last
    OUT/results.csv, results.parquet    one row per cell (tidy)
    OUT/classification.csv          one row per classification cell (when configured)
    OUT/learning_curves.png, OUT/backbones_at_largest_size.png, OUT/summary.md

Resuming: a cell whose ``result.json`` exists with status ``ok`` is not recomputed; a cell whose
backbone could not be built (e.g. ImageNet weights offline) is recorded as
``"skipped: <reason>"`` and retried on the next run (the check costs a second).

Epochs: either a fixed ``epochs``, or ``steps``, a target number of optimiser steps per cell
(``epochs = clamp(round(steps / ceil(size / batch)), min_epochs, max_epochs)``) so that small
training sets are not under-trained relative to large ones. Neither keeps the detector config's
``optim.max_epochs``. The detector's early stopping on the validation set still applies.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clumpdet.config import deep_merge, load_config, save_config, to_dict
from clumpdet.errors import ClumpdetError, ConfigError
from clumpdet.utils import atomic_path, atomic_write

#: Columns of ``results.csv`` (in order).
RESULT_COLUMNS = (
    "cell_id",
    "backbone",
    "trainable",
    "trainable_stages",
    "train_size",
    "n_train",
    "seed",
    "status",
    "completeness",
    "purity",
    "f1",
    "AP50",
    "clump_completeness",
    "clump_purity",
    "wall_s",
    "epochs",
    "checkpoint",
)

#: Columns of ``classification.csv`` (in order).
CLASSIFICATION_COLUMNS = (
    "cell_id",
    "task",
    "backbone",
    "trainable",
    "trainable_stages",
    "seed",
    "status",
    "accuracy",
    "auc",
    "rmse",
    "wall_s",
    "checkpoint",
)


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
                if not _slug(lab):
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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(text)).strip("-")


def cell_id(*, backbone: str, trainable: str, train_size: int, seed: int) -> str:
    """Stable, file-name-safe id of a detection cell, e.g. ``galaxy__top3__n200__s0``."""
    return f"{_slug(backbone)}__{_slug(trainable)}__n{int(train_size)}__s{int(seed)}"


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
    from clumpdet.sim import load_sim_config, simulate_clumps

    s = d.simulate
    sim_cfg = load_sim_config(s.config)
    out_sets = {}
    for k, (n, seed) in {
        "train": (s.n_train, s.seed),
        "val": (s.n_val, s.seed + 1),
        "test": (s.n_test, s.seed + 2),
    }.items():
        target = out / "data" / k
        if not (target / "annotations.json").is_file():
            simulate_clumps(n=n, seed=seed, out=target, config=sim_cfg, overwrite=True)
        out_sets[k] = str(target / "annotations.json")
    return out_sets


def _pretrain_backbone(entry: BackboneEntry, out: Path, *, progress: bool) -> Path:
    """Pretrain the entry's galaxy trunk once (resumable) and return its ``backbone.pt``.

    A config with a ``tasks`` list is a joint ``clumpdet pretrain`` job; any other is a
    single-task classifier config.
    """
    import yaml

    from clumpdet.engine.classify import ClassifierTrainConfig, train_classifier
    from clumpdet.engine.pretrain import PretrainConfig, pretrain_backbone

    run = out / "pretrain" / _slug(entry.name)
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


def _backbone_dict(
    entry: BackboneEntry, stages: int, pretrained: dict[str, Path]
) -> dict[str, Any]:
    bb = dict(entry.backbone)
    if entry.name in pretrained:
        bb["name"] = str(pretrained[entry.name])
    bb["trainable_stages"] = stages
    return bb


def _metrics_row(m: dict[str, Any]) -> dict[str, Any]:
    pc = m.get("per_class", {}) or {}
    clump = pc.get("clump", {}) or {}
    return {
        "completeness": m.get("completeness"),
        "purity": m.get("purity"),
        "f1": m.get("f1"),
        "AP50": m.get("AP50"),
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
    from clumpdet.models.backbones import BackboneConfig, build_trunk

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
    epochs = epochs_for_size(
        config,
        train_size=row["n_train"],
        batch_size=cfg.optim.batch_size,
        default=cfg.optim.max_epochs,
    )
    cfg.optim.max_epochs = epochs
    row["epochs"] = epochs
    # a backbone whose weights cannot be loaded skips the cell instead of crashing the grid
    try:
        build_trunk(BackboneConfig(**to_dict(cfg.model.backbone)), in_chans=len(cfg.data.bands))
    except ClumpdetError as exc:
        row["status"] = f"skipped: {_one_line(exc)}"
        row["wall_s"] = time.perf_counter() - t0
        return row
    model = train_detector(cfg, out=cell_dir / "run")
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
    from clumpdet.models.backbones import BackboneConfig, build_trunk

    t0 = time.perf_counter()
    bb = {k: v for k, v in backbone.items() if k in ("name", "weights", "trainable_stages")}
    over: dict[str, Any] = {"model": {"backbone": bb}, "trainer": {"seed": row["seed"]}}
    if not progress:
        over["trainer"]["progress_bar"] = False
    cfg = load_config(ClassifierTrainConfig, entry.config, entry.set)
    cfg = load_config(ClassifierTrainConfig, None, deep_merge(to_dict(cfg), over))
    try:
        build_trunk(BackboneConfig(**to_dict(cfg.model.backbone)), in_chans=3)
    except ClumpdetError as exc:
        row["status"] = f"skipped: {_one_line(exc)}"
        row["wall_s"] = time.perf_counter() - t0
        return row
    path = train_classifier(cfg, out=cell_dir / "run")
    metrics = json.loads((cell_dir / "run" / "test_metrics.json").read_text())
    for k in ("accuracy", "auc", "rmse"):
        row[k] = _nan_to_none(metrics.get(k))
    row.update(status="ok", checkpoint=str(path), wall_s=time.perf_counter() - t0)
    return row


def _write_table(df: pd.DataFrame, out: Path, stem: str) -> None:
    with atomic_path(out / f"{stem}.csv") as tmp:
        df.to_csv(tmp, index=False)
    try:
        with atomic_path(out / f"{stem}.parquet") as tmp:
            df.to_parquet(tmp, index=False)
    except ImportError:  # no parquet engine: the CSV is the table
        pass


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
    for entry in config.backbones:
        if entry.pretrain is not None and not report_only:
            try:
                pretrained[entry.name] = _pretrain_backbone(entry, out, progress=progress)
            except ClumpdetError as exc:
                pretrain_errors[entry.name] = f"skipped: pretraining failed ({_one_line(exc)})"

    rows = []
    # seeds outermost: an interrupted run still holds one complete grid per finished seed
    cells = [
        (b, t, n, s)
        for s in config.seeds
        for b in config.backbones
        for t in config.trainable
        for n in config.train_sizes
    ]
    for i, (b, t, n, s) in enumerate(cells):
        cid = cell_id(backbone=b.name, trainable=t.name, train_size=n, seed=s)
        cell_dir = out / "cells" / cid
        done = _read_result(cell_dir / "result.json")
        if done is not None and done.get("status") == "ok":
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
        if report_only:
            row.update(status=done.get("status") if done else "not run yet", wall_s=0.0)
            rows.append(row)
            continue
        print(f"[transfer] cell {i + 1}/{len(cells)}: {cid}", flush=True)
        if b.name in pretrain_errors:
            row.update(status=pretrain_errors[b.name], wall_s=0.0)
        else:
            row = _run_detection_cell(
                config=config,
                base=base,
                sets=sets,
                cell_dir=cell_dir,
                row=row,
                backbone=_backbone_dict(b, t.stages, pretrained),
                progress=progress,
            )
        _write_json(cell_dir / "result.json", row)
        print(f"[transfer]   {row['status']} in {row['wall_s']:.1f} s", flush=True)
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    _write_table(df, out, "results")

    cls_df = None
    if config.classification and not report_only:
        cls_df = _run_classification_grid(config, out, pretrained, pretrain_errors, progress)
        _write_table(cls_df, out, "classification")
    plot_transfer_results(df, out=out)
    write_transfer_summary(df, out=out / "summary.md", command=command, classification=cls_df)
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
                    cid = f"{_slug(task)}__{_slug(b.name)}__{_slug(t.name)}__s{int(s)}"
                    cell_dir = out / "classification" / cid
                    done = _read_result(cell_dir / "result.json")
                    if done is not None and done.get("status") == "ok":
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
                    if b.name in pretrain_errors:
                        row.update(status=pretrain_errors[b.name], wall_s=0.0)
                    else:
                        row = _run_classification_cell(
                            entry=entry,
                            cell_dir=cell_dir,
                            row=row,
                            backbone=_backbone_dict(b, t.stages, pretrained),
                            progress=progress,
                        )
                    _write_json(cell_dir / "result.json", row)
                    rows.append(row)
    return pd.DataFrame(rows, columns=list(CLASSIFICATION_COLUMNS))


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    ok = df[df["status"] == "ok"].copy()
    for c in ("completeness", "purity", "f1", "AP50", "wall_s"):
        ok[c] = pd.to_numeric(ok[c], errors="coerce")
    return ok


def plot_transfer_results(df: pd.DataFrame, *, out: str | Path) -> list[Path]:
    """Learning curves and a per-backbone bar chart of completeness and purity (PNG).

    Parameters
    ----------
    df : pandas.DataFrame
        The results table of :func:`run_transfer_grid`.
    out : str or Path
        Directory for ``learning_curves.png`` (completeness and purity vs training size, one
        line per backbone x trainable: mean over seeds, min-max band) and
        ``backbones_at_largest_size.png`` (grouped bars, mean with std error bars).

    Returns
    -------
    list of Path
        The files written (none when no cell succeeded).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    ok = _ok(df)
    if ok.empty:
        return []
    written = []
    metrics = ("completeness", "purity")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for (bb, tr), g in ok.groupby(["backbone", "trainable"], sort=False):
        agg = g.groupby("train_size")[list(metrics)].agg(["mean", "min", "max"]).sort_index()
        x = agg.index.to_numpy(dtype=float)
        for ax, m in zip(axes, metrics):
            (line,) = ax.plot(x, agg[(m, "mean")], "o-", label=f"{bb} / {tr}")
            ax.fill_between(
                x, agg[(m, "min")], agg[(m, "max")], color=line.get_color(), alpha=0.2, lw=0
            )
    n_seeds = ok["seed"].nunique()
    sizes = sorted(int(s) for s in ok["train_size"].unique())
    for ax, m in zip(axes, metrics):
        ax.set(xscale="log", xlabel="training images", ylabel=m, ylim=(0, 1.02))
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.set_title(f"{m} (mean; band: min-max over {n_seeds} seed(s))", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, title="backbone / trainable")
    path = out / "learning_curves.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    written.append(path)

    largest = ok["train_size"].max()
    at = ok[ok["train_size"] == largest]
    backbones = list(dict.fromkeys(at["backbone"]))
    trainables = list(dict.fromkeys(at["trainable"]))
    width = 0.8 / max(len(trainables), 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, m in zip(axes, metrics):
        for j, tr in enumerate(trainables):
            g = at[at["trainable"] == tr].groupby("backbone")[m].agg(["mean", "std"])
            g = g.reindex(backbones)
            xs = np.arange(len(backbones)) + (j - (len(trainables) - 1) / 2) * width
            ax.bar(xs, g["mean"], width, yerr=g["std"].fillna(0.0), capsize=3, label=tr)
        ax.set_xticks(np.arange(len(backbones)), backbones)
        ax.set_xlim(-0.5, len(backbones) - 0.5)
        ax.set(ylabel=m, ylim=(0, 1.02), title=f"{m} at {largest} training images")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(title="trainable", fontsize=8)
    path = out / "backbones_at_largest_size.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def _pm(values: pd.Series) -> str:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return "–"
    if len(v) == 1:
        return f"{v.iloc[0]:.3f}"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def write_transfer_summary(
    df: pd.DataFrame,
    *,
    out: str | Path,
    command: str | None = None,
    classification: pd.DataFrame | None = None,
) -> Path:
    """Write a markdown summary: mean ± std over seeds per backbone x trainable x size.

    Parameters
    ----------
    df : pandas.DataFrame
        The results table of :func:`run_transfer_grid`.
    out : str or Path
        The markdown file.
    command : str, optional
        Command line that produced it (recorded verbatim).
    classification : pandas.DataFrame, optional
        The classification table, summarised the same way.
    """
    ok = _ok(df)
    cols = ("completeness", "purity", "f1", "AP50")
    lines = [
        "# Backbone-transfer grid",
        "",
        "Mean ± std over seeds (sample std; a single seed shows its value). "
        "wall_s: mean seconds per cell (train + test).",
        "",
        "| backbone | trainable | train size | seeds | " + " | ".join(cols) + " | wall_s |",
        "|---" * (len(cols) + 5) + "|",
    ]
    for (bb, tr, n), g in ok.groupby(["backbone", "trainable", "train_size"], sort=False):
        cells = " | ".join(_pm(g[c]) for c in cols)
        lines.append(f"| {bb} | {tr} | {n} | {len(g)} | {cells} | {g['wall_s'].mean():.0f} |")
    skipped = df[df["status"] != "ok"]
    if not skipped.empty:
        lines += ["", "## Cells not run", ""]
        lines += [f"- `{r.cell_id}`: {r.status}" for r in skipped.itertuples()]
    if classification is not None and not classification.empty:
        okc = classification[classification["status"] == "ok"]
        lines += [
            "",
            "## Classification heads",
            "",
            "| task | backbone | trainable | seeds | accuracy | auc | rmse |",
            "|---|---|---|---|---|---|---|",
        ]
        for (task, bb, tr), g in okc.groupby(["task", "backbone", "trainable"], sort=False):
            lines.append(
                f"| {task} | {bb} | {tr} | {len(g)} | {_pm(g['accuracy'])} | {_pm(g['auc'])} "
                f"| {_pm(g['rmse'])} |"
            )
        bad = classification[classification["status"] != "ok"]
        lines += [f"- `{r.cell_id}`: {r.status}" for r in bad.itertuples()]
    lines += ["", f"Total cell wall time: {pd.to_numeric(df['wall_s']).sum():.0f} s", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    out = Path(out)
    with atomic_write(out, "w") as fh:
        fh.write("\n".join(lines))
    return out
