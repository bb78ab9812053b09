"""Tests of the classical (sep / photutils) clump-finding baseline."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from helpers import spy_parallel_map
from scipy import ndimage

from clumpdet.baselines import (
    CLUMP_COLUMNS,
    ClassicalConfig,
    boxes_xyxy,
    find_clumps,
    run_classical_baseline,
    to_coco_results,
)
from clumpdet.baselines import classical as classical_module
from clumpdet.config import load_config
from clumpdet.data.coco import write_coco
from clumpdet.data.fits import write_image_fits
from clumpdet.errors import ConfigError, InputError, NoDetectionsWarning

BANDS = ("g", "r", "i")
KNOTS = ((40.0, 70.0), (85.0, 50.0), (75.0, 92.0))  # (x, y), COCO pixel convention
SIZE = 128
CENTRE = (SIZE / 2, SIZE / 2)


def make_galaxy(
    *,
    knots=KNOTS,
    odd=(),
    knot_amp: float = 0.3,
    noise: float = 0.01,
    seed: int = 0,
    psf_fwhm: float = 3.5,
) -> np.ndarray:
    """gri image (3, 128, 128): inclined exponential disk + bulge + blue knots + red odd knots."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] + 0.5  # pixel centres
    dx, dy = xx - CENTRE[0], yy - CENTRE[1]
    pa, q = 0.5, 0.6
    u = dx * np.cos(pa) + dy * np.sin(pa)
    v = (-dx * np.sin(pa) + dy * np.cos(pa)) / q
    host = np.exp(-np.hypot(u, v) / 12.0) + 1.3 * np.exp(-0.5 * (dx**2 + dy**2) / 2.0**2)
    red_host = np.array([0.6, 1.0, 1.3])[:, None, None]
    img = host[None] * red_host
    for x, y, colour, sigma in [(*k, (1.6, 1.0, 0.7), 1.0) for k in knots] + [
        (*k, (0.15, 1.0, 1.6), 1.0) for k in odd
    ]:
        blob = knot_amp * np.exp(-0.5 * ((xx - x) ** 2 + (yy - y) ** 2) / sigma**2)
        img = img + blob[None] * np.asarray(colour)[:, None, None]
    sig = psf_fwhm / 2.3548
    img = np.stack([ndimage.gaussian_filter(b, sig) for b in img])
    return (img + rng.normal(0.0, noise, img.shape)).astype(np.float32)


def _contains(box: np.ndarray, xy: tuple[float, float]) -> bool:
    return bool(box[0] <= xy[0] <= box[2] and box[1] <= xy[1] <= box[3])


class _Det:
    """Boxes, labels and scores of a :func:`find_clumps` table, checked against its schema."""

    def __init__(self, table: Table) -> None:
        assert isinstance(table, Table)
        assert table.colnames == list(CLUMP_COLUMNS)
        for name in ("x", "y", "x1", "y1", "x2", "y2", "fwhm"):
            assert table[name].unit == "pix", name
        self.boxes = boxes_xyxy(table)
        self.labels = np.asarray(table["label"])
        self.scores = np.asarray(table["score"])
        n = len(table)
        assert self.boxes.shape == (n, 4) and self.boxes.dtype == np.float32
        assert self.labels.shape == (n,) and self.labels.dtype == np.int64
        assert self.scores.shape == (n,) and self.scores.dtype == np.float32
        assert table["snr"].dtype == np.float64 and table["flux"].dtype == np.float64
        assert set(self.labels.tolist()) <= {1, 2}
        assert np.all((self.scores >= 0) & (self.scores <= 1))
        assert np.all(np.diff(self.scores) <= 0), "scores must be sorted, best first"
        assert np.all(self.boxes[:, 2] > self.boxes[:, 0])
        assert np.all(self.boxes[:, 3] > self.boxes[:, 1])
        inner = (self.boxes[:, 0] > 0) & (self.boxes[:, 2] < SIZE)
        centre = 0.5 * (self.boxes[:, 0] + self.boxes[:, 2])
        assert np.allclose(centre[inner], np.asarray(table["x"])[inner], atol=1e-4)

    def __len__(self) -> int:
        return len(self.labels)


