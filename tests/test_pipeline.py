"""The demo pipeline's built-in detector config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from clumpdet.config import load_config
from clumpdet.engine.config import TrainConfig
from clumpdet.pipeline import DEMO_DETECTOR

ROOT = Path(__file__).resolve().parents[1]


def test_demo_detector_is_the_shipped_cpu_resnet18_config():
    shipped = load_config(TrainConfig, ROOT / "configs" / "detector" / "cpu_resnet18.yaml")
    demo = load_config(TrainConfig, None, DEMO_DETECTOR)
    # the demo sets the data and the number of epochs itself
    optim = dataclasses.replace(shipped.optim, max_epochs=demo.optim.max_epochs)
    assert dataclasses.replace(shipped, data=demo.data, optim=optim) == demo


def test_demo_population_choice_is_checked(tmp_path):
    """The demo simulates the smooth population by default and refuses an unknown one."""
    import inspect

    import pytest

    from clumpdet.pipeline import DEMO_POPULATIONS, run_demo

    assert inspect.signature(run_demo).parameters["population"].default == "smooth"
    assert set(DEMO_POPULATIONS) == {"smooth", "realistic"}
    with pytest.raises(ValueError, match="population"):
        run_demo(out=tmp_path / "demo", population="spherical")
    assert not (tmp_path / "demo").exists()
