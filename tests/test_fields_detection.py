"""Star/galaxy detection on blended fields: training path, tiled mosaics, source catalogues."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import ThresholdDetector

from clumpdet.checkpoints import load_detector
from clumpdet.config import load_config
from clumpdet.data.images import ImageData
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.detections import Detections
from clumpdet.engine.config import TrainConfig
from clumpdet.engine.train import train_detector
from clumpdet.errors import ConfigError
from clumpdet.evaluation.matching import box_iou
from clumpdet.inference.catalogue import build_catalogue
from clumpdet.inference.predictor import Predictor, tile_starts
from clumpdet.sim import load_field_config, simulate_field_scene

ROOT = Path(__file__).parents[1]
FIELDS_CFG = ROOT / "configs" / "detector" / "fields_resnet18.yaml"


def _predictor(bundle, size: int, overlap: int) -> Predictor:
    bundle.image_size = (size, size)
    return Predictor(bundle, tile_overlap=overlap, batch_size=4)


def test_tiled_mosaic_finds_each_source_once(tiny_model):
    """Tiles of 128 px with 64 px overlap reproduce the whole-frame detections of every source
    smaller than half the overlap, including those straddling tile borders, exactly once."""
    cfg = load_field_config(
        None, ["image.width=300", "image.height=300", "galaxies.density=150", "pairs.fraction=0.3"]
    )
    scene = simulate_field_scene(config=cfg, seed=2)
    bundle = load_detector(tiny_model)
    bundle.model = ThresholdDetector(threshold=0.12)  # ~5 sigma of the 3-band sum (nanomaggy)
    bundle.preprocessing = Preprocessing(bands=("g", "r", "z"), stretch="none")
    (tiled,) = _predictor(bundle, 128, 64).predict([scene.image])
    (whole,) = _predictor(bundle, 300, 64).predict([scene.image])
    side = np.maximum(whole.boxes[:, 2] - whole.boxes[:, 0], whole.boxes[:, 3] - whole.boxes[:, 1])
    small = whole.boxes[side <= 30]
    assert len(small) >= 30
    starts = tile_starts(300, 128, 64)
    edges = [*starts[1:], *(s + 128 for s in starts)]
    straddle = [
        b for b in small if any(b[0] < e < b[2] or b[1] < e < b[3] for e in edges if e < 300)
    ]
    assert len(straddle) >= 3  # the test exercises the merge
    iou = box_iou(small, tiled.boxes)
    assert (iou.max(axis=1) > 0.999).all()  # every source found with its whole-frame box
    assert ((iou > 0.3).sum(axis=1) == 1).all()  # and only once


def test_source_catalogue_has_no_host_columns():
    image = ImageData(
        data=np.ones((3, 40, 40), np.float32), bands=("g", "r", "z"), wcs=None, path=None
    )
    det = Detections(np.array([[10, 10, 20, 20]], np.float32), np.array([2]), np.array([0.9]))
    t = build_catalogue([image], [det], class_names=("star", "galaxy"), detection_kind="sources")
    assert t["source_id"][0] == 1 and t["label_name"][0] == "galaxy"
    assert t["flux_r"][0] == pytest.approx(100.0)
    assert "host_segment" not in t.colnames and "flux_ratio" not in t.colnames
    empty = build_catalogue(
        [image], [Detections()], class_names=("star",), detection_kind="sources"
    )
    assert len(empty) == 0 and "source_id" in empty.colnames


def test_class_names_must_match_simulator(tmp_path):
    cfg = load_config(TrainConfig, FIELDS_CFG, ["model.class_names=[clump, odd_clump]"])
    with pytest.raises(ConfigError, match="do not match the 'fields' simulator"):
        train_detector(cfg, out=tmp_path / "run")


@pytest.fixture(scope="module")
def fields_model(tmp_path_factory) -> Path:
    """A fields detector trained for one epoch on 6 simulated tiles (path of model.pt)."""
    cfg = load_config(
        TrainConfig,
        FIELDS_CFG,
        [
            "data.simulate.n_train=6",
            "data.simulate.n_val=2",
            "optim.max_epochs=1",
            "trainer.progress_bar=false",
        ],
    )
    # the config's simulation YAML path is relative to the repo root
    cfg.data.simulate.config = str(ROOT / cfg.data.simulate.config)
    return train_detector(cfg, out=tmp_path_factory.mktemp("fields") / "run")


def test_fields_config_trains_end_to_end(fields_model):
    bundle = load_detector(fields_model)
    assert bundle.class_names == ("star", "galaxy") and bundle.detection_kind == "sources"
    assert bundle.preprocessing.bands == ("g", "r", "z")


def test_benchmark_writes_table_plots_and_overlays(fields_model, tmp_path):
    from clumpdet.experiments.deblending import run_deblending_benchmark
    from clumpdet.sim import simulate_fields

    small = load_field_config(None, ["image.width=96", "image.height=96", "galaxies.density=120"])
    test = simulate_fields(n=2, seed=2, out=tmp_path / "test", config=small, workers=1)
    val = simulate_fields(n=2, seed=1, out=tmp_path / "val", config=small, workers=1)
    res = run_deblending_benchmark(
        checkpoint=fields_model, test_dir=test, val_dir=val, out=tmp_path / "bench", progress=False
    )
    assert list(res) == [
        "clumpdet Faster R-CNN",
        "sep (tuned)",
        "photutils (tuned)",
        "sep (SExtractor defaults)",
    ]
    assert res["sep (tuned)"]["completeness"] > 0.5  # sep finds bright simulated sources
    table = (tmp_path / "bench" / "comparison.md").read_text().splitlines()
    assert len(table) == 2 + 4
    pngs = sorted(p.name for p in (tmp_path / "bench").glob("*.png"))
    assert len(pngs) == 4
    assert len(list((tmp_path / "bench" / "overlays").glob("*.png"))) == 2


def _write_sextractor(path: Path, rows: list[tuple[float, ...]]) -> None:
    cols = ["NUMBER", "X_IMAGE", "Y_IMAGE", "FLUX_AUTO", "FLUXERR_AUTO", "FLAGS"]
    head = [f"#   {i} {c:<22s} description" for i, c in enumerate(cols, 1)]
    body = [" ".join(f"{v:g}" for v in r) for r in rows]
    path.write_text("\n".join(head + body) + "\n")


def test_sextractor_reader_converts_positions(tmp_path):
    from clumpdet.data.sextractor import read_sextractor_catalogue
    from clumpdet.errors import InputError

    cat = tmp_path / "image.cat"
    _write_sextractor(cat, [(1, 10.0, 20.0, 100.0, 10.0, 0), (2, 1.0, 1.0, 50.0, 0.0, 24)])
    df = read_sextractor_catalogue(cat)
    assert df["x"].tolist() == [9.5, 0.5] and df["y"].tolist() == [19.5, 0.5]
    assert df["snr"].iloc[0] == pytest.approx(10.0) and np.isnan(df["snr"].iloc[1])
    with pytest.raises(InputError, match="missing.cat: catalogue file not found"):
        read_sextractor_catalogue(tmp_path / "missing.cat")
    bad = tmp_path / "bad.cat"
    bad.write_text("#   1 NUMBER  n\n#   2 FLUX_AUTO f\n1 2\n")
    with pytest.raises(InputError, match="no X_IMAGE column"):
        read_sextractor_catalogue(bad)


def test_real_field_check_on_a_synthetic_frame(fields_model, tmp_path):
    """The whole real-frame path (background, FWHM, zoom, band copy, matching, overlay) on an
    NTT-like frame of Moffat stars whose SExtractor-format catalogue is written here."""
    import galsim

    from clumpdet.data.fits import write_image_fits
    from clumpdet.experiments.real_field import check_against_sextractor

    rng = np.random.default_rng(0)
    frame = galsim.ImageD(128, 128, scale=1.0)
    rows = []
    for k, (x, y) in enumerate(rng.uniform(10, 118, size=(8, 2)), 1):
        star = galsim.Moffat(beta=3.5, fwhm=2.2, flux=2e5)
        star.drawImage(image=frame, center=galsim.PositionD(x + 0.5, y + 0.5), add_to_image=True)
        rows.append((k, x + 0.5, y + 0.5, 2e5, 400.0, 0))
    frame = frame.array + 6800.0 + 60.0 * rng.normal(size=(128, 128))
    write_image_fits(tmp_path / "frame.fits", frame[None], bands=("R",))
    _write_sextractor(tmp_path / "frame.cat", rows)
    res = check_against_sextractor(
        checkpoint=fields_model,
        image=tmp_path / "frame.fits",
        catalogue=tmp_path / "frame.cat",
        out=tmp_path / "check",
    )
    assert res["fwhm_px"] == pytest.approx(2.2, rel=0.2)
    assert res["zoom"] == pytest.approx(1.0 / 0.263 / res["fwhm_px"])
    assert res["n_sextractor"] == 8 and res["n_sextractor_above_snr_min"] == 8
    assert res["sep_sextractor_settings"]["recovered_above_snr_min"] == 1.0
    assert (tmp_path / "check" / "overlay.png").is_file()
    assert (tmp_path / "check" / "real_field.json").is_file()
