"""Tests of the realistic host population (clumpdet.sim.hosts) and the colour writer
(clumpdet.sim.colour, ``DIR/colour/``)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clumpdet.sim import colour as col
from clumpdet.sim import image_seed, load_sim_config, simulate_clump_scene, simulate_clumps
from clumpdet.sim.clumps.config import HOST_TYPES, ClumpSimConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sim"

#: Every host carries labelled objects (the size-dependent probability saturates at 1).
ALL_CLUMPY = {"population": {"clumpy_r90_ref": 1e-3}}
#: No host carries labelled objects.
NONE_CLUMPY = {"population": {"clumpy_probability": {t: 0.0 for t in HOST_TYPES}}}


@pytest.fixture(scope="module")
def clumpy_scenes():
    cfg = load_sim_config(None, ALL_CLUMPY)
    return [simulate_clump_scene(config=cfg, seed=image_seed(3, i)) for i in range(24)]


def test_default_is_realistic_and_smooth_set_is_kept():
    assert ClumpSimConfig().population.model == "realistic"
    assert load_sim_config(CONFIGS / "clumps_smooth.yaml").population.model == "smooth"
    colour = load_sim_config(CONFIGS / "clumps_sdss_colour.yaml")
    assert colour.render.colour and colour.population == ClumpSimConfig().population


def test_truth_boxes_belong_to_labelled_objects_only(clumpy_scenes):
    kinds = {"clump": 1, "odd_clump": 2, "star": 2, "background_galaxy": 2}
    n_knots = n_neigh = 0
    for sc in clumpy_scenes:
        assert len(sc.boxes) == len(sc.objects) == len(sc.labels) >= 1
        for obj, box, lab in zip(sc.objects, sc.boxes, sc.labels):
            assert kinds[obj.kind] == obj.label == lab
            assert box[0] <= obj.x <= box[2] and box[1] <= obj.y <= box[3]
            assert 0 < obj.flux_ratio <= 0.2 and obj.snr > 0
        n_knots += sc.host.n_knots
        n_neigh += sc.host.n_neighbours + sc.host.n_stars
    # the texture and the field exist but carry no box
    assert n_knots > 100 and n_neigh > 50


def test_unclumpy_hosts_have_texture_and_neighbours_but_no_boxes():
    cfg = load_sim_config(None, NONE_CLUMPY)
    scenes = [simulate_clump_scene(config=cfg, seed=image_seed(4, i)) for i in range(8)]
    assert all(sc.is_empty and sc.boxes.shape == (0, 4) for sc in scenes)
    assert sum(sc.host.n_neighbours + sc.host.n_stars for sc in scenes) > 10
    assert any(sc.host.n_knots > 0 for sc in scenes)


def test_clumps_sit_on_the_disk_light_and_odd_does_not_separate_on_colour(clumpy_scenes):
    r = 1
    on_host, gr = [], {1: [], 2: []}
    for sc in clumpy_scenes:
        cv = sc.canvas
        ox, oy = cv.origin
        cube = cv.cube[r]
        sky = cv.sigma[r]
        for obj in sc.objects:
            gr[obj.label].append(obj.gr)
            # the host's light around the object (excluding the object itself is not needed:
            # the comparison is with the sky noise level, which a faint clump alone rarely beats
            # over a 3x3 median)
            x, y = int(obj.x) + ox, int(obj.y) + oy
            patch = cube[max(y - 6, 0) : y + 7, max(x - 6, 0) : x + 7]
            on_host.append(np.median(patch) > 0.5 * sky)
        hx, hy = cv.host_xy
        assert 0 < hx < cv.cube.shape[2] and 0 < hy < cv.cube.shape[1]
    assert np.mean(on_host) > 0.8
    c1, c2 = np.array(gr[1]), np.array(gr[2])
    lo, hi = np.percentile(c1, [5, 95])
    # a large share of class 2 lies inside the class-1 colour range
    assert np.mean((c2 >= lo) & (c2 <= hi)) > 0.2


def test_population_statistics_roughly_right():
    cfg = ClumpSimConfig()
    types, clumpy, snr = [], [], []
    for i in range(40):
        sc = simulate_clump_scene(config=cfg, seed=image_seed(11, i))
        types.append(sc.host.morphology)
        clumpy.append(not sc.is_empty)
        snr.extend(o.snr for o in sc.objects)
    assert len(set(types)) >= 4 and set(types) <= set(HOST_TYPES)
    assert 0.0 < np.mean(clumpy) <= 0.35  # Clump Scout ~0.12 (40 draws: +-0.05)
    cfg_all = load_sim_config(None, ALL_CLUMPY)
    for i in range(8):
        sc = simulate_clump_scene(config=cfg_all, seed=image_seed(12, i))
        snr.extend(o.snr for o in sc.objects)
    snr = np.array(snr)
    assert (snr < 10).mean() > 0.15 and (snr > 30).mean() > 0.1


def _sersic(n: float, re: float, size: int = 301) -> np.ndarray:
    """Noiseless circular Sersic image (pixels) centred at (size / 2, size / 2), seen through a
    Gaussian PSF of sigma 1.5 px (as the simulator measures the PSF-convolved host)."""
    from scipy.ndimage import gaussian_filter
    from scipy.special import gammaincinv

    b = gammaincinv(2 * n, 0.5)
    o = 5  # sub-pixels per pixel: the n = 4 cusp is integrated, not sampled
    yy, xx = (np.mgrid[0 : size * o, 0 : size * o] + 0.5) / o
    r = np.hypot(xx - size / 2, yy - size / 2)
    img = np.exp(-b * ((r / re) ** (1 / n) - 1)).reshape(size, o, size, o).mean(axis=(1, 3))
    return gaussian_filter(img, 1.5)


def test_petrosian_radii_as_sdss():
    from clumpdet.sim.hosts import petrosian_radii

    re = 12.0
    r50_e, r90_e = petrosian_radii(_sersic(1.0, re), 150.5, 150.5)
    r50_d, r90_d = petrosian_radii(_sersic(4.0, re), 150.5, 150.5)
    # exponential: the Petrosian aperture holds ~all the light, R50 ~ r_e and R90 ~ 2.3 r_e
    assert r50_e == pytest.approx(re, rel=0.05) and r90_e == pytest.approx(2.3 * re, rel=0.05)
    # de Vaucouleurs: the aperture misses the wings, so R90 is far below the true ~5.5 r_e
    assert 1.8 * re < r90_d < 2.8 * re and r50_d < 0.9 * re
    # concentration R90 / R50 separates the two (Strateva et al. 2001 split at 2.6)
    assert r90_e / r50_e < 2.5 < 2.8 < r90_d / r50_d


def test_host_r90_is_the_measured_petrosian_radius():
    cfg = load_sim_config(None, NONE_CLUMPY)
    for i in range(6):
        sc = simulate_clump_scene(config=cfg, seed=image_seed(21, i))
        h = sc.host
        if h.morphology not in ("spiral", "lenticular", "irregular"):
            continue
        # a disk's Petrosian R90 is about 2.3 R50 (less with a bulge, more with a wide PSF)
        assert 1.2 * h.hlr < h.r90 < 3.0 * h.hlr + 2 * sc.psf_fwhm, (h.morphology, h.r90, h.hlr)


def test_native_jpeg_then_resample_keeps_position_and_range():
    rng = np.random.default_rng(1)
    cube = rng.normal(0, 0.02, size=(3, 120, 120))
    cube[:, 58:62, 58:62] += 3.0
    kw = {"scales": {"g": 2.0, "r": 1.45, "i": 1.31}, "stretch": 0.8, "q": 8.0, "minimum": 0.0}
    native = col.native_jpeg(cube, quality=75, **kw)
    assert native.shape == (3, 120, 120) and 0 <= native.min() and native.max() <= 255
    assert native[:, 60, 60].min() > 100 and np.median(native) < 30
    # a frame reaching past the canvas is padded with sky noise, then fully inside
    frame = col.gz2_frame(cx=60, cy=60, r90_arcsec=8.0, pixel_scale=0.4, size=424, frame_r90=0.02)
    assert frame.x0 < 0
    big, moved = col.pad_to_frame(cube, frame, sigma=np.full(3, 0.02), rng=rng)
    assert big.shape[1] > 120 and moved.x0 >= 0 and moved.y0 >= 0
    assert moved.x0 + moved.size * moved.zoom <= big.shape[2]
    pic = col.resample(
        col.native_jpeg(big, quality=75, **kw), moved, fill_sigma=np.zeros(3), rng=rng
    )
    y, x = _centroid(np.clip(pic[1] - np.median(pic[1]), 0, None) ** 2)
    assert abs(x - 212) < 3 and abs(y - 212) < 3
    # the smoothing resampling kernel lowers the pixel noise
    flat = rng.normal(0, 1.0, size=(3, 200, 200))
    f1 = col.gz2_frame(cx=100, cy=100, r90_arcsec=19.8, pixel_scale=0.396, size=100, frame_r90=0.02)
    plain = col.resample(flat, f1, fill_sigma=np.zeros(3), rng=rng)
    smooth = col.resample(flat, f1, fill_sigma=np.zeros(3), rng=rng, smooth=0.8)
    assert smooth.std() < 0.5 * plain.std()


# ------------------------------------------------------------------------------ colour writer


def test_lupton_channel_order_red_is_i():
    z = np.zeros((8, 8))
    one = np.zeros((8, 8))
    one[4, 4] = 1.0
    scales = {"g": 1.0, "r": 1.0, "i": 1.0}
    kw = {"scales": scales, "stretch": 1.0, "q": 8.0, "minimum": 0.0}
    rgb_i = col.lupton_rgb({"g": z, "r": z, "i": one}, **kw)
    rgb_g = col.lupton_rgb({"g": one, "r": z, "i": z}, **kw)
    assert rgb_i.dtype == np.uint8 and rgb_i.shape == (8, 8, 3)
    assert rgb_i[4, 4, 0] > 0 and rgb_i[4, 4, 1] == rgb_i[4, 4, 2] == 0
    assert rgb_g[4, 4, 2] > 0 and rgb_g[4, 4, 0] == rgb_g[4, 4, 1] == 0
    assert col.RGB_BANDS == ("i", "r", "g")


def _centroid(a: np.ndarray) -> tuple[float, float]:
    """(row, column) of the light-weighted centre of pixel centres."""
    rows, cols = np.mgrid[0 : a.shape[0], 0 : a.shape[1]] + 0.5
    return float((a * rows).sum() / a.sum()), float((a * cols).sum() / a.sum())


def test_gz2_framing_scales_with_r90():
    small = col.gz2_frame(cx=100, cy=80, r90_arcsec=5.0, pixel_scale=0.4, size=424, frame_r90=0.02)
    big = col.gz2_frame(cx=100, cy=80, r90_arcsec=10.0, pixel_scale=0.4, size=424, frame_r90=0.02)
    assert small.zoom == pytest.approx(0.25) and big.zoom == pytest.approx(0.5)
    for f in (small, big):  # the host centre is the frame centre
        np.testing.assert_allclose(f.to_colour(100.0, 80.0), (212.0, 212.0))
    # a box of fixed canvas size is twice as large in the frame of the smaller galaxy
    b = np.array([[98.0, 78.0, 102.0, 82.0]])
    assert np.ptp(small.box(b)[0, ::2]) == pytest.approx(2 * np.ptp(big.box(b)[0, ::2]))
    # the resampled cube keeps a source's surface brightness and position
    cube = np.zeros((3, 160, 200))
    cube[:, 79:82, 99:102] = 1.0
    out = col.resample(cube, big, fill_sigma=np.zeros(3), rng=np.random.default_rng(0))
    assert out.shape == (3, 424, 424)
    y, x = _centroid(out[1])
    assert abs(x - 212) <= 1 and abs(y - 212) <= 1 and out[1].max() == pytest.approx(1.0)
    # orientation: a source above the centre in the FITS frame (larger y) is in a picture row
    # above the centre (smaller row index), and box corners follow
    cube[:] = 0.0
    cube[:, 99:102, 99:102] = 1.0  # y ~ 100, 20 px (40 colour px) above the centre
    out = col.resample(cube, big, fill_sigma=np.zeros(3), rng=np.random.default_rng(0))
    y, x = _centroid(out[1])
    assert abs(y - (212 - 40)) <= 1 and abs(x - 212) <= 1
    u, v = big.to_colour(100.5, 100.5)
    assert abs(v - y) <= 2 and abs(u - x) <= 2
    bb = big.box(np.array([[99.0, 99.0, 102.0, 102.0]]))[0]
    assert bb[0] <= x <= bb[2] and bb[1] <= y <= bb[3]


def test_jpeg_is_lossy_with_the_gz2_quality_tables():
    rng = np.random.default_rng(0)
    rgb = np.clip(rng.normal(60, 20, size=(64, 64, 3)), 0, 255).astype(np.uint8)
    data = col.encode_jpeg(rgb, quality=75)
    im = Image.open(io.BytesIO(data))
    assert im.format == "JPEG" and im.mode == "RGB"
    back = np.asarray(im)
    assert back.dtype == np.uint8 and not np.array_equal(back, rgb)  # compression present
    assert list(im.quantization[0])[:4] == [8, 6, 5, 8]  # the quality-75 luma table


def test_colour_set_contract(tmp_path):
    cfg = load_sim_config(CONFIGS / "clumps_sdss_colour.yaml", ALL_CLUMPY)
    out = simulate_clumps(n=3, seed=5, out=tmp_path / "s", config=cfg, workers=1, progress=False)
    fits_doc = json.loads((out / "annotations.json").read_text())
    doc = json.loads((out / "colour" / "annotations.json").read_text())
    assert [i["id"] for i in doc["images"]] == [i["id"] for i in fits_doc["images"]]
    assert doc["info"]["rendering"]["channels"] == {"red": "i", "green": "r", "blue": "g"}
    assert doc["info"]["rendering"]["quality"] == 75
    assert 0 < len(doc["annotations"]) <= len(fits_doc["annotations"])
    for img in doc["images"]:
        path = out / "colour" / img["file_name"]
        assert path.suffix == ".jpg" and img["bands"] == ["i", "r", "g"]
        with Image.open(path) as im:
            assert im.format == "JPEG" and im.size == (424, 424) and im.mode == "RGB"
            a = np.asarray(im)
        assert a.dtype == np.uint8 and a.max() > 100 and a.std() > 1
        # the host sits at the centre of its GZ2 frame: the centre is brighter than the border
        assert a[180:244, 180:244].mean() > a[:40].mean() + 5
    for a in doc["annotations"]:
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 424 and y + h <= 424 and w > 0 and h > 0
        assert x <= a["centre"][0] <= x + w and y <= a["centre"][1] <= y + h
        assert a["category_id"] in (1, 2) and a["snr"] > 0 and a["flux_ratio"] > 0
    with open(out / "colour" / "labels.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["local_ids", "label", "x1", "y1", "x2", "y2"]
    assert len(rows) - 1 == len(doc["annotations"])
    # the colour set does not change the FITS set
    plain = simulate_clumps(
        n=3,
        seed=5,
        out=tmp_path / "p",
        config=load_sim_config(None, ALL_CLUMPY),
        workers=1,
        progress=False,
    )
    assert (
        json.loads((plain / "annotations.json").read_text())["annotations"]
        == (fits_doc["annotations"])
    )
    assert not (plain / "colour").exists()
