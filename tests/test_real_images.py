"""Real-image correctness: colour channel order, overlay orientation, input-kind refusal,
and the real-galaxy check (on the shared Galaxy Zoo 2 images when they are present)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clumpdet.data.images import COLOUR_BANDS, read_image
from clumpdet.inference.overlay import colour_image

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
