"""Survey profiles, injection into real frames and the field simulator's artefacts (issue 13)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from clumpdet.sim import artefacts as art
from clumpdet.sim.fields.config import FieldArtefactConfig, FieldSimConfig
from clumpdet.sim.fields.scene import simulate_field_scene
from clumpdet.sim.profile import (
    load_profile,
    measure_profile,
    profile_to_field_config,
    save_profile,
)

FWHM_ARCSEC, SCALE = 0.9, 0.263


def _one_band_config(**noise: float) -> FieldSimConfig:
    c = FieldSimConfig()
    return replace(
        c,
        image=replace(c.image, bands=("r",), width=192, height=192),
        psf=replace(c.psf, fwhm_mean=FWHM_ARCSEC, fwhm_sd=0.0),
        stars=replace(c.stars, density=80.0, mag_min=17.0, mag_max=21.0),
        galaxies=replace(c.galaxies, density=20.0),
        noise=replace(c.noise, **noise),
        truth=replace(c.truth, masks=False),
    )


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A one-band simulated frame with known PSF and (correlated) noise, plus a sky level."""
    scene = simulate_field_scene(config=_one_band_config(correlation=0.25), seed=3)
    path = tmp_path_factory.mktemp("frame") / "frame.fits"
    hdr = scene.wcs.to_header()
    fits.PrimaryHDU(scene.image[0] + 5.0, header=hdr).writeto(path)
    return path, scene


def test_profile_recovers_psf_and_noise(frame: tuple[Path, object], tmp_path: Path) -> None:
    path, scene = frame
    prof = measure_profile(path)
    b = prof.bands[0]
    assert prof.pixel_scale_source == "wcs"
    assert prof.pixel_scale == pytest.approx(SCALE, rel=0.01)
    assert b.psf_fwhm_px == pytest.approx(FWHM_ARCSEC / SCALE, rel=0.10)
    assert b.noise_sigma == pytest.approx(scene.noise_sigma["r"], rel=0.10)
    assert b.noise_correlation == pytest.approx(0.25, abs=0.06)
    assert b.sky_level == pytest.approx(5.0, abs=0.05)
    # the YAML round trip and the config built from it
    p2 = load_profile(save_profile(prof, tmp_path / "profile.yaml"))
    assert p2.bands[0].psf_fwhm_px == pytest.approx(b.psf_fwhm_px, rel=1e-4)
    cfg = profile_to_field_config(p2, tile=64)
    assert cfg.image.bands == ("r",) and cfg.image.width == 64
    assert cfg.psf.fwhm_mean == pytest.approx(b.psf_fwhm_px * prof.pixel_scale, rel=1e-4)
    assert cfg.noise.correlation == pytest.approx(b.noise_correlation, abs=1e-4)
    # the simulated tiles have the frame's noise (sigma from the depth round trip)
    tile = simulate_field_scene(config=cfg, seed=0)
    assert tile.noise_sigma["r"] == pytest.approx(b.noise_sigma, rel=1e-3)


def test_profile_rejects_wrong_band_count(frame: tuple[Path, object]) -> None:
    from clumpdet.errors import InputError

    with pytest.raises(InputError, match="band"):
        measure_profile(frame[0], bands=["g", "r"])


