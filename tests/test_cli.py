"""The CLI as a newcomer meets it: every subcommand parses, bad input is one line + exit 2."""

from __future__ import annotations

import pytest

from clumpdet.cli import build_parser, main

SUBCOMMANDS = ["simulate", "evaluate", "baseline", "train", "detect", "list-backbones", "demo"]


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_every_subcommand_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([cmd, "--help"])
    assert exc.value.code == 0
    assert "usage: clumpdet " + cmd in capsys.readouterr().out


def test_list_backbones(capsys):
    assert main(["list-backbones"]) == 0
    out = capsys.readouterr().out
    assert "resnet50" in out and "zoobot_convnext_nano" in out and "timm:" in out


def test_baseline_cli_bad_fits_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.fits"
    bad.write_text("garbage")
    out = tmp_path / "pred.json"
    assert main(["baseline", "--images", str(bad), "--out", str(out), "--workers", "1"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("clumpdet:")]
    assert len(err) == 1 and "bad.fits: not a valid FITS file" in err[0]
    assert not out.exists()


def test_baseline_cli_config_override_is_checked(tmp_path, capsys):
    img = tmp_path / "x.fits"
    img.write_text("unused")
    rc = main(
        [
            "baseline",
            "--images",
            str(img),
            "--out",
            str(tmp_path / "p.json"),
            "--set",
            "no_such_knob=1",
        ]
    )
    assert rc == 2
    assert "no_such_knob" in capsys.readouterr().err


def test_simulate_cli_unknown_key(tmp_path, capsys):
    rc = main(
        [
            "simulate",
            "clumps",
            "--n",
            "2",
            "--out",
            str(tmp_path / "s"),
            "--set",
            "clumps.flux_ratio_mn=0.1",
        ]
    )
    assert rc == 2
    assert "flux_ratio_mn" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_every_shipped_config_loads():
    """configs/ must stay in step with the dataclasses (unknown keys are errors)."""
    from pathlib import Path

    from clumpdet.config import load_config
    from clumpdet.engine.classify import ClassifierTrainConfig
    from clumpdet.engine.config import TrainConfig

    root = Path(__file__).parents[1] / "configs"
    files = {"detector": TrainConfig, "classifier": ClassifierTrainConfig}
    n = 0
    for folder, cls in files.items():
        for f in sorted((root / folder).glob("*.yaml")):
            load_config(cls, f)
            n += 1
    assert n >= 8
