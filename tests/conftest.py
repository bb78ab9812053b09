"""Shared fixtures. Everything is small, seeded and offline."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network

from helpers import write_blob_dataset


@pytest.fixture(scope="session")
def blob_data(tmp_path_factory) -> dict[str, Path]:
    """Tiny 3-band FITS blob datasets (train / val) with COCO truth and a WCS."""
    root = tmp_path_factory.mktemp("blobs")
    return {
        "train": write_blob_dataset(root / "train", n=24, seed=0),
        "val": write_blob_dataset(root / "val", n=9, seed=1),
    }


@pytest.fixture(scope="session")
def tiny_model(blob_data, tmp_path_factory) -> Path:
    """A detector trained for 3 epochs on the blob data (about 10 s on 2 cores)."""
    from clumpdet.config import load_config
    from clumpdet.engine.config import TrainConfig
    from clumpdet.engine.train import train_detector

    cfg = load_config(
        TrainConfig,
        Path(__file__).parents[1] / "configs" / "detector" / "cpu_resnet18.yaml",
        [
            f"data.train={blob_data['train']}",
            f"data.val={blob_data['val']}",
            "optim.max_epochs=3",
            "optim.lr=1e-3",
            "trainer.progress_bar=false",
        ],
    )
    return train_detector(cfg, out=tmp_path_factory.mktemp("run"))