def test_injection_truth(frame: tuple[Path, object]) -> None:
    from clumpdet.sim.inject import inject_scene, prepare_frame

    path, _ = frame
    prof = measure_profile(path)
    real = prepare_frame(path, prof, real_snr_min=20.0)
    assert len(real.real) > 3 and all(r["snr"] >= 20 for r in real.real)
    # the cut is the matched-filter S/N: a lower cut keeps a superset, each real truth object
    # carries it, and the injected objects' cut is the same number (simulate_matched)
    deeper = prepare_frame(path, prof, real_snr_min=5.0)
    assert len(deeper.real) > len(real.real) and min(r["snr"] for r in deeper.real) >= 5.0
    cfg = profile_to_field_config(prof, tile=96, artefacts=False)
    sc = inject_scene(config=cfg, seed=5, image_id=0, frame=real)
    assert sc.image.shape == (1, 96, 96)
    injected = [o for o in sc.objects if not o["real"]]
    mine = [o for o in sc.objects if o["real"]]
    assert injected and mine
    assert all(o["labelled"] and o["snr"] >= 20 for o in mine)
    assert all(0 <= o["x"] < 96 and 0 <= o["y"] < 96 for o in mine)
    # the tile is the real cut plus the injected light: flux adds up around a bright injection
    bright = max((o for o in injected if o["labelled"]), key=lambda o: o["snr"])
    sc2 = inject_scene(
        config=replace(
            cfg,
            stars=replace(cfg.stars, density=0.0),
            galaxies=replace(cfg.galaxies, density=0.0),
            pairs=replace(cfg.pairs, fraction=0.0),
        ),
        seed=5,
        image_id=0,
        frame=real,
    )
    assert [o for o in sc2.objects if not o["real"]] == []
    x, y = int(bright["x"]), int(bright["y"])
    cut = (slice(max(0, y - 3), y + 4), slice(max(0, x - 3), x + 4))
    assert sc.image[0][cut].sum() > sc2.image[0][cut].sum()


def test_matched_filter_snr_is_the_optimal_point_source_snr() -> None:
    import galsim

    from clumpdet.sim.inject import matched_filter_snr

    fwhm, beta, sigma = 2.4, 3.0, 2.0
    img = galsim.ImageD(64, 64, scale=1.0)
    star = galsim.Moffat(beta=beta, fwhm=fwhm, flux=500.0)
    # galsim's pixel centres are integers (1-based): (31, 41) is corner-origin (30.5, 40.5)
    star.drawImage(image=img, center=galsim.PositionD(31.0, 41.0), method="no_pixel")
    model = img.array
    optimal = np.sqrt((model**2).sum()) / sigma  # what the simulator calls snr
    got = matched_filter_snr(
        model[None], np.array([[30.5, 40.5], [5.0, 5.0]]), sigma=[sigma], fwhm_px=[fwhm],
        beta=[beta],
    )  # fmt: skip
    assert got[0] == pytest.approx(optimal, rel=0.02)
    assert got[1] == pytest.approx(0.0, abs=1e-6)
    # off the pixel centres too (the filter is centred on the given position)
    off = galsim.ImageD(64, 64, scale=1.0)
    star.drawImage(image=off, center=galsim.PositionD(31.5, 41.5), method="no_pixel")
    half = matched_filter_snr(
        off.array[None], np.array([[31.0, 41.0]]), sigma=[sigma], fwhm_px=[fwhm], beta=[beta]
    )
    assert half[0] == pytest.approx(optimal, rel=0.02)
    # two bands add in quadrature; a negative band does not count
    two = matched_filter_snr(
        np.stack([model, -model]), np.array([[30.5, 40.5]]), sigma=[sigma, sigma],
        fwhm_px=[fwhm, fwhm], beta=[beta, beta],
    )  # fmt: skip
    assert two[0] == pytest.approx(got[0], rel=1e-6)
    with pytest.raises(ValueError, match="one sigma"):
        matched_filter_snr(model[None], np.zeros((1, 2)), sigma=[1, 2], fwhm_px=[2], beta=[3])