def find(image: np.ndarray, **kwargs) -> _Det:
    return _Det(find_clumps(image, **kwargs))


@pytest.mark.parametrize("method", ["residual", "unsharp"])
def test_find_clumps_finds_knots_not_nucleus(method: str) -> None:
    det = find(make_galaxy(), method=method, bands=BANDS)
    confident = det.scores >= 0.3
    for knot in KNOTS:
        hits = [k for k in np.flatnonzero(confident) if _contains(det.boxes[k], knot)]
        assert hits, f"{method}: knot at {knot} not found in {det.boxes.tolist()}"
        box = det.boxes[hits[0]]
        centre = (box[:2] + box[2:]) / 2
        assert np.hypot(*(centre - knot)) < 1.5, f"{method}: box off-centre {centre} vs {knot}"
        assert 8.0 < box[2] - box[0] < 30.0, f"{method}: box side {box[2] - box[0]} px"
        assert det.labels[hits[0]] == 1, "blue knots are ordinary clumps"
    assert not any(_contains(b, CENTRE) for b in det.boxes), "the host nucleus is not a clump"


@pytest.mark.parametrize("method", ["residual", "unsharp"])
def test_find_clumps_smooth_host_gives_few_detections(method: str) -> None:
    det = find(make_galaxy(knots=(), seed=3), method=method, bands=BANDS)
    limit = 0 if method == "residual" else 2
    assert int((det.scores >= 0.3).sum()) <= limit


def test_find_clumps_red_point_source_is_odd_clump() -> None:
    odd = (60.0, 40.0)
    det = find(make_galaxy(odd=(odd,)), bands=BANDS)
    labels = {}
    for box, lab in zip(det.boxes, det.labels):
        for xy in (*KNOTS, odd):
            if _contains(box, xy):
                labels[xy] = int(lab)
    assert labels.get(odd) == 2, f"red source should be class 2, got {labels}"
    assert all(labels.get(k) == 1 for k in KNOTS), labels
    # without band names the colour rule cannot apply: everything is class 1
    det_nobands = find(make_galaxy(odd=(odd,)))
    assert np.all(det_nobands.labels == 1)


def test_find_clumps_edge_cases() -> None:
    blank = find(np.zeros((3, 64, 64), np.float32), bands=BANDS)
    assert len(blank) == 0 and blank.boxes.shape == (0, 4)
    single = find(make_galaxy()[1])  # a 2-D (H, W) image is one band
    assert len(single) >= 3
    with pytest.raises(ConfigError, match="method"):
        find_clumps(make_galaxy(), method="wavelet")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="band names"):
        find_clumps(make_galaxy(), bands=("g", "r"))
    with pytest.raises(ConfigError, match="detect_bands"):
        find_clumps(make_galaxy(), bands=BANDS, config=ClassicalConfig(detect_bands=("z",)))
    r_only = find(make_galaxy(), bands=BANDS, config=ClassicalConfig(detect_bands=("r",)))
    assert sum(any(_contains(b, k) for b in r_only.boxes) for k in KNOTS) == 3


def test_to_coco_results_converts_a_finder_table() -> None:
    table = find_clumps(make_galaxy(), bands=BANDS)
    results = to_coco_results(table, image_id=7)
    assert len(results) == len(table) > 0
    for r, row in zip(results, table):
        assert r["image_id"] == 7 and r["category_id"] == int(row["label"])
        assert r["bbox"][0] == round(float(row["x1"]), 3)
        assert r["bbox"][2] == round(float(row["x2"]) - float(row["x1"]), 3)
        assert r["score"] == round(float(row["score"]), 5)
    assert to_coco_results(find_clumps(np.zeros((3, 64, 64), np.float32)), image_id=0) == []


