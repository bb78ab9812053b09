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
    import json

    bundle = load_detector(fields_model)
    assert bundle.class_names == ("star", "galaxy") and bundle.detection_kind == "sources"
    assert bundle.preprocessing.bands == ("g", "r", "z")
    # the training PSF travels with the weights: the median of the training images' records
    doc = json.loads((fields_model.parent / "data" / "train" / "annotations.json").read_text())
    want = float(np.median([im["psf_fwhm_px"] for im in doc["images"]]))
    assert bundle.psf_fwhm_px == pytest.approx(want, rel=1e-6)


def test_checkpoint_psf_fwhm_is_optional(tmp_path):
    import torch

    from clumpdet.checkpoints import save_checkpoint
    from clumpdet.config import to_dict
    from clumpdet.models.detector import DetectorConfig, build_detector

    mc = DetectorConfig(class_names=("star", "galaxy"), detection_kind="sources")
    model = build_detector(config=mc, in_chans=1, image_mean=[0.0], image_std=[1.0])
    pre = Preprocessing(bands=("r",), stretch="asinh", mean=(0.0,), std=(1.0,))
    kw = dict(kind="detector", model=model, preprocessing=pre, model_config=to_dict(mc))
    with_psf = save_checkpoint(tmp_path / "a.pt", image_size=(64, 64), psf_fwhm_px=2.25, **kw)
    without = save_checkpoint(tmp_path / "b.pt", image_size=(64, 64), **kw)
    assert load_detector(with_psf).psf_fwhm_px == pytest.approx(2.25)
    assert load_detector(without).psf_fwhm_px is None
    # a file written before the key existed loads as "not known"
    obj = torch.load(without, weights_only=True)
    obj.pop("psf_fwhm_px")
    torch.save(obj, tmp_path / "old.pt")
    assert load_detector(tmp_path / "old.pt").psf_fwhm_px is None


def test_centre_suppression_removes_concentric_duplicates_not_pairs():
    import torch

    from clumpdet.models.detector import DetectorConfig, centre_suppression

    boxes = torch.tensor(
        [
            [10.0, 10.0, 14.1, 14.1],  # a source, 4.1 px box
            [9.6, 9.7, 15.0, 15.1],  # the same source, 5.4 px box, centre 0.17 px off (IoU 0.58)
            [20.0, 10.0, 25.0, 15.0],  # a neighbour 2.5 px from the next one
            [22.5, 10.0, 27.5, 15.0],
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert centre_suppression(boxes, scores, 0.25).tolist() == [0, 2, 3]
    assert centre_suppression(boxes, scores, 0.0).tolist() == [0, 1, 2, 3]
    assert centre_suppression(boxes, scores, 0.6).tolist() == [0, 2]  # pair closer than 0.6*5
    assert centre_suppression(boxes[:1], scores[:1], 0.25).tolist() == [0]
    with pytest.raises(ConfigError, match="centre_merge"):
        DetectorConfig(centre_merge=1.5)


def test_auto_zoom_uses_the_checkpoint_psf():
    from clumpdet.experiments.real_field import TRAINING_FWHM_PX, auto_zoom

    assert auto_zoom(training_fwhm_px=2.3, frame_fwhm_px=2.25) == 1.0  # within tolerance
    assert auto_zoom(training_fwhm_px=4.5, frame_fwhm_px=2.25) == pytest.approx(2.0)
    assert auto_zoom(training_fwhm_px=2.0, frame_fwhm_px=4.0) == 1.0  # never bins the frame
    assert auto_zoom(training_fwhm_px=None, frame_fwhm_px=2.0) == pytest.approx(
        TRAINING_FWHM_PX / 2.0
    )
    assert auto_zoom(training_fwhm_px=3.0, frame_fwhm_px=float("nan")) == 1.0


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
    from clumpdet.experiments.real_field import auto_zoom

    assert res["fwhm_px"] == pytest.approx(2.2, rel=0.2)
    assert res["psf_fwhm_px_fit"] == pytest.approx(2.2, rel=0.1)
    assert res["training_psf_fwhm_px"] == pytest.approx(load_detector(fields_model).psf_fwhm_px)
    assert res["zoom"] == pytest.approx(
        auto_zoom(
            training_fwhm_px=res["training_psf_fwhm_px"], frame_fwhm_px=res["psf_fwhm_px_fit"]
        )
    )
    assert res["zoom"] > 1.4  # DECam-like training PSF (~3.8 px) vs 2.2 px
    assert res["n_sextractor"] == 8 and res["n_sextractor_above_snr_min"] == 8
    assert res["sep_sextractor_settings"]["recovered_above_snr_min"] == 1.0
    assert (tmp_path / "check" / "overlay.png").is_file()
    assert (tmp_path / "check" / "real_field.json").is_file()
    missed = res["clumpdet"]["missed_above_snr_min"]
    assert (tmp_path / "check" / "missed.png").is_file() == bool(missed)
    for m in missed:  # each miss says where the detector's nearest output of any score was
        assert {"edge_dist_px", "nearest_source_px", "nearest_any_score"} <= set(m)


def test_missed_source_diagnostics_on_hand_built_cases(tmp_path):
    import pandas as pd

    from clumpdet.experiments.real_field import _describe_missed, plot_missed_cutouts

    ref = np.array([[10.0, 10.0], [50.0, 50.0], [3.0, 60.0]])
    missed = pd.DataFrame(
        {
            "NUMBER": [2, 3],
            "x": [50.0, 3.0],
            "y": [50.0, 60.0],
            "snr": [11.0, 12.0],
            "FLAGS": [0, 16],
        }
    )
    kept = np.array([[10.2, 10.0]])
    every = np.array([[10.2, 10.0], [50.5, 50.0], [52.0, 50.0], [30.0, 30.0]])
    scores = np.array([0.9, 0.2, 0.3, 0.1])
    rows = _describe_missed(missed, ref, kept, every, scores, shape=(64, 64), fwhm=2.0)
    assert rows[0]["edge_dist_px"] == pytest.approx(14.0)
    assert rows[0]["nearest_any_score"] == pytest.approx(0.3)  # best within 2 FWHM = 4 px
    assert rows[0]["nearest_any_dist_px"] == pytest.approx(2.0)
    assert rows[1]["edge_dist_px"] == pytest.approx(3.0) and rows[1]["nearest_any_score"] is None
    assert rows[1]["nearest_source_px"] == pytest.approx(np.hypot(47.0, 10.0), abs=0.01)
    png = plot_missed_cutouts(
        np.random.default_rng(0).normal(size=(64, 64)),
        tmp_path / "missed.png",
        missed=rows,
        reference_xy=ref,
        detections_xy=kept,
        rms=1.0,
    )
    assert png.is_file() and png.stat().st_size > 1000
