"""Backbone-transfer grid: end to end on tiny blob data, resume, schema, plots, skipped cells."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import write_blob_dataset

from clumpdet.config import load_config
from clumpdet.errors import ConfigError
from clumpdet.experiments.transfer import run_transfer_grid
from clumpdet.experiments.transfer_config import TransferConfig, cell_id, epochs_for_size
from clumpdet.experiments.transfer_report import RESULT_COLUMNS

ROOT = Path(__file__).parents[1]
SMALL_MODEL = [
    "optim.lr=1e-3",
    "model.fpn_channels=32",
    "model.representation_size=64",
    "model.rpn_pre_nms_top_n_train=200",
    "model.rpn_post_nms_top_n_train=50",
    "model.rpn_batch_size_per_image=32",
    "model.box_batch_size_per_image=32",
    "trainer.progress_bar=false",
]


@pytest.fixture(scope="module")
def grid(blob_data, tmp_path_factory):
    """A 2 (trainable) x 2 (sizes) grid on scratch + a backbone with an unloadable weights file."""
    tmp = tmp_path_factory.mktemp("transfer")
    test = write_blob_dataset(tmp / "test", n=8, seed=2)
    bad = tmp / "broken.pth"
    bad.write_text("not a state dict")
    cfg = load_config(
        TransferConfig,
        None,
        {
            "detector_config": str(ROOT / "configs/detector/cpu_resnet18.yaml"),
            "detector_set": SMALL_MODEL,
            "data": {
                "train": str(blob_data["train"]),
                "val": str(blob_data["val"]),
                "test": str(test),
            },
            "backbones": [
                {"name": "scratch", "backbone": {"name": "resnet18", "weights": "none"}},
                {"name": "imagenet", "backbone": {"name": "resnet18", "weights": str(bad)}},
            ],
            "trainable": [{"name": "top1", "stages": 1}, {"name": "all", "stages": -1}],
            "train_sizes": [8, 16],
            "seeds": [0],
            "epochs": 1,
        },
    )
    out = tmp / "out"
    df = run_transfer_grid(cfg, out=out, command="pytest grid", progress=False)
    return cfg, out, df


def test_grid_table_schema_and_values(grid):
    _, out, df = grid
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert len(df) == 2 * 2 * 2
    ok = df[df["status"] == "ok"]
    assert sorted(ok["cell_id"]) == sorted(
        cell_id(backbone="scratch", trainable=t, train_size=n, seed=0)
        for t in ("top1", "all")
        for n in (8, 16)
    )
    assert ok["completeness"].astype(float).between(0, 1).all()
    assert ok["AP50"].astype(float).between(0, 1).all()
    assert (ok["wall_s"].astype(float) > 0).all()
    for c in ("purity", "f1"):  # undefined (NaN) when a 1-epoch model detects nothing
        vals = ok[c].astype(float)
        assert (vals.isna() | vals.between(0, 1)).all(), c
    assert (ok["epochs"] == 1).all()
    assert all(Path(p).is_file() for p in ok["checkpoint"])
    assert set(ok["n_train"]) == {8, 16}
    # the unloadable weights file skips its cells with a one-line reason instead of crashing
    skipped = df[df["backbone"] == "imagenet"]
    assert len(skipped) == 4
    assert all(s.startswith("skipped: ") and "broken.pth" in s for s in skipped["status"])
    assert all("\n" not in s for s in skipped["status"])
    # the tables on disk hold the same rows
    csv = pd.read_csv(out / "results.csv")
    assert list(csv.columns) == list(RESULT_COLUMNS) and len(csv) == 8
    pq = pd.read_parquet(out / "results.parquet")
    assert len(pq) == 8
    cell = json.loads((out / "cells" / ok["cell_id"].iloc[0] / "result.json").read_text())
    assert cell["status"] == "ok" and cell["train_size"] in (8, 16)


def test_plots_and_summary(grid):
    _, out, _ = grid
    for name in ("learning_curves.png", "backbones_at_largest_size.png"):
        path = out / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000, name
    text = (out / "summary.md").read_text()
    assert "| scratch | top1 | 8 | 1 |" in text
    assert "| scratch | all | 16 | 1 |" in text
    assert "imagenet__all__n16__s0" in text and "skipped" in text
    assert "Command: `pytest grid`" in text


def test_resume_recomputes_only_missing_cell(grid, monkeypatch):
    import clumpdet.engine.train as train_mod

    cfg, out, df = grid
    target = cell_id(backbone="scratch", trainable="all", train_size=8, seed=0)
    before = {
        c: (out / "cells" / c / "result.json").stat().st_mtime_ns
        for c in df.loc[df["status"] == "ok", "cell_id"]
    }
    (out / "cells" / target / "result.json").unlink()
    calls = []
    real = train_mod.train_detector

    def counting(config, *, out, **kw):
        calls.append((config.data.max_train_images, config.model.backbone.trainable_stages))
        return real(config, out=out, **kw)

    monkeypatch.setattr(train_mod, "train_detector", counting)
    df2 = run_transfer_grid(cfg, out=out, progress=False)
    assert calls == [(8, -1)]
    assert (out / "cells" / target / "result.json").is_file()
    for c, mtime in before.items():
        if c != target:
            assert (out / "cells" / c / "result.json").stat().st_mtime_ns == mtime
    assert (df2["status"] == "ok").sum() == 4


def test_classification_heads_are_scored(tmp_path, monkeypatch):
    import clumpdet.engine.classify as cls_mod

    seen = []

    def fake_train(config, *, out, **kw):
        seen.append(config.model.backbone.trainable_stages)
        out = Path(out)
        out.mkdir(parents=True)
        (out / "test_metrics.json").write_text(json.dumps({"accuracy": 0.75, "auc": 0.8}))
        (out / "classifier.pt").write_bytes(b"x")
        return out / "classifier.pt"

    monkeypatch.setattr(cls_mod, "train_classifier", fake_train)
    from clumpdet.experiments.transfer import _run_classification_grid

    cfg = load_config(
        TransferConfig,
        None,
        {
            "classification": [{"config": str(ROOT / "configs/classifier/merger_resnet18.yaml")}],
            "trainable": [{"name": "frozen", "stages": 0}, {"name": "all", "stages": -1}],
        },
    )
    df = _run_classification_grid(cfg, tmp_path, {}, {}, False)
    assert seen == [0, -1]
    assert list(df["status"]) == ["ok", "ok"]
    assert df["accuracy"].tolist() == [0.75, 0.75] and df["rmse"].isna().all()
    assert df["task"].iloc[0] == "merger_resnet18"


def test_config_validation_and_epoch_rule(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(TransferConfig, None, {"backbonez": []})
    with pytest.raises(ConfigError, match="not both"):
        load_config(TransferConfig, None, {"epochs": 2, "steps": 100})
    with pytest.raises(ConfigError, match="trainable axis"):
        bad = {"backbones": [{"name": "a", "backbone": {"trainable_stages": 0}}]}
        load_config(TransferConfig, None, bad)
    cfg = load_config(TransferConfig, None, {"steps": 1000, "min_epochs": 2, "max_epochs": 50})
    assert epochs_for_size(cfg, train_size=100, batch_size=4, default=30) == 40
    assert epochs_for_size(cfg, train_size=4000, batch_size=4, default=30) == 2
    assert epochs_for_size(cfg, train_size=10, batch_size=4, default=30) == 50
    cfg = load_config(TransferConfig, None, {})
    assert epochs_for_size(cfg, train_size=10, batch_size=4, default=30) == 30
    for path in sorted((ROOT / "configs" / "transfer").glob("*.yaml")):
        load_config(TransferConfig, path)


def test_report_only_tabulates_finished_cells_without_training(grid, monkeypatch):
    import dataclasses

    import clumpdet.engine.train as train_mod

    cfg, out, _ = grid

    def forbidden(*a, **k):
        raise AssertionError("report_only must not train")

    monkeypatch.setattr(train_mod, "train_detector", forbidden)
    bigger = dataclasses.replace(cfg, train_sizes=[*cfg.train_sizes, 32])
    df = run_transfer_grid(bigger, out=out, progress=False, report_only=True)
    assert (df["status"] == "ok").sum() == 4
    assert set(df.loc[df["train_size"] == 32, "status"]) == {"not run yet"}
    assert "not run yet" in (out / "summary.md").read_text()


def test_summary_tables_from_result_rows(tmp_path):
    from clumpdet.experiments.transfer_report import CLASSIFICATION_COLUMNS, write_transfer_summary

    det = pd.DataFrame(
        [
            {"cell_id": "a", "backbone": "scratch", "trainable": "all", "train_size": 8,
             "seed": s, "status": "ok", "completeness": c, "purity": 0.5, "f1": 0.5,
             "AP50": 0.4, "wall_s": 10.0}
            for s, c in ((0, 0.6), (1, 0.8))
        ] + [{"cell_id": "b__x", "status": "skipped: no weights", "wall_s": 0.0}],
        columns=list(RESULT_COLUMNS),
    )  # fmt: skip
    cls = pd.DataFrame(
        [{"cell_id": "m", "task": "merger", "backbone": "scratch", "trainable": "all",
          "seed": 0, "status": "ok", "accuracy": 0.75, "auc": 0.8, "rmse": None}],
        columns=list(CLASSIFICATION_COLUMNS),
    )  # fmt: skip
    lines = write_transfer_summary(det, out=tmp_path / "s.md", classification=cls)
    lines = lines.read_text().splitlines()
    head = (
        "| backbone | trainable | train size | seeds | completeness | purity | f1 | AP50 | wall_s |"
    )
    i = lines.index(head)
    assert lines[i + 1] == "|---|---|---|---|---|---|---|---|---|"
    assert lines[i + 2] == "| scratch | all | 8 | 2 | 0.700 ± 0.141 | 0.500 ± 0.000 | " + (
        "0.500 ± 0.000 | 0.400 ± 0.000 | 10 |"
    )
    assert "- `b__x`: skipped: no weights" in lines
    j = lines.index("| task | backbone | trainable | seeds | accuracy | auc | rmse |")
    assert lines[j + 2] == "| merger | scratch | all | 1 | 0.750 | 0.800 | – |"
    assert lines[-1] == "Total cell wall time: 20 s"