def test_run_classical_baseline_uses_the_spawn_pool(monkeypatch, tmp_path: Path) -> None:
    calls = spy_parallel_map(monkeypatch)
    path = tmp_path / "g.fits"
    write_image_fits(path, make_galaxy(), bands=BANDS)
    run_classical_baseline(images=[path, path], out=tmp_path / "p.json", workers=2)
    assert calls == [2]
    assert not hasattr(classical_module, "ProcessPoolExecutor")


def test_classical_config_validation(tmp_path: Path) -> None:
    cfg_file = tmp_path / "classical.yaml"
    cfg_file.write_text("threshold: 4.0\nodd_colour: [g, i]\n")
    cfg = load_config(ClassicalConfig, cfg_file)
    assert cfg.threshold == 4.0 and cfg.odd_colour == ("g", "i")
    cfg_file.write_text("treshold: 4.0\n")
    with pytest.raises(ConfigError, match="treshold"):
        load_config(ClassicalConfig, cfg_file)
    with pytest.raises(ConfigError, match="psf_fwhm"):
        ClassicalConfig(psf_fwhm=-1.0)
    with pytest.raises(ConfigError, match="box_min"):
        ClassicalConfig(box_min=5.0, box_max=2.0)


def _write_set(root: Path, images: list[np.ndarray]) -> Path:
    """Write FITS cubes and a COCO truth (one box per knot) under ``root``."""
    (root / "images").mkdir(parents=True)
    recs, anns = [], []
    for i, img in enumerate(images):
        name = f"images/{i:06d}.fits"
        write_image_fits(root / name, img, bands=BANDS, pixel_scale=0.396)
        image_id = 10 + i  # ids from the file, not list positions
        recs.append({"id": image_id, "file_name": name, "width": SIZE, "height": SIZE})
        for x, y in KNOTS if i == 0 else ():
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x - 7, y - 7, 14, 14],
                    "area": 196.0,
                    "iscrowd": 0,
                }
            )
    return write_coco(root / "annotations.json", images=recs, annotations=anns)


