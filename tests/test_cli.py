"""The CLI as a newcomer meets it: every subcommand parses, bad input is one line + exit 2."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from clumpdet.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _subcommands() -> list[str]:
    (sub,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


SUBCOMMANDS = _subcommands()


def test_the_subcommands_the_readme_uses_exist():
    blocks = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    used = {m for b in blocks for m in re.findall(r"\bclumpdet ([a-z-]+)", b)}
    assert {"simulate", "train", "detect", "train-classifier", "pretrain"} <= used
    assert sorted(used - set(SUBCOMMANDS)) == []


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
    from clumpdet.config import load_config
    from clumpdet.engine.classify import ClassifierTrainConfig
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.pretrain import load_pretrain_config
    from clumpdet.experiments.transfer_config import TransferConfig

    root = ROOT / "configs"
    files = {
        "detector": TrainConfig,
        "classifier": ClassifierTrainConfig,
        "pretrain": None,  # supervised tasks or SSL: dispatched on `objective`
        "transfer": TransferConfig,
    }
    n = {}
    for folder, cls in files.items():
        for f in sorted((root / folder).glob("*.yaml")):
            if cls is None:
                load_pretrain_config(f)
            else:
                load_config(cls, f)
            n[folder] = n.get(folder, 0) + 1
    assert n["detector"] >= 4 and n["classifier"] >= 8 and n["pretrain"] >= 2
    assert n["transfer"] >= 2


def test_every_config_the_readme_names_exists():
    """A newcomer copies these paths from the README; each must be a shipped file."""
    named = set(re.findall(r"configs/[\w/.-]+\.yaml", (ROOT / "README.md").read_text()))
    assert len(named) >= 6
    assert sorted(f for f in named if not (ROOT / f).is_file()) == []


def _coco_outside_its_folder(tmp_path: Path) -> str:
    ann = tmp_path / "set" / "annotations.json"
    ann.parent.mkdir()
    doc = {
        "images": [{"id": 1, "file_name": "../x.fits", "width": 64, "height": 64}],
        "annotations": [],
        "categories": [{"id": 1, "name": "clump"}],
    }
    ann.write_text(json.dumps(doc))
    return str(ann)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["detect", "missing.pt", "--out", "{tmp}/c.fits"], "missing.pt: checkpoint not found"),
        (
            ["baseline", "--truth", "{coco}", "--out", "{tmp}/p.json", "--workers", "1"],
            "file_name '../x.fits' must be a relative path inside the annotation file's folder",
        ),
        (
            ["simulate", "clumps", "--n", "2", "--out", "{tmp}/s", "--set", "noise.gain_r=5"],
            "noise: unknown key(s) 'gain_r'",
        ),
    ],
)
def test_newcomer_mistakes_are_one_line(argv, message, tmp_path, capsys):
    """The mistakes of issue 10's first-run report: exit 2 and one line naming the problem."""
    fill = {"tmp": str(tmp_path)}
    if "{coco}" in argv:
        fill["coco"] = _coco_outside_its_folder(tmp_path)
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clumpdet: error: ") and message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["set"]), "no output written"


def test_unknown_simulator_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "nonexistent", "--n", "2", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nonexistent'" in err and "'clumps'" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_unwritable_output_is_one_line(tmp_path, capsys):
    """An output path under a file is the user's mistake: one line naming a path, exit 2."""
    (tmp_path / "afile").write_text("not a folder")
    out = tmp_path / "afile" / "sim"
    assert main(["simulate", "clumps", "--n", "1", "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"clumpdet: error: {tmp_path / 'afile'}: ")
    assert (tmp_path / "afile").read_text() == "not a folder"