def test_like_fraction_mixes_simulated_tiles(frame: tuple[Path, object], tmp_path: Path) -> None:
    from clumpdet.errors import ConfigError
    from clumpdet.sim.inject import inject_scene, prepare_frame, simulate_matched

    path, _ = frame
    prof = measure_profile(path)
    real = prepare_frame(path, prof)
    cfg = profile_to_field_config(prof, tile=64, artefacts=False)
    like = profile_to_field_config(prof, tile=64)
    kinds = []
    for seed in range(12):
        sc = inject_scene(config=cfg, seed=seed, frame=real, like_config=like, like_fraction=0.5)
        kinds.append(any(o["real"] for o in sc.objects))
        assert all("real" in o for o in sc.objects)
    assert 0 < sum(kinds) < len(kinds)  # some injected tiles (with real sources), some not
    all_like = inject_scene(config=cfg, seed=0, frame=real, like_config=like, like_fraction=1.0)
    assert not any(o["real"] for o in all_like.objects)
    with pytest.raises(ConfigError, match="like_config"):
        inject_scene(config=cfg, seed=0, frame=real, like_fraction=0.5)
    with pytest.raises(ConfigError, match="--inject-into"):
        simulate_matched(kind="fields", n=1, seed=0, out=tmp_path / "x", like=path,
                         like_fraction=0.5)  # fmt: skip
    with pytest.raises(ConfigError, match=r"not in \[0, 1\]"):
        simulate_matched(kind="fields", n=1, seed=0, out=tmp_path / "x", inject_into=path,
                         like_fraction=1.5)  # fmt: skip


def test_reference_depth_follows_the_finder_threshold(frame: tuple[Path, object]) -> None:
    from clumpdet.baselines.sources import SourceFinderConfig
    from clumpdet.sim.inject import reference_depth_snr

    prof = measure_profile(frame[0])
    cfg = profile_to_field_config(prof, tile=96, artefacts=False)
    sex = reference_depth_snr(cfg, n=6, seed=1)
    assert 3.0 < sex["snr"] < 20.0  # 1.5 sigma per pixel, 5 pixels: depth of a few sigma

    def share(sel) -> float:
        bins = [b for b in sex["bins"] if sel(b)]
        return sum(b["found"] for b in bins) / max(1, sum(b["n"] for b in bins))

    assert share(lambda b: b["snr_hi"] <= sex["snr"]) < 0.5
    assert share(lambda b: b["snr_lo"] >= 1.5 * sex["snr"]) > 0.5
    strict = SourceFinderConfig(thresh=6.0, background="none", reference_band="r")
    deep = reference_depth_snr(cfg, n=6, seed=1, finder=strict)
    assert deep["snr"] > 1.3 * sex["snr"]  # a higher detection threshold: a shallower catalogue


def test_label_snr_sets_one_cut_for_injected_and_real(
    frame: tuple[Path, object], tmp_path: Path
) -> None:
    import json

    import yaml

    from clumpdet.errors import ConfigError
    from clumpdet.sim.inject import simulate_matched

    path, _ = frame
    out = simulate_matched(
        kind="fields", n=3, seed=0, out=tmp_path / "inj", inject_into=path, tile=64,
        label_snr=9.0, workers=1, progress=False,
    )  # fmt: skip
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["truth"]["label_snr"] == pytest.approx(9.0)
    doc = json.loads((out / "annotations.json").read_text())
    assert doc["annotations"] and all(a["snr"] >= 9.0 for a in doc["annotations"])
    with pytest.raises(ConfigError, match="number or 'reference'"):
        simulate_matched(kind="fields", n=1, seed=0, out=tmp_path / "x", inject_into=path,
                         label_snr="deep")  # fmt: skip


def test_injection_completeness_rises_with_flux(frame: tuple[Path, object]) -> None:
    from clumpdet.sim.inject import injection_completeness, prepare_frame

    path, _ = frame
    prof = measure_profile(path)
    real = prepare_frame(path, prof)
    d = prof.bands[0].depth_5sigma
    rows = injection_completeness(real, mags=[d - 3.0, d + 2.0], n_per_mag=10, seed=0)
    assert rows[0]["fraction"] >= 0.9
    assert rows[1]["fraction"] <= 0.5


