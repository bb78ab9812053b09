"""Real-image correctness: colour channel order, overlay orientation, input-kind refusal,
and the real-galaxy check (on the shared Galaxy Zoo 2 images when they are present)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clumpdet.data.fits import write_image_fits
from clumpdet.data.images import COLOUR_BANDS, read_image
from clumpdet.errors import InputError
from clumpdet.experiments.real_galaxies import (
    clump_statistics,
    read_real_galaxies,
    real_galaxy_check,
)
from clumpdet.inference.overlay import colour_image, plot_overlay
from clumpdet.inference.run import check_input_kind, run_detection

S = 40  # image side, pixels

ROOT = Path(__file__).resolve().parents[1]


def _real_galaxies() -> Path | None:
    """The shared gz2_sdss_galaxies folder ($CLUMPDET_SHARED_DATA, or a shared/data beside or
    above the checkout), or None."""
    roots = [os.environ.get("CLUMPDET_SHARED_DATA")]
    roots += [str(p / "shared" / "data") for p in (ROOT, ROOT.parent, ROOT.parents[1])]
    for root in roots:
        if root and (Path(root) / "gz2_sdss_galaxies" / "labels.csv").is_file():
            return Path(root) / "gz2_sdss_galaxies"
    return None


REAL = _real_galaxies()

# ------------------------------------------------------------------------ channel order


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_colour_channels_read_in_wavelength_order(tmp_path, suffix):
    # red, green and blue channels at clearly different levels
    rgb = np.empty((16, 16, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 120, 40
    path = tmp_path / f"c{suffix}"
    Image.fromarray(rgb).save(path, **({"quality": 98} if suffix == ".jpg" else {}))
    im = read_image(path)
    assert im.bands == COLOUR_BANDS == ("B", "G", "R")
    # plane 0 is the blue channel (g of a gri composite), plane 2 the red one (i)
    np.testing.assert_allclose(
        im.data.mean(axis=(1, 2)), [40 / 255, 120 / 255, 200 / 255], atol=0.02
    )
    by_name = read_image(path, bands=("R", "G", "B"))
    np.testing.assert_allclose(by_name.data, im.data[::-1])


def test_colour_image_puts_the_reddest_band_in_red():
    cube = np.zeros((3, 20, 20), np.float32)  # (g, r, i)
    rng = np.random.default_rng(0)
    cube += rng.normal(0, 0.01, cube.shape).astype(np.float32)
    cube[2, 5:15, 5:15] += 5.0  # only i is bright
    rgb = colour_image(cube)
    centre = rgb[8:12, 8:12].mean(axis=(0, 1))
    assert centre[0] > 0.5 and centre[0] > 3 * max(centre[1], centre[2])


def test_png_round_trip_keeps_its_colours(tmp_path):
    rgb = np.zeros((20, 20, 3), np.uint8)
    rgb[2:8, 2:8, 0] = 255  # a red square top-left, a blue one bottom-right
    rgb[12:18, 12:18, 2] = 255
    Image.fromarray(rgb).save(tmp_path / "c.png")
    data = read_image(tmp_path / "c.png").data
    np.testing.assert_allclose(colour_image(data, stretch=False), rgb / 255.0, atol=1e-6)
    shown = colour_image(data + np.random.default_rng(0).normal(0, 0.01, data.shape))
    red, blue = shown[4, 4], shown[15, 15]
    assert red[0] > 0.5 and red[0] > 3 * max(red[1], red[2])
    assert blue[2] > 0.5 and blue[2] > 3 * max(blue[0], blue[1])


# ---------------------------------------------------------------------------- orientation


def _image_area(png) -> np.ndarray:
    """The (h, w, 3) part of an overlay PNG covered by the red/blue test image."""
    shown = np.asarray(Image.open(png).convert("RGB"), dtype=np.int32)
    r, g, b = shown[..., 0], shown[..., 1], shown[..., 2]
    pure = (g < 60) & ((r > 120) & (b < 60) | (b > 120) & (r < 60))
    rows, cols = np.nonzero(pure)
    return shown[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _check_top_left(png, *, box: bool = True) -> None:
    area = _image_area(png)
    h, w = area.shape[:2]
    m = h // 8  # a margin that keeps the box and the quarter borders out
    top_left = area[m : h // 2 - m, m : w // 2 - m].mean(axis=(0, 1))
    bottom_left = area[h // 2 + m : h - m, m : w // 2 - m].mean(axis=(0, 1))
    assert top_left[0] > 120 and top_left[2] < 80, top_left  # red: the input's top-left
    assert bottom_left[2] > 120 and bottom_left[0] < 80, bottom_left
    if not box:
        return
    box = (area[..., 0] < 80) & (area[..., 1] > 150) & (area[..., 2] > 200)  # the cyan box
    rows, cols = np.nonzero(box)
    assert len(rows) > 20
    assert rows.mean() < h / 2 and cols.mean() < w / 2  # drawn top-left


def test_overlay_of_a_png_shows_its_top_left_top_left(tmp_path):
    rgb = np.zeros((S, S, 3), np.uint8)
    rgb[..., 2] = 255  # blue, with a red top-left quarter (row 0 = top of the picture)
    rgb[: S // 2, : S // 2] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    image = read_image(tmp_path / "in.png")
    assert image.origin == "upper" and image.is_raster
    box = np.array([[3.0, 3.0, 15.0, 15.0]])  # PNG pixels: top-left
    out = plot_overlay(
        image.data,
        tmp_path / "ov.png",
        boxes=box,
        labels=np.array([1]),
        origin=image.origin,
        stretch=not image.is_raster,
    )
    _check_top_left(out)


def test_overlay_of_a_fits_shows_its_top_left_top_left(tmp_path):
    cube = np.random.default_rng(0).normal(0, 0.01, (3, S, S)).astype(np.float32)  # (g, r, i)
    cube[0] += 10.0  # blue (g) everywhere but the top-left quarter, which is red (i)
    top = slice(S // 2, S)  # FITS: the top of the image is the last rows
    cube[0, top, : S // 2] = 0.0
    cube[2, top, : S // 2] = 10.0
    write_image_fits(tmp_path / "in.fits", cube, bands=("g", "r", "i"))
    image = read_image(tmp_path / "in.fits")
    assert image.origin == "lower" and not image.is_raster
    box = np.array([[3.0, S - 15.0, 15.0, S - 3.0]])  # FITS pixels: top-left
    out = plot_overlay(
        image.data, tmp_path / "ov.png", boxes=box, labels=np.array([1]), origin=image.origin
    )
    _check_top_left(out)


def test_per_band_files_may_not_mix_fits_and_png(tmp_path):
    write_image_fits(tmp_path / "g.fits", np.zeros((1, 8, 8), np.float32), bands=("g",))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "r.png")
    with pytest.raises(InputError, match="mixes FITS and PNG/JPEG files"):
        read_image([tmp_path / "g.fits", tmp_path / "r.png"])


# ------------------------------------------------------------------ input-kind refusal


def _red_top_left_png(path):
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[..., 2] = 255
    rgb[:32, :32] = (255, 0, 0)
    Image.fromarray(rgb).save(path)
    return path


def test_detect_refuses_a_png_for_a_fits_model_in_one_line(tiny_model, tmp_path):
    png = _red_top_left_png(tmp_path / "cutout.png")
    with pytest.raises(InputError) as exc:
        run_detection(checkpoint=tiny_model, images=[png], out=tmp_path / "c.csv", progress=False)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{png}: is a PNG/JPEG image (8-bit display values) but ")
    assert f"{tiny_model} was trained on fits images (nanomaggy)" in message
    assert "--allow-input-mismatch" in message
    assert not (tmp_path / "c.csv").exists()


def test_detect_on_a_png_when_asked_shows_it_the_right_way_up(tiny_model, tmp_path):
    png = _red_top_left_png(tmp_path / "cutout.png")
    with pytest.warns(UserWarning, match="trained on fits images"):
        summary = run_detection(
            checkpoint=tiny_model,
            images=[png],
            out=tmp_path / "c.csv",
            overlays=tmp_path / "ov",
            score_threshold=0.0,
            progress=False,
            allow_input_mismatch=True,
        )
    assert summary["n_images"] == 1 and (tmp_path / "c.csv").is_file()
    _check_top_left(tmp_path / "ov" / "cutout_detections.png", box=False)


def test_cli_detect_refuses_then_accepts_with_the_flag(tiny_model, tmp_path, capsys):
    from clumpdet.cli import main

    png = _red_top_left_png(tmp_path / "cutout.png")
    args = ["detect", str(tiny_model), str(png), "--out", str(tmp_path / "c.csv")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cutout.png: is a PNG/JPEG image" in err
    with pytest.warns(UserWarning, match="trained on fits images"):
        assert main([*args, "--allow-input-mismatch"]) == 0
    assert (tmp_path / "c.csv").is_file()


def test_check_input_kind_rules(tmp_path):
    fits_model = {"kind": "fits", "unit": "nanomaggy"}
    png_model = {"kind": "png", "unit": "8-bit colour / 255"}
    check_input_kind(["a.fits", "b.fits.gz"], fits_model, "m.pt")
    check_input_kind(["a.png", "b.jpg", "c.JPEG"], png_model, "m.pt")  # PNG and JPEG: one kind
    check_input_kind(["a.png", "b.fits"], {"kind": "unknown", "unit": ""}, "m.pt")
    with pytest.raises(InputError, match=r"^b\.fits: is a FITS image but m\.pt was trained on png"):
        check_input_kind(["a.png", "b.fits"], png_model, "m.pt")
    with pytest.raises(InputError, match=r"^b\.jpg: is a PNG/JPEG image .* on fits images"):
        check_input_kind(["a.fits", "b.jpg"], fits_model, "m.pt")


# ------------------------------------------------------------------- real-galaxy check


@pytest.fixture(scope="module")
def random_detector(tmp_path_factory) -> Path:
    """A random-weight clump detector (FITS-trained by its record) with 424 px tiles."""
    import torch

    from clumpdet.checkpoints import save_checkpoint
    from clumpdet.config import to_dict
    from clumpdet.data.preprocessing import Preprocessing
    from clumpdet.models.detector import DetectorConfig, build_detector

    torch.manual_seed(0)
    cfg = DetectorConfig(min_score=0.0)
    pre = Preprocessing(bands=("g", "r", "i"), stretch="none")
    model = build_detector(config=cfg, in_chans=3, image_mean=[0.0] * 3, image_std=[1.0] * 3)
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "model.pt",
        kind="detector",
        model=model.eval(),
        preprocessing=pre,
        model_config=to_dict(cfg),
        image_size=(424, 424),
        input={"kind": "fits", "unit": "nanomaggy"},
    )


def _fake_gz2(folder: Path, n: int = 5, size: int = 48) -> Path:
    rng = np.random.default_rng(3)
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        gid = 100000 + i
        img = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / "images" / f"{gid}.jpg")
        rows.append({"file": f"images/{gid}.jpg", "galaxy_id": gid, "spiral": i % 2})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    return folder


def test_clump_statistics():
    st = clump_statistics(np.array([0, 0, 3, 1]))
    assert st["n_galaxies"] == 4 and st["fraction_with_clump"] == 0.5
    assert st["clumps_per_galaxy"] == 1.0 and st["clumps_per_clumpy_galaxy"] == 2.0
    assert st["max_clumps"] == 3 and st["median_clumps_per_galaxy"] == 0.5
    assert np.isnan(clump_statistics(np.zeros(3))["clumps_per_clumpy_galaxy"])


def test_read_real_galaxies_checks_the_table(tmp_path):
    folder = _fake_gz2(tmp_path / "gz")
    gal = read_real_galaxies(folder)
    assert len(gal) == 5 and gal.spiral.tolist() == [False, True, False, True, False]
    assert gal.take([3, 1]).galaxy_ids.tolist() == [100003, 100001]
    df = pd.read_csv(folder / "labels.csv")
    df.drop(columns="spiral").to_csv(folder / "labels.csv", index=False)
    with pytest.raises(InputError, match=r"labels\.csv: missing column\(s\) spiral"):
        read_real_galaxies(folder)
    df.assign(spiral=[0, 1, 2, 0, 1]).to_csv(folder / "labels.csv", index=False)
    with pytest.raises(InputError, match=r"line 4: spiral 2 is not 0 or 1"):
        read_real_galaxies(folder)
    df.to_csv(folder / "labels.csv", index=False)
    (folder / "images" / "100002.jpg").unlink()
    with pytest.raises(InputError, match=r"100002\.jpg: image file not found \(1 of 5\)"):
        read_real_galaxies(folder)
    with pytest.raises(InputError, match="labels.csv: file not found"):
        read_real_galaxies(tmp_path / "nowhere")


def _check_summary(summary, out: Path, n: int) -> None:
    on_disk = json.loads((out / "real_check.json").read_text())
    assert on_disk == summary
    parts = summary["all"], summary["spiral"], summary["not_spiral"]
    assert parts[0]["n_galaxies"] == n == parts[1]["n_galaxies"] + parts[2]["n_galaxies"]
    table = pd.read_csv(out / "real_check_galaxies.csv")
    assert len(table) == n
    # the headline counts class 1 (clump) only; n_boxes and all_classes count both classes
    assert summary["counted_classes"] == ["clump"] and "odd clump" in summary["counting_rule"]
    assert (table["n_clumps"] == table["n_clump"]).all()
    assert (table["n_boxes"] == table["n_clump"] + table["n_odd_clump"]).all()
    boxes = pd.read_csv(out / "real_check_detections.csv")
    assert len(boxes) == table["n_boxes"].sum()
    per_galaxy = boxes.groupby("galaxy_id").size().reindex(table["galaxy_id"], fill_value=0)
    assert per_galaxy.tolist() == table["n_boxes"].tolist()
    clumps = boxes[boxes["label"] == "clump"].groupby("galaxy_id").size()
    assert clumps.reindex(table["galaxy_id"], fill_value=0).tolist() == table["n_clumps"].tolist()
    every = summary["all_classes"]["all"]
    assert every["fraction_with_clump"] == pytest.approx((table["n_boxes"] > 0).mean())
    assert (boxes["score"] >= summary["score_threshold"]).all()
    assert summary["all"]["fraction_with_clump"] == pytest.approx((table["n_clumps"] > 0).mean())
    assert summary["all"]["clumps_per_galaxy"] == pytest.approx(table["n_clumps"].mean())
    spiral = table[table["spiral"] == 1]["n_clumps"]
    expected = pytest.approx(spiral.mean()) if len(spiral) else None  # NaN is null in JSON
    assert summary["spiral"]["clumps_per_galaxy"] == expected
    assert summary["clump_scout"]["clumps_per_clumpy_galaxy"] == 2.31
    with Image.open(out / "overlays.png") as im:
        assert im.size[0] > 300 and im.size[1] > 150


def test_real_galaxy_check_plumbing_on_fake_jpegs(random_detector, tmp_path):
    folder = _fake_gz2(tmp_path / "gz")
    with pytest.raises(InputError, match=r"\.jpg: is a PNG/JPEG image .* trained on fits"):
        real_galaxy_check(checkpoint=random_detector, real=folder, out=tmp_path / "o")
    with pytest.warns(UserWarning, match="trained on fits images"):
        summary = real_galaxy_check(
            checkpoint=random_detector,
            real=folder,
            out=tmp_path / "out",
            n=4,
            score_threshold=0.0,
            n_overlays=3,
            allow_input_mismatch=True,
            command="python tools/real_galaxy_check.py ...",
        )
    _check_summary(summary, tmp_path / "out", 4)
    table = pd.read_csv(tmp_path / "out" / "real_check_galaxies.csv")
    assert table["n_odd_clump"].sum() > 0  # a random model at score 0 boxes both classes
    assert summary["score_threshold"] == 0.0 and summary["allow_input_mismatch"] is True
    assert summary["command"] == "python tools/real_galaxy_check.py ..."
    with pytest.raises(InputError, match=r"counted_classes \['star'\]"):
        real_galaxy_check(
            checkpoint=random_detector,
            real=folder,
            out=tmp_path / "o",
            counted_classes=["star"],
            allow_input_mismatch=True,
        )


@pytest.mark.skipif(REAL is None, reason="shared/data/gz2_sdss_galaxies is not present")
def test_real_galaxy_tool_on_a_handful_of_real_galaxies(random_detector, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("rgc", ROOT / "tools" / "real_galaxy_check.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = ["--checkpoint", str(random_detector), "--real", str(REAL), "--out", str(tmp_path)]
    assert tool.main([*args, "--n", "3"]) == 2  # a FITS-trained model on JPEGs: refused
    assert "is a PNG/JPEG image" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="trained on fits images"):
        assert tool.main([*args, "--n", "3", "--score", "0.05", "--allow-input-mismatch"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "real_check.json").read_text())
    _check_summary(summary, tmp_path, 3)
    assert printed.splitlines()[-1] == f"command: {summary['command']}"
    assert "--n 3 --score 0.05 --allow-input-mismatch" in summary["command"]
    assert summary["score_threshold"] == 0.05


def test_nucleus_rule_truth_counts_the_clump_on_the_nucleus(random_detector, tmp_path):
    from clumpdet.experiments.real_galaxies import nucleus_rule_truth

    yy, xx = np.mgrid[0:96, 0:96] + 0.5
    galaxy = 50.0 * np.exp(-((xx - 48.0) ** 2 + (yy - 48.0) ** 2) / (2 * 6.0**2))
    noise = np.random.default_rng(0).normal(0.0, 0.5, (3, 96, 96))
    write_image_fits(tmp_path / "g.fits", galaxy[None] + noise, bands=("g", "r", "i"))
    doc = {
        "images": [{"id": 1, "file_name": "g.fits", "width": 96, "height": 96}],
        "categories": [{"id": 1, "name": "clump"}, {"id": 2, "name": "odd_clump"}],
        "annotations": [  # xywh: one box centred on the nucleus, one 20 px off it, one odd
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [43, 43, 10, 10], "area": 100},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [63, 43, 10, 10], "area": 100},
            {"id": 3, "image_id": 1, "category_id": 2, "bbox": [43, 43, 10, 10], "area": 100},
        ],
    }
    (tmp_path / "annotations.json").write_text(json.dumps(doc))
    res = nucleus_rule_truth(
        checkpoint=random_detector,
        coco=tmp_path / "annotations.json",
        out=tmp_path / "o",
        fractions=(0.15, 3.0),
    )
    assert res["n_clumps"] == 2  # class 1 only
    assert res["dropped_fraction"] == {"0.15": 0.5, "3.0": 1.0}
    # nucleus distances in box sides: ~0 and 20 px / 10 px = 2, so their median is ~1
    assert res["distance_percentiles"]["1"] < 0.1
    assert res["distance_percentiles"]["50"] == pytest.approx(1.0, abs=0.1)
    assert json.loads((tmp_path / "o" / "nucleus_rule.json").read_text())["n_clumps"] == 2
