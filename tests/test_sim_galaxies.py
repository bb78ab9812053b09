"""Tests of the galaxy-classification simulators (clumpdet.sim.galaxies)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from clumpdet.config import read_yaml
from clumpdet.errors import ConfigError, InputError
from clumpdet.sim import (
    FourClassSimConfig,
    MergerSimConfig,
    MorphologySimConfig,
    image_seed,
    load_galaxy_sim_config,
    simulate_galaxies,
    simulate_galaxy_scene,
    simulate_merger_scene,
)
from clumpdet.sim.galaxies.config import galaxy_config_fields
from clumpdet.tasks.gz_tree import ANSWER_NAMES, QUESTIONS, parent_index, question_slices

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "sim"
TASKS = ("mergers", "four_class", "morphology")
DEFAULTS = {
    "mergers": MergerSimConfig,
    "four_class": FourClassSimConfig,
    "morphology": MorphologySimConfig,
}


def _tree_errors(fractions: np.ndarray) -> float:
    """Largest |sum of a question's answers - its parent answer's fraction| (rows of 37)."""
    worst = 0.0
    sl = question_slices()
    for q in QUESTIONS:
        pi = parent_index(q.number)
        parent = 1.0 if pi is None else fractions[..., pi]
        worst = max(worst, float(np.max(np.abs(fractions[..., sl[q.number]].sum(-1) - parent))))
    return worst


def _first(task: str, pred, cfg=None, limit: int = 200):
    for i in range(limit):
        sc = simulate_galaxy_scene(task=task, config=cfg, seed=image_seed(0, i), return_model=True)
        if pred(sc.params):
            return sc
    raise AssertionError(f"no {task} scene matched")


# ------------------------------------------------------------------------------------ config


@pytest.mark.parametrize("task", TASKS)
def test_yaml_default_is_dataclass_default(task):
    path = CONFIGS / f"{task}.yaml"
    assert load_galaxy_sim_config(task, path) == DEFAULTS[task]()
    assert load_galaxy_sim_config(task) == DEFAULTS[task]()
    data = read_yaml(path)  # the file spells out every knob
    assert {f"{g}.{k}" for g, s in data.items() for k in s} == set(galaxy_config_fields(task))


@pytest.mark.parametrize(
    ("task", "override", "key"),
    [
        ("mergers", "pair.separation_min=9", "pair.separation_min"),
        ("mergers", "noise.sky_sigma.F356W=-0.1", "noise.sky_sigma"),
        ("mergers", "image.bands=[F814W, F356W, F200W]", "psf.fwhm"),
        ("four_class", "population.disk_sed.r=0", "population.disk_sed"),
        ("mergers", "scene.positive_fraction=1.5", "scene.positive_fraction"),
        ("mergers", "image.oversample=0", "image.oversample"),
        ("four_class", "population.hlr_min=-1", "population.hlr_min"),
        ("four_class", "scene.class_weights=[1, 1]", "scene.class_weights"),
        ("morphology", "votes.concentration=0", "votes.concentration"),
        ("morphology", "arms.amplitude_max=1.5", "arms.amplitude_max"),
        ("morphology", "pair.nonsense=1", "nonsense"),
    ],
)
def test_bad_config_names_the_key(task, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_galaxy_sim_config(task, None, [override])


def test_wrong_task_or_config_type_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="rings"):
        load_galaxy_sim_config("rings")
    with pytest.raises(ConfigError, match="MergerSimConfig"):
        simulate_galaxy_scene(task="four_class", config=MergerSimConfig(), seed=0)
    with pytest.raises(ConfigError, match="MergerSimConfig"):
        simulate_galaxies(
            task="morphology", n=1, seed=0, out=tmp_path / "x", config=MergerSimConfig()
        )
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------ scenes


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_pixels(task):
    a = simulate_galaxy_scene(task=task, seed=image_seed(4, 1))
    b = simulate_galaxy_scene(task=task, seed=image_seed(4, 1))
    c = simulate_galaxy_scene(task=task, seed=image_seed(4, 2))
    cfg = DEFAULTS[task]()
    assert a.image.dtype == np.float32
    assert a.image.shape == (3, cfg.image.height, cfg.image.width)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.label, b.label)
    assert a.params == b.params or str(a.params) == str(b.params)  # NaNs compare unequal
    assert not np.array_equal(a.image, c.image)


def test_merger_truth_two_distorted_galaxies_vs_undistorted_projections():
    merger = _first("mergers", lambda p: p["kind"] == "merger")
    proj = _first("mergers", lambda p: p["kind"] == "projection")
    iso = _first("mergers", lambda p: p["kind"] == "isolated")
    pm = merger.params
    assert merger.label.tolist() == [1.0] and pm["label"] == 1
    assert pm["n_galaxies"] == 2 and pm["distorted"] == 1 and pm["n_tails"] >= 1
    assert pm["g1_shear"] > 0 and pm["g2_shear"] > 0 and pm["g1_bend"] > 0
    pp = proj.params
    assert proj.label.tolist() == [0.0] and pp["n_galaxies"] == 2 and pp["distorted"] == 0
    assert pp["n_tails"] == 0 and pp["tail_flux"] == 0.0
    for k in ("shear", "bend", "lopsided"):
        assert pp[f"g1_{k}"] == 0.0 and pp[f"g2_{k}"] == 0.0
    cfg = MergerSimConfig()
    lo, hi = cfg.pair.separation_min, cfg.pair.separation_max
    for p in (pm, pp):
        assert lo <= p["separation_hlr"] <= hi
    assert iso.params["n_galaxies"] == 1 and np.isnan(iso.params["g2_flux"])


def test_merger_flux_and_pristine_noise():
    """Noiseless first-band flux equals the drawn flux; noise has the configured sigma."""
    cfg = load_galaxy_sim_config(
        "mergers", None, ["scene.positive_fraction=0", "scene.projection_fraction=0"]
    )
    sc = simulate_merger_scene(config=cfg, seed=3, return_model=True)
    flux = sc.model[0].sum() * cfg.image.pixel_scale**2  # uJy/arcsec2 -> uJy
    assert flux == pytest.approx(sc.params["g1_flux"], rel=0.03)
    resid = (sc.image - sc.model)[:, :12, :12]  # a corner: sky noise only
    for c, band in enumerate(cfg.image.bands):
        assert np.std(resid[c]) == pytest.approx(cfg.noise.sky_sigma[band], rel=0.2)
    pristine = load_galaxy_sim_config(
        "mergers", None, ["noise.enabled=false", "scene.positive_fraction=0"]
    )
    sp = simulate_merger_scene(config=pristine, seed=3, return_model=True)
    np.testing.assert_array_equal(sp.image, sp.model)


def test_four_class_labels_are_one_hot_and_cover_all_classes():
    seen = set()
    for i in range(16):
        sc = simulate_galaxy_scene(task="four_class", seed=image_seed(1, i))
        assert sc.label.shape == (4,) and sorted(sc.label.tolist()) == [0.0, 0.0, 0.0, 1.0]
        k = int(np.argmax(sc.label))
        seen.add(k)
        assert sc.params["class"] == ("normal", "ringed", "merger", "other")[k]
    assert seen == {0, 1, 2, 3}


def test_ring_adds_light_at_the_ring_radius():
    cfg = load_galaxy_sim_config("four_class", None, ["noise.enabled=false"])
    ringed = _first("four_class", lambda p: p["class"] == "ringed", cfg)
    p = ringed.params
    # light along the major axis at the ring radius exceeds an exponential disk's extrapolation
    h, w = ringed.model.shape[1:]
    img = ringed.model[1].astype(float)
    yy, xx = np.mgrid[:h, :w]
    scale = cfg.image.pixel_scale
    cx, cy = w / 2 + p["g1_x"] / scale, h / 2 + p["g1_y"] / scale
    r = np.hypot(xx + 0.5 - cx, yy + 0.5 - cy) * scale
    on = img[np.abs(r - p["ring_radius"]) < 0.5].mean()
    inside = img[np.abs(r - 0.7 * p["ring_radius"]) < 0.5].mean()
    assert p["ring_flux"] > 0 and on > 0.6 * inside


def test_morphology_votes_follow_the_tree():
    for i in range(12):
        sc = simulate_galaxy_scene(task="morphology", seed=image_seed(2, i))
        f, counts = sc.label.astype(np.float64), sc.extra["counts"]
        n = sc.params["n_volunteers"]
        assert f.shape == (37,) and counts.shape == (37,) and 30 <= n <= 50
        assert np.all((f >= 0) & (f <= 1))
        np.testing.assert_allclose(f, counts / n, atol=1e-6)
        assert _tree_errors(f) < 1e-6
        assert counts[0:3].sum() == n and counts[13:15].sum() == n
        cand = sc.extra["candels"]
        assert cand.shape == (5,) and cand.sum() == pytest.approx(1.0, abs=1e-6)


def test_morphology_votes_track_the_truth():
    """Edge-on disks get edge-on votes; smooth spheroids get 'smooth' votes."""
    edge = _first("morphology", lambda p: p["kind"] == "disk" and p["q"] < 0.15)
    assert edge.label[ANSWER_NAMES.index("Class2.1")] > edge.label[ANSWER_NAMES.index("Class2.2")]
    ell = _first("morphology", lambda p: p["kind"] == "elliptical" and p["odd"] == 0)
    assert ell.label[0] > 0.6  # Class1.1 smooth
    assert ell.extra["candels"][0] >= 0.5  # spheroid


# ------------------------------------------------------------------------------------ writer


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


@pytest.mark.parametrize("task", TASKS)
def test_writer_layout(tmp_path, task):
    cfg = load_galaxy_sim_config(task, None, ["image.width=32", "image.height=24"])
    out = simulate_galaxies(
        task=task, n=3, seed=5, out=tmp_path / task, config=cfg, workers=1, progress=False
    )
    images = np.load(out / "images.npy")
    assert images.shape == (3, 3, 24, 32) and images.dtype == np.float32
    head, rows = _read_csv(out / "labels.csv")
    params_head, params_rows = _read_csv(out / "params.csv")
    assert [r[0] for r in rows] == ["0", "1", "2"] and len(params_rows) == 3
    assert params_head[0] == "id" and "snr" in params_head
    if task == "mergers":
        assert head == ["id", "MergerLabel"] and {r[1] for r in rows} <= {"0", "1"}
    elif task == "four_class":
        assert head == ["id", "normal", "ringed", "merger", "other"]
        assert all(sorted(r[1:]) == ["0", "0", "0", "1"] for r in rows)
    else:
        assert head[1:38] == list(ANSWER_NAMES)
        assert head[38:75] == [f"count_{a}" for a in ANSWER_NAMES]
        candels = ["spheroid", "disk", "irregular", "point_source", "unclassifiable"]
        assert head[75:] == ["n_volunteers", *candels]
        vals = np.array([[float(v) for v in r[1:38]] for r in rows])
        assert _tree_errors(vals) < 1e-6
    # the first image equals the in-memory scene; the saved config round-trips
    first = simulate_galaxy_scene(task=task, config=cfg, seed=image_seed(5, 0))
    np.testing.assert_array_equal(images[0], first.image)
    assert load_galaxy_sim_config(task, out / "config.yaml") == cfg
    other = "mergers" if task != "mergers" else "four_class"
    with pytest.raises(ConfigError, match="written for task"):
        load_galaxy_sim_config(other, out / "config.yaml")
    with pytest.raises(InputError, match="not empty"):
        simulate_galaxies(task=task, n=1, seed=0, out=out, config=cfg, workers=1, progress=False)


def test_workers_do_not_change_output(tmp_path):
    cfg = load_galaxy_sim_config("mergers")
    kw = {"task": "mergers", "n": 4, "seed": 9, "config": cfg, "progress": False}
    a = simulate_galaxies(out=tmp_path / "a", workers=1, **kw)
    b = simulate_galaxies(out=tmp_path / "b", workers=2, **kw)
    np.testing.assert_array_equal(np.load(a / "images.npy"), np.load(b / "images.npy"))
    for name in ("labels.csv", "params.csv"):
        assert (a / name).read_text() == (b / name).read_text()
