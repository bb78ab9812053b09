"""Folders written by ``clumpdet simulate mergers|four_class|morphology``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from clumpdet.data.containers import ClassificationData, MappedArray
from clumpdet.data.readers.common import SOURCES, SourceArgs, csv_rows, need_columns
from clumpdet.data.readers.folder import split_values
from clumpdet.errors import InputError
from clumpdet.sim.run import RUN_KEY
from clumpdet.tasks import Task, get_task


def read_sim_dir(
    path: str | Path, *, task: Task, split_column: str | None = None
) -> ClassificationData:
    """Read a simulated task folder.

    Parameters
    ----------
    path : str or Path
        Folder with ``images.npy`` (N, C, H, W), memory-mapped, and ``labels.csv`` holding the
        task's columns (:meth:`~clumpdet.tasks.Task.sim_columns`; morphology also
        ``count_<answer>`` vote counts for the Dirichlet loss,
        :meth:`~clumpdet.tasks.Task.count_columns`); bands from ``config.yaml``.
    task : Task
        The task whose labels to read.
    split_column : str, optional
        Column of ``labels.csv`` with ``train``/``val``/``test`` per row.

    Returns
    -------
    ClassificationData
        Ids from the first column of ``labels.csv``; ``input`` is ``{"kind": "fits", "unit":
        <the run's unit in config.yaml, else "unknown">}`` (float arrays in the simulator's unit).
    """
    path = Path(path)
    for name in ("images.npy", "labels.csv"):
        if not (path / name).is_file():
            raise InputError(path / name, "not found; is this a `clumpdet simulate` folder?")
    df = pd.read_csv(path / "labels.csv")
    cols = list(task.sim_columns())
    missing = [c for c in cols if c not in df.columns]
    if missing or not cols:
        raise InputError(
            path / "labels.csv", f"missing columns for task {task.name}: {missing[:5]}"
        )
    counts = None
    count_cols = list(task.count_columns())
    if count_cols and all(c in df.columns for c in count_cols):
        counts = df[count_cols].to_numpy(np.float32)
    split = None
    if split_column is not None:
        need_columns(df, (split_column,), path / "labels.csv")
        row = csv_rows(df[df.columns[0]].astype(str).tolist(), df.columns[0])
        split = split_values(
            df[split_column], column=split_column, path=path / "labels.csv", row=row
        )
    bands: tuple[str, ...] = ()
    unit = ""
    cfg_file = path / "config.yaml"
    if cfg_file.is_file():
        cfg = yaml.safe_load(cfg_file.read_text()) or {}
        bands = tuple((cfg.get("image") or {}).get("bands") or ())
        unit = str((cfg.get(RUN_KEY) or {}).get("unit") or "")
    images = MappedArray(path / "images.npy", kind="npy")
    if not bands:
        bands = tuple(f"band{i + 1}" for i in range(images.shape[1]))
    return ClassificationData(
        images=images,
        labels=df[cols].to_numpy(np.float32),
        task=task.name,
        label_names=task.label_names or tuple(cols),
        bands=bands,
        ids=df[df.columns[0]].to_numpy(),
        source=path,
        counts=counts,
        split=split,
        input={"kind": "fits", "unit": unit or "unknown"},
    )


@SOURCES.register("sim_dir", help="a folder written by `clumpdet simulate` (images.npy + CSV)")
def _load_sim_dir(args: SourceArgs) -> ClassificationData:
    args.need("path", "task")
    args.refuse("id_column", "image_pattern", "image_bands")
    task = get_task(args.task)  # type: ignore[arg-type]
    if task.names_from_data and args.label_columns:
        task = task.with_label_names(args.label_columns)
    return read_sim_dir(args.path, task=task, split_column=args.split_column)  # type: ignore[arg-type]
