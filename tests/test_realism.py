"""Realism statistics (clumpdet.evaluation.realism) on synthetic sets with a known difference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clumpdet.errors import InputError
from clumpdet.evaluation import realism


def _sersic_rgb(rng: np.random.Generator, *, n: float, re: float, size: int = 64) -> np.ndarray:
    """A noisy 8-bit colour image of one elliptical Sersic galaxy at the frame centre."""
    yy, xx = np.mgrid[:size, :size].astype(float)
    c = (size - 1) / 2 + rng.normal(0, 0.7, 2)
    q = rng.uniform(0.6, 1.0)
    pa = rng.uniform(0, np.pi)
    dx, dy = xx - c[0], yy - c[1]
    u = dx * np.cos(pa) + dy * np.sin(pa)
    v = (-dx * np.sin(pa) + dy * np.cos(pa)) / q
    r = np.hypot(u, v)
    b = 2 * n - 1 / 3
    prof = np.exp(-b * ((r / (re * rng.uniform(0.85, 1.15))) ** (1 / n) - 1))
    prof = prof / prof.max() * 200.0
    col = np.array([1.0, 0.85, 0.7])  # red > green > blue: a red galaxy
    img = 12.0 + prof[..., None] * col + rng.normal(0, 3.0, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _write_set(path, seed: int, *, n: float, re: float, count: int = 20):
    rng = np.random.default_rng(seed)
    (path / "images").mkdir(parents=True)
    for k in range(count):
        Image.fromarray(_sersic_rgb(rng, n=n, re=re)).save(path / "images" / f"{k:06d}.png")
    return path


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("realism")
    conc = _write_set(root / "conc_a", 1, n=4.0, re=3.0)
    conc_b = _write_set(root / "conc_b", 2, n=4.0, re=3.0)
    ext = _write_set(root / "ext", 3, n=0.7, re=9.0)
    return {
        name: realism.measure_set(name, realism.list_colour_images(p), size=None)
        for name, p in (("conc_a", conc), ("conc_b", conc_b), ("ext", ext))
    }


def test_concentrated_vs_extended_separate_on_c_and_size(sets):
    res = realism.compare_realism(sets["conc_a"], sets["ext"])
    assert res["n"]["sim"]["used"] >= 17 and res["n"]["real"]["used"] >= 17
    assert res["ks"]["concentration"] > 0.8
    assert res["ks"]["r50_frac"] > 0.8
    assert res["median"]["sim"]["concentration"] > res["median"]["real"]["concentration"] + 1.0


def test_identical_sets_have_small_ks(sets):
    res = realism.compare_realism(sets["conc_a"], sets["conc_b"])
    for stat in ("concentration", "gini", "r50_frac", "colour_gr"):
        assert res["ks"][stat] < 0.5, (stat, res["ks"][stat])
    # a red galaxy: blue < green < red -> positive g-r and r-i proxies
    assert res["median"]["sim"]["colour_gr"] > 0.1
    assert res["median"]["sim"]["colour_ri"] > 0.1


def test_run_realism_writes_json_and_grid(tmp_path, sets):
    sim = sets["conc_a"].files[0].parent.parent
    real = sets["ext"].files[0].parent.parent
    res = realism.run_realism(sim=sim, real=real, out=tmp_path / "out", n=6, size=48)
    rec = json.loads((tmp_path / "out" / "realism.json").read_text())
    assert set(rec["ks"]) == set(realism.STATISTICS)
    assert rec["n"]["sim"]["total"] == 6 and rec["max_ks"] == res["max_ks"]
    with Image.open(tmp_path / "out" / "sim_vs_real.png") as im:
        assert im.size[0] > im.size[1] > 100


def test_sim_dir_prefers_colour_images_and_bad_input(tmp_path):
    (tmp_path / "colour" / "images").mkdir(parents=True)
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "colour" / "images" / "000000.jpg")
    (tmp_path / "images" / "000000.fits").write_bytes(b"")
    assert [p.parent.parent.name for p in realism.list_colour_images(tmp_path)] == ["colour"]
    with pytest.raises(InputError, match="not a folder"):
        realism.list_colour_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no colour images"):
        realism.list_colour_images(tmp_path / "empty")


def test_real_side_cache_is_reused_and_checked(tmp_path, sets, monkeypatch):
    sim = sets["conc_a"].files[0].parent.parent
    real = sets["ext"].files[0].parent.parent
    cache = tmp_path / "cache.json"
    first = realism.run_realism(sim=sim, real=real, out=tmp_path / "a", n=5, size=48, cache=cache)
    rows = json.loads(cache.read_text())["rows"]
    assert len(rows) == 5  # the real side only

    calls = []
    original = realism.galaxy_statistics

    def counting(rgb, **kw):
        calls.append(1)
        return original(rgb, **kw)

    monkeypatch.setattr(realism, "galaxy_statistics", counting)
    again = realism.run_realism(sim=sim, real=real, out=tmp_path / "b", n=5, size=48, cache=cache)
    assert len(calls) == 5  # the simulated side is measured, the real side read from the cache
    assert again["ks"] == first["ks"]
    cache.write_text("[1, 2]")
    with pytest.raises(InputError, match="cache"):
        realism.run_realism(sim=sim, real=real, out=tmp_path / "c", n=5, size=48, cache=cache)
