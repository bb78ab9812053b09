"""Real-image correctness: colour channel order, overlay orientation, input-kind refusal,
and the real-galaxy check (on the shared Galaxy Zoo 2 images when they are present)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clumpdet.data.fits import write_image_fits
from clumpdet.data.images import COLOUR_BANDS, read_image
from clumpdet.errors import InputError
from clumpdet.inference.overlay import colour_image, plot_overlay
from clumpdet.inference.run import check_input_kind, run_detection

S = 40  # image side, pixels

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
