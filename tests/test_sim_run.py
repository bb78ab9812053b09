"""The simulator registry, the CLI's ``simulate`` kinds and ``prepare_sets`` reuse rules."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from clumpdet.cli import build_parser, main
from clumpdet.errors import ConfigError, InputError
from clumpdet.sim import SIMULATORS, Split, load_sim_config, prepare_sets, simulator

KINDS = ("clumps", "fields", "four_class", "mergers", "morphology")

#: Small frames per kind, to keep the runs quick.
SMALL = {
    "clumps": [
        "image.width=64",
        "image.height=64",
        "host.hlr_median=6",
        "host.hlr_min=3",
        "host.hlr_max=10",
    ],
    "fields": ["image.width=64", "image.height=64"],
    "mergers": ["image.width=32", "image.height=32"],
    "four_class": ["image.width=32", "image.height=32"],
    "morphology": ["image.width=32", "image.height=32"],
}


def test_registry_lists_all_five_and_feeds_the_cli():
    assert tuple(SIMULATORS) == KINDS
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    kind = next(a for a in sub.choices["simulate"]._actions if a.dest == "kind")
    assert list(kind.choices) == list(SIMULATORS)
    assert simulator("clumps").class_names == ("clump", "odd_clump")
    assert simulator("fields").detection and not simulator("mergers").detection


@pytest.mark.parametrize("kind", KINDS)
def test_cli_simulates_every_kind(kind, tmp_path, capsys):
    out = tmp_path / kind
    overrides = [a for s in SMALL[kind] for a in ("--set", s)]
    argv = ["simulate", kind, "--n", "1", "--out", str(out), "--workers", "1", *overrides]
    assert main(argv) == 0
    assert (out / simulator(kind).marker).is_file()
    assert f"wrote 1 {kind} images" in capsys.readouterr().out
    run = (out / "config.yaml").read_text()
    assert f"kind: {kind}" in run


def test_cli_unknown_kind_is_rejected():
    with pytest.raises(SystemExit):
        main(["simulate", "rings", "--n", "1", "--out", "x"])


@pytest.fixture()
def small_clumps():
    return load_sim_config(None, SMALL["clumps"])


def test_prepare_sets_reuses_a_matching_set(tmp_path, small_clumps, caplog):
    splits = {"train": (2, 0), "val": Split(1, 1)}
    sets = prepare_sets(
        "clumps", splits, config=small_clumps, out=tmp_path, workers=1, progress=False
    )
    assert sets == {"train": tmp_path / "train", "val": tmp_path / "val"}
    marker = tmp_path / "train" / "annotations.json"
    stamp = marker.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="clumpdet.sim.run"):
        again = prepare_sets(
            "clumps", splits, config=small_clumps, out=tmp_path, workers=1, progress=False
        )
    assert again == sets
    assert marker.stat().st_mtime_ns == stamp
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_prepare_sets_regenerates_on_a_different_seed_n_or_config(tmp_path, small_clumps, caplog):
    prepare_sets(
        "clumps", {"train": (2, 0)}, config=small_clumps, out=tmp_path, workers=1, progress=False
    )
    with caplog.at_level(logging.WARNING, logger="clumpdet.sim.run"):
        prepare_sets(
            "clumps",
            {"train": (2, 5)},
            config=small_clumps,
            out=tmp_path,
            workers=1,
            progress=False,
        )
    (msg,) = [r.getMessage() for r in caplog.records]
    assert str(tmp_path / "train") in msg and "seed 0 recorded, 5 wanted" in msg
    assert "seed: 5" in (tmp_path / "train" / "config.yaml").read_text()

    caplog.clear()
    other = load_sim_config(None, [*SMALL["clumps"], "noise.gain.r=500"])
    with caplog.at_level(logging.WARNING, logger="clumpdet.sim.run"):
        prepare_sets(
            "clumps", {"train": (2, 5)}, config=other, out=tmp_path, workers=1, progress=False
        )
    (msg,) = [r.getMessage() for r in caplog.records]
    assert "config differs at noise.gain.r (900.0 recorded, 500.0 wanted)" in msg


def test_prepare_sets_error_mode_names_the_folder_and_difference(tmp_path, small_clumps):
    prepare_sets(
        "clumps", {"test": (1, 2)}, config=small_clumps, out=tmp_path, workers=1, progress=False
    )
    with pytest.raises(InputError, match=r"test: holds a different clumps set: n 1 recorded, 3"):
        prepare_sets(
            "clumps",
            {"test": (3, 2)},
            config=small_clumps,
            out=tmp_path,
            workers=1,
            progress=False,
            reuse="error",
        )
    with pytest.raises(InputError, match="kind 'clumps' recorded, 'fields' wanted"):
        prepare_sets("fields", {"test": (1, 2)}, out=tmp_path, reuse="error")


def test_prepare_sets_replaces_a_folder_without_run_record(tmp_path, small_clumps):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "stale.txt").write_text("old")
    prepare_sets(
        "clumps", {"train": (1, 0)}, config=small_clumps, out=tmp_path, workers=1, progress=False
    )
    assert not (tmp_path / "train" / "stale.txt").exists()
    assert (tmp_path / "train" / "annotations.json").is_file()


def test_prepare_sets_takes_a_yaml_path_and_galaxy_kinds(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("image:\n  width: 32\n  height: 32\n")
    kw = dict(out=tmp_path / "d", workers=1, progress=False)
    sets = prepare_sets("mergers", {"mergers": (2, 0)}, config=path, **kw)
    assert (sets["mergers"] / "labels.csv").is_file()
    assert prepare_sets("mergers", {"mergers": (2, 0)}, config=path, **kw) == sets
    with pytest.raises(InputError, match=r"config differs at image.height \(32 recorded, 75"):
        prepare_sets("mergers", {"mergers": (2, 0)}, out=tmp_path / "d", reuse="error")


def test_prepare_sets_rejects_bad_reuse(tmp_path: Path):
    with pytest.raises(ConfigError, match="reuse"):
        prepare_sets("clumps", {"train": (1, 0)}, out=tmp_path, reuse="always")  # type: ignore[arg-type]