def test_artefacts_off_by_default_and_each_one() -> None:
    assert not art.any_enabled(FieldArtefactConfig())
    rng = np.random.default_rng(0)
    sigma = 1.0
    # cosmic rays: sharp, bright, few pixels
    plane = np.zeros((100, 100))
    hits = art.add_cosmic_rays(
        plane, rng, sigma=sigma, rate_per_mpix=500.0, length_px=(2.0, 4.0), peak_sigma=(50.0, 60.0)
    )
    assert len(hits) >= 1 and plane.max() >= 0.6 * 50 and 0 < (plane > 10).sum() <= 6 * len(hits)
    # saturation: clipped at the level, charge conserved along the column as a bleed trail
    plane = np.zeros((50, 9))
    plane[25, 4] = 100.0
    total = plane.sum()
    n_sat = art.saturate(plane, 10.0, bleed=True)
    assert plane.max() == pytest.approx(10.0) and n_sat == 10
    assert plane.sum() == pytest.approx(total)
    rows = np.flatnonzero(plane[:, 4])
    assert 25 in rows and np.all(np.diff(rows) == 1) and np.all(plane[rows, 4] == 10.0)
    assert plane[:, 3].sum() == 0
    # bad columns: a whole run of one column offset by bad_column_sigma
    plane = np.zeros((40, 1000))
    cols = art.add_bad_columns(plane, rng, sigma=2.0, rate_per_kpix=5.0, offset_sigma=10.0)
    assert cols
    for c in cols:
        seg = plane[c["y0"] : c["y1"], c["x"]]
        assert np.all(np.abs(seg) >= 20.0 - 1e-9)
    # gradient: a plane with the asked peak-to-peak
    plane = np.zeros((30, 40))
    art.add_gradient(plane, rng, amplitude=3.0)
    assert plane.max() - plane.min() == pytest.approx(3.0, rel=1e-6)
    # correlated noise: unit variance, the asked lag-1 correlation
    n = art.correlate_noise(rng.standard_normal((300, 300)), 0.4)
    assert n.std() == pytest.approx(1.0, rel=0.03)
    assert np.mean(n[:, 1:] * n[:, :-1]) == pytest.approx(0.4, abs=0.03)


def test_scene_artefacts_keep_truth_and_other_pixels() -> None:
    base = _one_band_config()
    base = replace(base, image=replace(base.image, width=96, height=96))
    a = simulate_field_scene(config=base, seed=2)
    on = replace(
        base,
        artefacts=FieldArtefactConfig(
            cosmic_rays_per_mpix=2000.0,
            bad_columns_per_kpix=20.0,
            gradient_sigma=5.0,
            saturation=0.5,
        ),
    )
    b = simulate_field_scene(config=on, seed=2)
    assert [o["x"] for o in a.objects] == [o["x"] for o in b.objects]
    assert not np.array_equal(a.image, b.image)
    assert b.image.max() <= 0.5 + 1e-6
    rec = b.artefacts["0"]
    assert rec["cosmic_rays"] and rec["bad_columns"] and rec["saturated_px"] > 0


def test_cli_like_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from clumpdet.cli import main

    assert (
        main(["simulate", "clumps", "--like", "x.fits", "--n", "1", "--out", str(tmp_path / "a")])
        != 0
    )
    assert "fields" in capsys.readouterr().err
    missing = tmp_path / "none.fits"
    assert (
        main(
            ["simulate", "fields", "--like", str(missing), "--n", "1", "--out", str(tmp_path / "b")]
        )
        != 0
    )
    assert "none.fits" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_cli_label_snr_and_like_fraction_errors_are_one_line(
    frame: tuple[Path, object], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from clumpdet.cli import main

    base = ["simulate", "fields", "--n", "1", "--tile", "64", "--workers", "1"]
    rc = main(
        [*base, "--inject-into", str(frame[0]), "--label-snr", "deep", "--out", str(tmp_path / "a")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "number or 'reference'" in err[0]
    rc = main(
        [*base, "--like", str(frame[0]), "--like-fraction", "0.3", "--out", str(tmp_path / "b")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--inject-into" in err[0]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
