"""Backbone-transfer grid: end to end on tiny blob data, resume, schema, plots, skipped cells."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from helpers import write_blob_dataset

from clumpdet.config import load_config
from clumpdet.errors import ConfigError
from clumpdet.experiments.transfer import run_transfer_grid
from clumpdet.experiments.transfer_config import TransferConfig, cell_id, cell_schedule
from clumpdet.experiments.transfer_report import RESULT_COLUMNS, data_saving_factors

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
                {"name": "ssl", "backbone": {"name": str(tmp / "not_yet" / "backbone.pt")}},
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
    assert len(df) == 3 * 2 * 2
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
    assert (ok["epochs"] == 1).all() and (ok["epochs_run"] == 1).all()
    assert not ok["early_stopped"].astype(bool).any() and ok["stopped_epoch"].isna().all()
    assert ok.set_index("n_train")["steps"].to_dict() == {8: 2, 16: 4}  # batch 4, one epoch
    assert all(Path(p).is_file() for p in ok["checkpoint"])
    assert set(ok["n_train"]) == {8, 16}
    # the unloadable weights file skips its cells with a one-line reason instead of crashing
    skipped = df[df["backbone"] == "imagenet"]
    assert len(skipped) == 4
    assert all(s.startswith("skipped: ") and "broken.pth" in s for s in skipped["status"])
    assert all("\n" not in s for s in skipped["status"])
    # a backbone.pt that is not written yet (e.g. an SSL trunk) skips its arm, saying so
    ssl = df[df["backbone"] == "ssl"]["status"]
    assert len(ssl) == 4 and all(s.startswith("skipped: backbone file") for s in ssl)
    assert all("not_yet" in s and "not found" in s for s in ssl)
    # the tables on disk hold the same rows
    csv = pd.read_csv(out / "results.csv")
    assert list(csv.columns) == list(RESULT_COLUMNS) and len(csv) == 12
    pq = pd.read_parquet(out / "results.parquet")
    assert len(pq) == 12
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
    assert "imagenet__" in text and "4 cell(s): skipped: " in text
    assert "## Data-saving factor" in text
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


def test_config_validation_and_budget_rule(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(TransferConfig, None, {"backbonez": []})
    with pytest.raises(ConfigError, match="unknown key"):  # the fixed-steps rule is gone
        load_config(TransferConfig, None, {"steps": 100})
    with pytest.raises(ConfigError, match="trainable axis"):
        bad = {"backbones": [{"name": "a", "backbone": {"trainable_stages": 0}}]}
        load_config(TransferConfig, None, bad)
    with pytest.raises(ConfigError, match="not an earlier arm"):
        arms = [{"name": "g2c", "clump_classifier": {"start": "galaxy"}}, {"name": "galaxy"}]
        load_config(TransferConfig, None, {"backbones": arms})
    with pytest.raises(ConfigError, match="min_steps"):
        load_config(TransferConfig, None, {"budget": {"min_steps": 10, "max_steps": 5}})
    budget = {"epochs": 20, "min_steps": 150, "max_steps": 2500, "val_every_steps": 50}
    cfg = load_config(TransferConfig, None, {"budget": budget})
    plans = {n: cell_schedule(cfg, train_size=n, batch_size=4) for n in (30, 100, 300, 1000, 3000)}
    # a larger training set gets more steps, until the cap
    budgets = [p.step_budget for p in plans.values()]
    assert budgets == sorted(budgets) and budgets[0] < budgets[2] < budgets[3]
    assert plans[1000].step_budget == 2500  # capped (rounded up to whole epochs)
    assert 2500 <= plans[3000].step_budget < 2500 + plans[3000].steps_per_epoch
    assert plans[30].step_budget >= 150 and plans[100].step_budget == 500
    for n, p in plans.items():
        assert p.steps_per_epoch == -(-n // 4) and p.step_budget == p.max_epochs * p.steps_per_epoch
        assert p.max_epochs % p.val_every == 0  # the last epoch is validated
    assert plans[30].val_every == 6 and plans[1000].val_every == 1  # ~every 50 steps
    fixed = load_config(TransferConfig, None, {"epochs": 3})
    assert cell_schedule(fixed, train_size=10, batch_size=4).max_epochs == 3
    for path in sorted((ROOT / "configs" / "transfer").glob("*.yaml")):
        load_config(TransferConfig, path)
    from clumpdet.engine.classify import ClassifierTrainConfig

    for path in sorted((ROOT / "configs" / "transfer" / "classifier").glob("*.yaml")):
        assert load_config(ClassifierTrainConfig, path).model.task == "binary"


def test_cells_stop_on_a_plateau_and_larger_sets_train_longer(blob_data, tmp_path):
    """lr 0: the validation F1 cannot improve, so every cell stops after `patience` checks."""
    test = write_blob_dataset(tmp_path / "test", n=4, seed=3)
    cfg = load_config(
        TransferConfig,
        None,
        {
            "detector_config": str(ROOT / "configs/detector/cpu_resnet18.yaml"),
            "detector_set": [*SMALL_MODEL, "optim.lr=0.0"],
            "data": {"train": str(blob_data["train"]), "val": str(blob_data["val"]),
                     "test": str(test)},
            "backbones": [{"name": "scratch", "backbone": {"name": "resnet18", "weights": "none"}}],
            "trainable": [{"name": "all", "stages": -1}],
            "train_sizes": [8, 24],
            "budget": {"epochs": 40, "min_steps": 1, "max_steps": 400, "val_every_steps": 1,
                       "patience": 1},
        },
    )  # fmt: skip
    df = run_transfer_grid(cfg, out=tmp_path / "out", progress=False).set_index("n_train")
    assert (df["status"] == "ok").all()
    assert df.loc[8, "step_budget"] == 80 and df.loc[24, "step_budget"] == 240
    for n in (8, 24):
        row = df.loc[n]
        assert bool(row["early_stopped"]) and row["patience"] == 1
        assert row["epochs_run"] == row["stopped_epoch"] + 1 <= 4
        assert row["best_epoch"] <= row["stopped_epoch"] - 1  # >= 1 check without improvement
        assert row["epochs_run"] < row["epochs"] and row["steps"] < row["step_budget"]
    per_epoch = df["steps"] / df["epochs_run"]
    assert per_epoch.to_dict() == {8: 2, 24: 6}  # 3x the batches per epoch


def _table(curves: dict[tuple[str, str], list[list[float]]], sizes=(10, 100, 1000)):
    rows = []
    for (bb, tr), per_size in curves.items():
        for n, values in zip(sizes, per_size):
            for s, v in enumerate(values):
                rows.append({"cell_id": f"{bb}{tr}{n}{s}", "backbone": bb, "trainable": tr,
                             "train_size": n, "seed": s, "status": "ok", "f1": v,
                             "wall_s": 1.0})  # fmt: skip
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def test_data_saving_factor_on_a_hand_made_table(tmp_path):
    from clumpdet.experiments.transfer_report import write_transfer_summary

    flat = {  # identical seeds: the bootstrap interval collapses onto the point value
        ("scratch", "frozen"): [[0.1] * 3, [0.2] * 3, [0.3] * 3],
        ("scratch", "top3"): [[0.3] * 3, [0.5] * 3, [0.7] * 3],  # reference: best scratch
        ("galaxy", "top3"): [[0.5] * 3, [0.7] * 3, [0.8] * 3],  # reaches 0.7 at 100
        ("galaxy", "frozen"): [[0.6] * 3, [0.8] * 3, [0.9] * 3],  # halfway in log n: 10^1.5
        ("clf", "top3"): [[0.75] * 3, [0.8] * 3, [0.8] * 3],  # already at the smallest size
        ("imagenet", "top3"): [[0.2] * 3, [0.4] * 3, [0.6] * 3],  # never reaches it
    }
    f = data_saving_factors(_table(flat), n_boot=50).set_index(["backbone", "trainable"])
    assert set(f["reference"]) == {"scratch/top3"} and f["target"].iloc[0] == pytest.approx(0.7)
    assert f.loc[("scratch", "top3"), "factor"] == pytest.approx(1.0)
    assert f.loc[("galaxy", "top3"), "factor"] == pytest.approx(10.0)
    assert f.loc[("galaxy", "frozen"), "size_to_target"] == pytest.approx(10**1.5)
    assert f.loc[("galaxy", "frozen"), "factor"] == pytest.approx(1000 / 10**1.5)
    assert f.loc[("clf", "top3"), "factor"] == pytest.approx(100.0)
    assert bool(f.loc[("clf", "top3"), "lower_bound"])
    assert not bool(f.loc[("imagenet", "top3"), "reached"])
    assert f.loc[("imagenet", "top3"), "factor"] == 0.0
    for key in f.index:
        assert f.loc[key, "factor_low"] == pytest.approx(f.loc[key, "factor"])
        assert f.loc[key, "factor_high"] == pytest.approx(f.loc[key, "factor"])
    text = write_transfer_summary(_table(flat), out=tmp_path / "s.md").read_text()
    assert "| galaxy | top3 | 100 | 10.00 | 10.00 – 10.00 |" in text
    assert "| clf | top3 | ≤ 10 | ≥ 100 | ≥ 100 – ≥ 100 |" in text
    assert "| imagenet | top3 | > 1000 | < 1 | < 1 – < 1 |" in text
    assert "- **galaxy / top3**: saves labels" in text
    assert "- **imagenet / top3**: saves no labels" in text
    # seed scatter: the interval widens around the point value and can span 1
    noisy = {("scratch", "top3"): [[0.2, 0.4], [0.4, 0.6], [0.6, 0.8]],
             ("galaxy", "top3"): [[0.15, 0.45], [0.35, 0.65], [0.55, 0.95]]}  # fmt: skip
    g = data_saving_factors(_table(noisy), n_boot=400).set_index("backbone").loc["galaxy"]
    assert g["factor_low"] < g["factor"] < g["factor_high"]
    text = write_transfer_summary(_table(noisy), out=tmp_path / "n.md").read_text()
    assert "no clear saving" in text
    # a curve not run up to the largest size that is still below the target: undetermined
    part = _table({**flat, ("ssl", "top3"): [[0.5] * 3, [0.6] * 3, []]})
    u = data_saving_factors(part, n_boot=20).set_index("backbone").loc["ssl"]
    assert math.isnan(u["factor"]) and u["measured_to"] == 100 and not u["reached"]
    text = write_transfer_summary(part, out=tmp_path / "p.md").read_text()
    assert "| ssl | top3 | > 100 | – | – – – |" in text
    assert "- **ssl / top3**: undetermined: below scratch's 1000-image F1 at 100 images" in text
    # a single seed at some size: no interval, and no verdict either way
    one = {("scratch", "top3"): [[0.5, 0.6], [0.7]], ("galaxy", "top3"): [[0.7, 0.8], [0.8]]}
    one = _table(one, sizes=(10, 100))
    o = data_saving_factors(one, n_boot=20).set_index("backbone").loc["galaxy"]
    assert o["factor"] == pytest.approx(10.0) and math.isnan(o["factor_low"])
    assert (
        "no interval: a single seed"
        in write_transfer_summary(one, out=tmp_path / "o.md").read_text()
    )
    # the threshold-free twin: AP50 gets its own table and verdicts in the summary
    ap = _table(flat)
    ap["AP50"] = ap["f1"] / 2
    ap.loc[ap["backbone"] == "imagenet", "AP50"] = 0.5  # reaches AP50 0.35 at 10 images
    text = write_transfer_summary(ap, out=tmp_path / "a.md").read_text()
    f1_part, ap_part = text.split("### The same by AP50")
    assert "- **imagenet / top3**: saves no labels" in f1_part
    assert "Target: the AP50 of `scratch/top3` at 1000 training images, 0.350" in ap_part
    assert "| imagenet | top3 | ≤ 10 | ≥ 100 |" in ap_part
    assert "- **galaxy / top3**: saves labels: it reaches scratch's 1000-image AP50" in ap_part
    # a curve whose metric is missing at every size (e.g. AP50 not recorded) is left out
    ap.loc[ap["backbone"] == "clf", "AP50"] = math.nan
    assert "clf" not in set(data_saving_factors(ap, metric="AP50", n_boot=5)["backbone"])
    # explicit reference
    f2 = data_saving_factors(_table(flat), reference="galaxy/top3", n_boot=5)
    assert set(f2["reference"]) == {"galaxy/top3"} and f2["target"].iloc[0] == pytest.approx(0.8)


def test_clump_classifier_arm_trains_on_clumpy_labels(blob_data, tmp_path, monkeypatch):
    import clumpdet.engine.classify as cls_mod
    from clumpdet.experiments.transfer import _clump_classifier_backbone, write_clumpy_labels

    labels = pd.read_csv(write_clumpy_labels(blob_data["train"], tmp_path / "l.csv"), dtype=str)
    doc = json.loads(Path(blob_data["train"]).read_text())
    with_clump = {a["image_id"] for a in doc["annotations"] if a["category_id"] == 1}
    expect = [str(int(im["id"] in with_clump)) for im in doc["images"]]
    assert labels["clumpy"].tolist() == expect and set(expect) == {"0", "1"}
    assert labels["id"].tolist() == [im["file_name"] for im in doc["images"]]

    seen = {}

    def fake_train(config, *, out, **kw):
        seen["cfg"] = config
        Path(out).mkdir(parents=True)
        (Path(out) / "backbone.pt").write_bytes(b"x")
        return Path(out) / "classifier.pt"

    monkeypatch.setattr(cls_mod, "train_classifier", fake_train)
    cfg = load_config(
        TransferConfig,
        None,
        {
            "data": {"train": str(blob_data["train"]), "val": str(blob_data["val"]),
                     "test": str(blob_data["val"])},
            "backbones": [{"name": "scratch", "backbone": {"name": "resnet18", "weights": "none"}},
                          {"name": "g2c", "clump_classifier": {
                              "start": "scratch",
                              "config": str(ROOT / "configs/transfer/classifier/clumpy.yaml")}}],
        },
    )  # fmt: skip
    start = {"name": "resnet18", "weights": "none", "trainable_stages": 0}
    sets = {"train": str(blob_data["train"])}
    path = _clump_classifier_backbone(cfg.backbones[1], start, cfg, sets, tmp_path, progress=False)
    assert path == tmp_path / "pretrain" / "g2c" / "backbone.pt" and path.is_file()
    c = seen["cfg"]
    assert c.data.source == "folder" and c.data.label_columns == ("clumpy",)
    assert Path(c.data.images_dir) == Path(blob_data["train"]).parent
    assert c.model.backbone.name == "resnet18" and c.model.task == "binary"
    assert pd.read_csv(c.data.labels)["clumpy"].tolist() == [int(e) for e in expect]
    # resumable: an existing backbone.pt is reused without training again
    seen.clear()
    assert _clump_classifier_backbone(cfg.backbones[1], start, cfg, sets, tmp_path,
                                      progress=False) == path  # fmt: skip
    assert not seen


def test_purity_at_completeness():
    from clumpdet.experiments.transfer import purity_at_completeness

    m = {"curves": {"threshold": {"completeness": [1.0, 0.95, 0.9, 0.7, None],
                                  "purity": [0.2, 0.5, 0.6, 0.9, None]}}}  # fmt: skip
    assert purity_at_completeness(m, 0.9) == pytest.approx(0.6)
    assert purity_at_completeness(m, 0.99) == pytest.approx(0.2)
    assert math.isnan(purity_at_completeness({"curves": {"threshold": {}}}, 0.9))


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
    old = df[(df["backbone"] == "imagenet") & (df["train_size"] < 32)]["status"]
    assert len(old) == 4 and all(s.startswith("skipped: ") for s in old)  # reason kept
    assert "not run yet" in (out / "summary.md").read_text()


def test_summary_tables_from_result_rows(tmp_path):
    from clumpdet.experiments.transfer_report import CLASSIFICATION_COLUMNS, write_transfer_summary

    det = pd.DataFrame(
        [
            {"cell_id": "a", "backbone": "scratch", "trainable": "all", "train_size": 8,
             "seed": s, "status": "ok", "completeness": c, "purity": 0.5, "f1": 0.5,
             "AP50": 0.4, "wall_s": 10.0, "epochs_run": e, "steps": 2 * e, "step_budget": 20,
             "stopped_epoch": st}
            for s, c, e, st in ((0, 0.6, 4, 3), (1, 0.8, 10, None))
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
        "| backbone | trainable | train size | seeds | completeness | purity | f1 | AP50 | "
        "P@C0.9 | epochs | steps | stopped | wall_s |"
    )
    i = lines.index(head)
    # 68 % CI of two values 0.6, 0.8: mean 0.7 ± t(0.84, 1) * 0.1414 / sqrt(2) = ± 0.1819
    assert lines[i + 2] == (
        "| scratch | all | 8 | 2 | 0.700 [0.518, 0.882] | 0.500 | 0.500 | 0.400 | – | 7.0 | "
        "14 (20) | 1/2 (ep 4) | 10 |"
    )
    assert "- 1 cell(s): skipped: no weights (`b__x`)" in lines
    j = lines.index("| task | backbone | trainable | seeds | accuracy | auc | rmse |")
    assert lines[j + 2] == "| merger | scratch | all | 1 | 0.750 | 0.800 | – |"
    assert lines[-1] == "Total cell wall time: 20 s"
