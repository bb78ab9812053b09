"""``clumpdet catalogue``: shards, manifest, resume, failures, Dask, band files, pixel scale.

Everything runs on a tiny *untrained* detector checkpoint written here (its detections are
arbitrary but deterministic, which is all these tests need) and 64 x 64 FITS blobs.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits
from helpers import ThresholdDetector, write_blob_dataset

from clumpdet.checkpoints import DEFAULT_PIXEL_SCALE, load_detector, save_checkpoint
from clumpdet.config import to_dict
from clumpdet.data.fits import make_wcs, pixel_scale_of, write_image_fits
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.errors import InputError
from clumpdet.inference.predictor import Predictor, resample_planes
from clumpdet.inference.survey import BandFiles, iter_items, run_catalogue

BANDS = ("g", "r", "i")


@pytest.fixture(scope="module")
def survey(tmp_path_factory) -> dict[str, Path]:
    from clumpdet.models.backbones import BackboneConfig
    from clumpdet.models.detector import DetectorConfig, build_detector

    root = tmp_path_factory.mktemp("survey")
    torch.manual_seed(0)
    pre = Preprocessing(bands=BANDS)
    cfg = DetectorConfig(
        backbone=BackboneConfig(name="resnet18", weights="none"),
        min_score=0.2,
        detections_per_image=20,
    )
    model = build_detector(config=cfg, in_chans=3, image_mean=pre.mean, image_std=pre.std)
    ckpt = save_checkpoint(
        root / "model.pt",
        kind="detector",
        model=model.eval(),
        preprocessing=pre,
        model_config=to_dict(cfg),
        image_size=(64, 64),
        input={"kind": "fits", "unit": "nanomaggy"},
        pixel_scale=0.396,
    )
    ann = write_blob_dataset(root / "data", n=10, seed=3)
    return {"ckpt": ckpt, "images": ann.parent / "images", "root": root}


def _run(survey, out, inputs=None, **kw):
    kw.setdefault("workers", 0)
    kw.setdefault("shard_size", 3)
    kw.setdefault("score_threshold", 0.0)
    kw.setdefault("progress", False)
    return run_catalogue(
        checkpoint=survey["ckpt"], inputs=inputs or [survey["images"]], out=out, **kw
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def reference(survey, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    _run(survey, out, fits=True)
    return out


def test_catalogue_shards_manifest_and_sorted_rows(survey, reference):
    import pyarrow.parquet as pq

    doc = json.loads((reference / "manifest.json").read_text())
    assert sorted(doc["shards"]) == ["000000", "000001", "000002", "000003"]  # 10 images / 3
    for rec in doc["shards"].values():
        assert _digest(reference / rec["file"]) == rec["sha256"]
        listed = (reference / rec["inputs_file"]).read_text().splitlines()
        assert len(listed) == rec["n_inputs"]
    table = pq.read_table(reference / "catalogue.parquet")
    assert table.num_rows > 0
    ids = table.column("image_id").to_numpy()
    assert np.all(np.diff(ids) >= 0) and set(ids) <= set(range(10))
    assert all(Path(p).name.endswith(".fits") for p in table.column("input").to_pylist())
    assert (reference / "catalogue.fits").is_file()


def test_resume_after_interruption_is_byte_identical(survey, reference, tmp_path):
    out = tmp_path / "run"
    part = _run(survey, out, fits=True, max_shards=2)
    assert part["complete"] is False and not (out / "catalogue.parquet").exists()
    # a shard file left half-done by a killed worker is never recorded: only the manifest counts
    (out / "shards" / "000003.parquet").write_bytes(b"partial")
    summary = _run(survey, out, fits=True)
    assert summary["n_skipped"] == 2
    for name in ("catalogue.parquet", "catalogue.fits", "failed.csv", "manifest.json"):
        assert _digest(out / name) == _digest(reference / name), name
    again = _run(survey, out, fits=True)  # a finished run resumes to the same bytes
    assert again["n_skipped"] == 4
    assert _digest(out / "catalogue.parquet") == _digest(reference / "catalogue.parquet")


def test_resume_refuses_other_inputs_or_settings(survey, reference, tmp_path):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(reference, out)
    files = sorted(survey["images"].glob("*.fits"))
    with pytest.raises(InputError, match="shard 000000 was run on other inputs"):
        _run(survey, out, inputs=[str(p) for p in files[1:]])
    with pytest.raises(InputError, match="other settings.*shard_size"):
        _run(survey, out, shard_size=4)


def test_two_worker_local_cluster_matches_one_process(survey, reference, tmp_path):
    out = tmp_path / "dask"
    summary = _run(survey, out, workers=2)
    assert summary["complete"]
    assert _digest(out / "catalogue.parquet") == _digest(reference / "catalogue.parquet")


def _worker_env() -> tuple[str | None, bool]:
    import os

    import dask

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), dask.config.get(
        "distributed.worker.profile.enabled"
    )


def test_local_cluster_workers_keep_glibc_trim_default_and_no_profiler():
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 by default: 30-40 % slower workers
    from clumpdet.inference.survey import dask_client

    with dask_client(workers=1, scheduler=None) as client:
        (env,) = client.run(_worker_env).values()
    assert env == (None, False)


def test_unreadable_files_go_to_failed_csv(survey, reference, tmp_path):
    import pyarrow.parquet as pq

    files = sorted(survey["images"].glob("*.fits"))
    bad = tmp_path / "corrupt.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b"\0" * 50)
    nan = tmp_path / "nan.fits"
    write_image_fits(
        nan,
        np.full((3, 64, 64), np.nan, np.float32),
        bands=BANDS,
        wcs=make_wcs(shape=(64, 64), ra=150, dec=2, pixel_scale=0.396),
    )
    listing = tmp_path / "list.csv"
    with open(listing, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["objid", "path"])
        w.writerow([1, str(files[0])])
        w.writerow([2, "corrupt.fits"])  # relative to the list's folder
        w.writerow([3, str(files[1])])
        w.writerow([4, "missing.fits"])
        w.writerow([5, "nan.fits"])
    out = tmp_path / "run"
    summary = _run(survey, out, inputs=[listing], shard_size=2)
    assert summary["n_images"] == 5 and summary["n_failed"] == 3
    with open(out / "failed.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["image_id"]) for r in rows] == [1, 3, 4]
    assert "not a valid FITS" in rows[0]["reason"] and "not found" in rows[1]["reason"]
    assert "finite" in rows[2]["reason"]
    got = pq.read_table(out / "catalogue.parquet")
    ref = pq.read_table(reference / "catalogue.parquet")
    for k, name in ((0, files[0]), (2, files[1])):
        mine = got.filter(got.column("image_id").to_numpy() == k).column("score").to_numpy()
        i0 = files.index(name)
        theirs = ref.filter(ref.column("image_id").to_numpy() == i0).column("score").to_numpy()
        np.testing.assert_allclose(mine, theirs, rtol=1e-5)  # other batches: float32 ulps


def test_band_files_group_single_band_files_with_names_from_the_pattern(survey, tmp_path):
    import pyarrow.parquet as pq

    cubes = sorted(survey["images"].glob("*.fits"))[:2]
    folder = tmp_path / "frames"
    folder.mkdir()
    for cube in cubes:
        with fits.open(cube) as hdul:
            data, hdr = hdul[0].data, hdul[0].header
        for k, band in enumerate(BANDS):
            h = fits.Header()
            h.update(make_wcs(shape=(64, 64), ra=150, dec=2, pixel_scale=0.396).to_header())
            h["FILTER"] = "z"  # wrong on purpose, as some SDSS headers are
            fits.PrimaryHDU(data[k], header=h).writeto(folder / f"{cube.stem}-{band}.fits")
        assert hdr["BAND1"] == "g"
    (folder / "0099-g.fits").write_bytes((folder / f"{cubes[0].stem}-g.fits").read_bytes())
    (folder / f"{cubes[0].stem}-u.fits").write_bytes(b"not read: band not used")
    items = list(iter_items([folder], band_files="{field}-{band}.fits", bands=BANDS))
    assert [it.key.split("/")[-1] for it in items] == [cubes[0].stem, cubes[1].stem, "0099"]
    assert items[0].bands == BANDS and items[0].paths[1].endswith("-r.fits")
    assert "missing band file(s) r, i" in items[2].error
    out = tmp_path / "run"
    summary = _run(survey, out, inputs=[folder], band_files="{field}-{band}.fits")
    assert summary["n_images"] == 3 and summary["n_failed"] == 1
    grouped = pq.read_table(out / "catalogue.parquet")
    cube_out = tmp_path / "cubes"
    _run(survey, cube_out, inputs=[str(c) for c in cubes])
    cubes_t = pq.read_table(cube_out / "catalogue.parquet")
    np.testing.assert_allclose(
        grouped.column("flux_r").to_numpy(), cubes_t.column("flux_r").to_numpy(), rtol=1e-6
    )


def test_band_pattern_with_band_first_and_folders():
    bf = BandFiles("frame-{band}-{field}.fits.bz2", BANDS)
    assert bf.match("/d/frame-r-003918-3-0213.fits.bz2") == ("/d/003918-3-0213", "r")
    assert bf.match("/d/other.fits") is None
    nested = BandFiles("{band}/{field}.fits", BANDS)
    assert nested.match("/data/i/obj7.fits") == ("/data/obj7", "i")


def test_pixel_scale_read_from_wcs_and_old_checkpoints_default(survey, tmp_path):
    wcs = make_wcs(shape=(20, 20), ra=10, dec=-30, pixel_scale=1.19)
    assert pixel_scale_of(wcs) == pytest.approx(1.19, rel=1e-6)
    assert pixel_scale_of(None, fits.Header({"PIXSCALE": 0.262})) == 0.262
    assert pixel_scale_of(None, fits.Header()) is None
    assert load_detector(survey["ckpt"]).pixel_scale == 0.396
    obj = torch.load(survey["ckpt"], weights_only=True)
    del obj["pixel_scale"]
    torch.save(obj, tmp_path / "old.pt")
    assert load_detector(tmp_path / "old.pt").pixel_scale == DEFAULT_PIXEL_SCALE


def test_fits_without_wcs_is_refused_unless_pixel_scale_given(survey, tmp_path):
    img = np.random.default_rng(0).normal(size=(3, 64, 64)).astype(np.float32)
    path = write_image_fits(tmp_path / "nowcs.fits", img, bands=BANDS)
    with pytest.raises(InputError, match="no WCS or pixel-scale keyword.*--pixel-scale"):
        _run(survey, tmp_path / "run", inputs=[path])
    summary = _run(survey, tmp_path / "run2", inputs=[path], pixel_scale="0.396")
    assert summary["n_failed"] == 0


def test_coarse_input_is_resampled_and_boxes_map_back(survey):
    bundle = load_detector(survey["ckpt"])
    bundle.model = ThresholdDetector(threshold=2.0)
    pred = Predictor(bundle, batch_size=2, require_pixel_scale=True)
    yy, xx = np.mgrid[0:40, 0:40] + 0.5
    blob = 200.0 * np.exp(-((xx - 25.0) ** 2 + (yy - 12.0) ** 2) / (2 * 1.0**2))
    data = np.random.default_rng(1).normal(0, 1, (3, 40, 40)) + blob[None]
    from clumpdet.data.images import ImageData

    coarse = ImageData(
        data=data.astype(np.float32),
        bands=BANDS,
        wcs=make_wcs(shape=(40, 40), ra=0, dec=0, pixel_scale=0.792),
        path=Path("coarse.fits"),
    )
    resampled, (fy, fx) = pred.to_model_scale(coarse)
    assert resampled.data.shape == (3, 80, 80) and (fy, fx) == (2.0, 2.0)
    assert resampled.data.sum() == pytest.approx(coarse.data.sum(), rel=1e-4)  # flux kept
    (det,) = pred.predict([coarse])
    assert len(det) >= 1
    centres = 0.5 * (det.boxes[:, :2] + det.boxes[:, 2:])
    best = np.argmin(np.hypot(centres[:, 0] - 25.0, centres[:, 1] - 12.0))
    assert np.hypot(*(centres[best] - [25.0, 12.0])) < 1.0  # in the input's pixels
    assert np.all(det.boxes[:, 2] <= 40.5)
    nowcs = ImageData(data=coarse.data, bands=BANDS, path=Path("nowcs.fits"))
    with pytest.raises(InputError, match="nowcs.fits: has no WCS"):
        pred.predict([nowcs])
    assert resample_planes(np.ones((1, 4, 4), np.float32), (2, 2)).sum() == pytest.approx(16.0)


def test_cli_catalogue(survey, tmp_path, capsys):
    from clumpdet.cli import main

    files = sorted(survey["images"].glob("*.fits"))[:2]
    rc = main(
        [
            "catalogue",
            str(survey["ckpt"]),
            *map(str, files),
            "--out",
            str(tmp_path / "c"),
            "--workers",
            "0",
            "--no-progress",
            "--score-threshold",
            "0.0",
        ]
    )
    assert rc == 0
    assert "from 2 images in 1 shards" in capsys.readouterr().out


def test_classifier_checkpoint_gives_one_row_per_galaxy(survey, tmp_path):
    import pyarrow.parquet as pq

    from clumpdet.checkpoints import load_classifier
    from clumpdet.models.classifier import ClassifierConfig, build_classifier

    torch.manual_seed(1)
    cfg = ClassifierConfig(task="four_class")
    cfg.backbone = type(cfg.backbone)(**{**to_dict(cfg.backbone), "weights": "none"})
    model = build_classifier(config=cfg, in_chans=3, image_size=32).eval()
    ckpt = save_checkpoint(
        tmp_path / "cls.pt",
        kind="classifier",
        model=model,
        preprocessing=Preprocessing(bands=BANDS),
        model_config=to_dict(cfg),
        image_size=32,
    )
    files = sorted(survey["images"].glob("*.fits"))[:4]
    out = tmp_path / "run"
    summary = run_catalogue(
        checkpoint=ckpt, inputs=[str(f) for f in files], out=out, workers=0, progress=False
    )
    t = pq.read_table(out / "catalogue.parquet")
    assert summary["n_rows"] == 4 and t.column("image_id").to_pylist() == [0, 1, 2, 3]
    probs = np.stack([t.column(f"p_{n}").to_numpy() for n in load_classifier(ckpt).label_names])
    np.testing.assert_allclose(probs.sum(0), 1.0, rtol=1e-5)