def test_run_classical_baseline_writes_coco_results(tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    truth = _write_set(tmp_path / "sim", [make_galaxy(), make_galaxy(knots=(), seed=5)])
    out = run_classical_baseline(truth=truth, out=tmp_path / "pred" / "classical.json", workers=1)
    results = json.loads(out.read_text())
    assert isinstance(results, list) and results
    assert {r["image_id"] for r in results} <= {10, 11}
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}
        assert r["category_id"] in (1, 2) and 0 <= r["score"] <= 1
        assert len(r["bbox"]) == 4 and r["bbox"][2] > 0 and r["bbox"][3] > 0
    for x, y in KNOTS:
        assert any(
            r["image_id"] == 10
            and r["bbox"][0] <= x <= r["bbox"][0] + r["bbox"][2]
            and r["bbox"][1] <= y <= r["bbox"][1] + r["bbox"][3]
            for r in results
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gt = COCO(str(truth))
        dt = gt.loadRes(str(out))
    assert len(dt.getAnnIds()) == len(results)

    # a list of image files: ids are 0..n-1; workers=2 must give the same detections
    files = [tmp_path / "sim" / "images" / f"{i:06d}.fits" for i in range(2)]
    serial = json.loads(run_classical_baseline(images=files, out=tmp_path / "s.json").read_text())
    par = run_classical_baseline(images=files, out=tmp_path / "p.json", workers=2)
    assert json.loads(par.read_text()) == serial
    assert [r["image_id"] for r in serial] == [r["image_id"] - 10 for r in results]


@pytest.mark.filterwarnings("ignore::UserWarning")  # astropy's complaints about the corrupt file
def test_run_classical_baseline_rejects_bad_input(tmp_path: Path) -> None:
    truth = _write_set(tmp_path / "sim", [make_galaxy()])
    out = tmp_path / "pred.json"
    with pytest.raises(ConfigError, match="exactly one"):
        run_classical_baseline(truth=truth, images=[truth], out=out)
    with pytest.raises(ConfigError, match="exactly one"):
        run_classical_baseline(out=out)
    with pytest.raises(ConfigError, match="method"):
        run_classical_baseline(truth=truth, out=out, method="wavelet")  # type: ignore[arg-type]

    corrupt = tmp_path / "sim" / "images" / "000000.fits"
    corrupt.write_bytes(b"SIMPLE  =                    T" + b"\0" * 100)
    for workers in (1, 2):
        with pytest.raises(InputError) as err:
            run_classical_baseline(truth=truth, out=out, workers=workers)
        assert "000000.fits" in str(err.value)
    with pytest.raises(InputError, match="not found"):
        run_classical_baseline(images=[tmp_path / "missing.fits"], out=out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim"], "no temporary files left"


def test_run_classical_baseline_warns_when_nothing_found(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.01, (3, SIZE, SIZE)).astype(np.float32)
    path = tmp_path / "noise.fits"
    write_image_fits(path, noise, bands=BANDS)
    with pytest.warns(NoDetectionsWarning, match="no clumps"):
        out = run_classical_baseline(images=[path], out=tmp_path / "pred.json", workers=1)
    assert json.loads(out.read_text()) == []


def test_sweep_config_and_box_rebuild_match_the_finder() -> None:
    from clumpdet.baselines.tuning import boxes_for, sweep_config

    cfg = sweep_config(ClassicalConfig())
    assert cfg.threshold == 1.5 and cfg.min_snr == 1.5 and cfg.max_detections >= 200
    img = make_galaxy()
    low = find_clumps(img, config=cfg, bands=BANDS)
    high = find_clumps(img, config=ClassicalConfig(), bands=BANDS)
    assert len(low) >= len(high)  # the sweep floor only adds low-S/N detections
    assert np.all(np.diff(np.asarray(low["score"])) <= 0) and np.all(low["snr"] >= 1.5)
    for scale, rule in ((3.4, "size"), (2.5, "psf")):
        c = dataclasses.replace(cfg, box_scale=scale, box_rule=rule)
        t = find_clumps(img, config=c, bands=BANDS)
        got = boxes_for(t, c, img.shape[-2:])
        want = np.stack([np.asarray(t[k], dtype=np.float64) for k in ("x1", "y1", "x2", "y2")], 1)
        np.testing.assert_allclose(got, want, atol=1e-3)


def test_tune_classical_picks_the_box_scale_of_the_truth(tmp_path: Path) -> None:
    """Truth boxes of side 3.4 x the knots' measured FWHM: the tuning must land near 3.4."""
    from clumpdet.baselines.tuning import tune_classical

    img = make_galaxy()
    t = find_clumps(img, config=ClassicalConfig(), bands=BANDS)
    (tmp_path / "images").mkdir()
    write_image_fits(tmp_path / "images/000000.fits", img, bands=BANDS, pixel_scale=0.396)
    anns = []
    for x, y in KNOTS:
        k = int(np.argmin(np.hypot(np.asarray(t["x"]) - x, np.asarray(t["y"]) - y)))
        side = 3.4 * float(t["fwhm"][k])
        anns.append(
            {"id": len(anns) + 1, "image_id": 0, "category_id": 1, "iscrowd": 0,
             "bbox": [x - side / 2, y - side / 2, side, side], "area": side * side}
        )  # fmt: skip
    rec = {"id": 0, "file_name": "images/000000.fits", "width": SIZE, "height": SIZE}
    truth = write_coco(tmp_path / "annotations.json", images=[rec], annotations=anns)
    best, trials = tune_classical(
        truth, method="residual", box_scales=(2.4, 3.4, 4.4), box_rules=("size",), workers=1
    )
    assert best.box_scale == 3.4 and best.threshold == 1.5
    assert len(trials) == 3 and max(tr["AP50"] for tr in trials) == trials[1]["AP50"]
