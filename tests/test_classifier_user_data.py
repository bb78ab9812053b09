"""A new user's own labelled galaxies: generic tasks, data config keys, splits, FITS quirks."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from astropy.io import fits
from helpers import write_task_dir
from PIL import Image

from clumpdet.checkpoints import load_classifier, save_checkpoint
from clumpdet.cli import main
from clumpdet.config import load_config, parse_overrides
from clumpdet.data.containers import FileImages
from clumpdet.data.galaxy_dataset import ClassificationDataset, GalaxyAugmentation
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.data.readers import load_data, read_candels_csv, read_image_folder
from clumpdet.engine.classify import (
    ClassifierDataConfig,
    ClassifierTrainConfig,
    load_classification_data,
    make_classification_splits,
    split_rows,
    train_classifier,
)
from clumpdet.errors import ConfigError, InputError
from clumpdet.models.backbones import BackboneConfig, build_trunk
from clumpdet.tasks import get_task

TINY = [
    "model.backbone.name=resnet18",
    "model.backbone.out_indices=[4]",
    "optim.max_epochs=1",
    "optim.batch_size=8",
    "trainer.progress_bar=false",
]


def write_fits_folder(folder: Path, ids, *, suffixes=("h",), size=32, seed=0, signal=None):
    """One FITS stamp per galaxy and band, ``<id>_<suffix>.fits``; ``signal[i]`` adds a blob."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    planes = {}
    for k, gid in enumerate(ids):
        for b, suffix in enumerate(suffixes):
            img = rng.normal(0, 0.05, (size, size)).astype(np.float32)
            img += np.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / 20.0) * (1 + b)
            if signal is not None and signal[k]:
                img += np.exp(-((xx - 24) ** 2 + (yy - 8) ** 2) / 6.0)
            fits.PrimaryHDU(img.astype(">f4")).writeto(folder / f"{gid}_{suffix}.fits")
            planes[(gid, suffix)] = img
    return planes


def write_pngs(folder: Path, names, *, classes, size=32):
    folder.mkdir(parents=True, exist_ok=True)
    for name, c in zip(names, classes):
        arr = np.full((size, size, 3), 20, np.uint8)
        arr[..., int(c) % 3] = 200  # class k is bright in channel k
        Image.fromarray(arr).save(folder / f"{name}.png")


def test_binary_task_trains_from_a_folder_with_any_label_name(tmp_path, capsys):
    ids = [f"g{i:03d}" for i in range(24)]
    is_ring = np.arange(24) % 2
    write_fits_folder(tmp_path / "stamps", ids, signal=is_ring)
    pd.DataFrame({"objid": ids, "is_ring": is_ring}).to_csv(tmp_path / "rings.csv", index=False)
    cfg = {
        "data": {
            "source": "folder",
            "labels": str(tmp_path / "rings.csv"),
            "images_dir": str(tmp_path / "stamps"),
            "label_columns": ["is_ring"],
            "id_column": "objid",
            "split": [0.5, 0.25, 0.25],
        },
        "model": {"task": "binary"},
    }
    (tmp_path / "ring.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    sets = [s for o in TINY for s in ("--set", o)]
    argv = ["train-classifier", str(tmp_path / "ring.yaml"), "--out", str(run), *sets]
    assert main([*argv, "--set", "data.image_pattern={id}_h.fits"]) == 0
    assert "trained binary classifier" in capsys.readouterr().out
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1 and "auc" in metrics
    assert (run / "roc.png").is_file() and (run / "confusion.png").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"]["label_names"] == ["is_ring"]
    assert saved["data"]["image_pattern"] == "{id}_h.fits"
    bundle = load_classifier(run / "classifier.pt")
    assert bundle.label_names == ("is_ring",)
    assert bundle.input == {"kind": "fits", "unit": "unknown"}  # FITS stamps without BUNIT
    assert bundle.meta["model_config"]["label_names"] == ["is_ring"]
    assert bundle.model(torch.zeros(2, 1, 32, 32)).shape == (2, 1)


def test_multiclass_task_with_integer_labels(tmp_path):
    names = [f"gal{i}" for i in range(24)]
    morph = np.arange(24) % 3
    write_pngs(tmp_path / "png", names, classes=morph)
    pd.DataFrame({"file": names, "morph": morph}).to_csv(tmp_path / "m.csv", index=False)
    data = read_image_folder(
        tmp_path / "m.csv",
        tmp_path / "png",
        label_columns=["morph"],
        id_column="file",
        image_pattern="{id}.png",
        task="multiclass",
    )
    assert data.label_names == ("0", "1", "2") and data.labels.shape == (24, 3)
    assert data.class_index().tolist() == morph.tolist()
    cfg = load_config(
        ClassifierTrainConfig,
        None,
        [
            "data.source=folder",
            f"data.labels={tmp_path / 'm.csv'}",
            f"data.images_dir={tmp_path / 'png'}",
            "data.label_columns=[morph]",
            "data.id_column=file",
            "data.image_pattern={id}.png",
            "data.split=[0.5, 0.25, 0.25]",
            "model.task=multiclass",
            *TINY,
        ],
    )
    train_classifier(cfg, out=tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "test_metrics.json").read_text())
    assert sorted(metrics["per_class"]) == ["0", "1", "2"]
    bundle = load_classifier(tmp_path / "run" / "classifier.pt")
    assert bundle.label_names == ("0", "1", "2")
    assert bundle.input == {"kind": "png", "unit": "8-bit colour / 255"}
    # string classes are named by their (sorted) values
    words = np.array(["spiral", "ring", "smooth"])[morph]
    pd.DataFrame({"file": names, "morph": words}).to_csv(tmp_path / "w.csv", index=False)
    data = read_image_folder(
        tmp_path / "w.csv", tmp_path / "png", label_columns=["morph"], id_column="file",
        image_pattern="{id}.png", task="multiclass",
    )  # fmt: skip
    assert data.label_names == ("ring", "smooth", "spiral")
    assert data.labels[0].tolist() == [0, 0, 1]


def test_candels_per_band_stamps(tmp_path):
    ids = ["00012", "00345", "01000"]
    planes = write_fits_folder(tmp_path / "stamps", ids, suffixes=("h", "j", "v", "z"), size=16)
    fr = np.random.default_rng(0).uniform(0, 1, (3, 5))
    df = pd.DataFrame(fr, columns=["f_spheroid", "f_disk", "f_irr", "f_PS", "f_Unc"])
    df.insert(0, "ID", ids)
    df.to_csv(tmp_path / "candels.csv", index=False)
    data = read_candels_csv(
        tmp_path / "candels.csv",
        tmp_path / "stamps",
        image_pattern="{id}_{band}.fits",
        image_bands=("h", "j", "v", "z"),
    )
    assert data.bands == ("h", "j", "v", "z") and data.image(1).shape == (4, 16, 16)
    np.testing.assert_array_equal(data.image(1)[2], planes[("00345", "v")])
    # config-style, as from the CLI: no label_columns needed (found by name)
    same = load_data(
        source="candels",
        labels=tmp_path / "candels.csv",
        images_dir=tmp_path / "stamps",
        image_pattern="{id}_{band}.fits",
        image_bands=("h", "j", "v", "z"),
    )
    np.testing.assert_array_equal(same.labels, data.labels)
    cfg = load_config(
        ClassifierTrainConfig,
        None,
        [
            "data.source=candels",
            f"data.labels={tmp_path / 'candels.csv'}",
            f"data.images_dir={tmp_path / 'stamps'}",
            "data.image_pattern={id}_{band}.fits",
            "data.image_bands=[h, j, v, z]",
            "model.task=candels",
        ],
    )  # as `clumpdet train-classifier --set ...` builds it
    from_cli = load_classification_data(cfg.data, task=get_task("candels"), out=tmp_path)
    assert from_cli.bands == ("h", "j", "v", "z") and len(from_cli) == 3
    (tmp_path / "stamps" / "01000_z.fits").unlink()
    with pytest.raises(InputError, match=r"01000_z\.fits: image file not found \(1 of 3"):
        read_candels_csv(
            tmp_path / "candels.csv", tmp_path / "stamps", image_pattern="{id}_{band}.fits",
            image_bands=("h", "j", "v", "z"),
        )  # fmt: skip
    with pytest.warns(UserWarning, match="dropping 1 of 3 galaxies"):
        dropped = read_candels_csv(
            tmp_path / "candels.csv", tmp_path / "stamps", image_pattern="{id}_{band}.fits",
            image_bands=("h", "j", "v", "z"), missing="drop",
        )  # fmt: skip
    assert dropped.ids.tolist() == ids[:2]
    with pytest.raises(ConfigError, match=r"uses \{band\}: list the bands in data.image_bands"):
        read_candels_csv(tmp_path / "candels.csv", tmp_path / "stamps", image_pattern="{band}")


def test_missing_images_can_be_dropped_from_the_config(tmp_path):
    ids = [f"g{i}" for i in range(6)]
    write_fits_folder(tmp_path / "stamps", ids[:5], size=16)
    pd.DataFrame({"id": ids, "bar": [0, 1] * 3}).to_csv(tmp_path / "bars.csv", index=False)
    over = [
        "data.source=folder",
        f"data.labels={tmp_path / 'bars.csv'}",
        f"data.images_dir={tmp_path / 'stamps'}",
        "data.label_columns=[bar]",
        "data.image_pattern={id}_h.fits",
        "model.task=binary",
    ]
    cfg = load_config(ClassifierTrainConfig, None, over)
    with pytest.raises(InputError, match=r"g5_h\.fits: image file not found"):
        load_classification_data(cfg.data, task=get_task("binary"), out=tmp_path)
    cfg = load_config(ClassifierTrainConfig, None, [*over, "data.missing=drop"])
    with pytest.warns(UserWarning, match="dropping 1 of 6"):
        data = load_classification_data(cfg.data, task=get_task("binary"), out=tmp_path)
    assert data.ids.tolist() == ids[:5] and data.label_names == ("bar",)
    cfg.data.image_pattern = "{id}_j.fits"  # no such files: nothing is left to drop to
    with pytest.raises(InputError, match=r"stamps: none of the images listed in bars\.csv exist"):
        load_classification_data(cfg.data, task=get_task("binary"), out=tmp_path)
    with pytest.raises(ConfigError, match="'error', 'drop'"):
        load_config(ClassifierTrainConfig, None, [*over, "data.missing=skip"])


def test_split_seed_follows_trainer_seed_and_explicit_splits(tmp_path):
    folder = write_task_dir(tmp_path / "sim", "merger", n=40)
    cfg = load_config(ClassifierDataConfig, None, ["source=sim_dir", f"path={folder}"])
    task = get_task("merger")

    def test_ids(c, seed):
        s = make_classification_splits(c, task=task, out=tmp_path, seed=seed)
        return s.test.data.ids.tolist()

    assert test_ids(cfg, 0) == test_ids(cfg, 0)
    assert test_ids(cfg, 0) != test_ids(cfg, 1)
    base = ["source=sim_dir", f"path={folder}"]
    fixed = load_config(ClassifierDataConfig, None, [*base, "split_seed=3"])
    assert test_ids(fixed, 0) == test_ids(fixed, 1) == test_ids(cfg, 3)
    # an explicit list of test ids; the rest is split into train and val
    (tmp_path / "test_ids.txt").write_text("# held out\n3\n7\n11\n999\n")
    listed = load_config(ClassifierDataConfig, None, [*base, f"test_ids={tmp_path}/test_ids.txt"])
    data = load_classification_data(listed, task=task, out=tmp_path)
    with pytest.warns(UserWarning, match="1 of 4 test ids are not in the data"):
        tr, va, te = split_rows(data, listed, seed=0)
    assert data.ids[te].tolist() == [3, 7, 11] and len(tr) + len(va) == 37
    # an explicit split column
    df = pd.read_csv(folder / "labels.csv")
    df["part"] = ["train"] * 30 + ["val"] * 4 + ["TEST"] * 6
    df.to_csv(folder / "labels.csv", index=False)
    by_column = load_config(ClassifierDataConfig, None, [*base, "split_column=part"])
    s = make_classification_splits(by_column, task=task, out=tmp_path, seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (30, 4, 6)
    assert s.test.data.ids.tolist() == list(range(34, 40))
    df.loc[2, "part"] = "holdout"
    df.to_csv(folder / "labels.csv", index=False)
    with pytest.raises(InputError, match=r"line 4 \(id 2\): part is 'holdout', expected one of"):
        load_classification_data(by_column, task=task, out=tmp_path)
    with pytest.raises(ConfigError, match="one explicit split, not both"):
        load_config(ClassifierDataConfig, None, ["split_column=part", "test_ids=x.txt"])


def test_train_classifier_splits_with_the_trainer_seed(tmp_path, monkeypatch):
    import clumpdet.engine.classify as classify

    seen = []

    def stop(cfg, *, task, out, seed, return_counts):
        seen.append(seed)
        raise RuntimeError("stop here")

    monkeypatch.setattr(classify, "make_classification_splits", stop)
    cfg = load_config(ClassifierTrainConfig, None, ["trainer.seed=7"])
    with pytest.raises(RuntimeError, match="stop here"):
        train_classifier(cfg, out=tmp_path / "run")
    assert seen == [7]


def test_set_values_that_are_not_yaml_are_strings():
    assert parse_overrides(["data.image_pattern={id}_h.fits"]) == {
        "data": {"image_pattern": "{id}_h.fits"}
    }
    over = parse_overrides(["a={id}", "b={id}.fits", "c={x: 1}", "d=[1, 2]", "e=[a, b"])
    assert over == {"a": "{id}", "b": "{id}.fits", "c": {"x": 1}, "d": [1, 2], "e": "[a, b"}
    cfg = load_config(ClassifierTrainConfig, None, ["data.image_pattern={id}_h.fits"])
    assert cfg.data.image_pattern == "{id}_h.fits"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.task=nonexistent",
            "unknown task 'nonexistent'; registered tasks: binary, candels, four_class, "
            "gz_votes, merger, multiclass",
        ),
        ("model.task=binary", "task 'binary' has no simulator"),
        ("data.source=sdss", "unknown data source 'sdss'"),
    ],
)
def test_bad_task_or_source_is_one_line(override, message, tmp_path, capsys):
    rc = main(["train-classifier", "--out", str(tmp_path / "run"), "--set", override])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_freeze_bn_is_a_choice(tmp_path):
    scratch = build_trunk(BackboneConfig(name="resnet18"), in_chans=3)
    path = save_checkpoint(
        tmp_path / "bb.pt", kind="backbone", model=scratch, preprocessing=Preprocessing()
    )

    def batchnorms(trunk):
        return [m for m in trunk.modules() if isinstance(m, torch.nn.BatchNorm2d)]

    frozen = build_trunk(BackboneConfig(name=str(path)), in_chans=3)
    assert batchnorms(frozen) == []  # replaced by frozen BatchNorm (the default)
    free = build_trunk(BackboneConfig(name=str(path), freeze_bn=False), in_chans=3)
    bns = batchnorms(free)
    assert bns and all(p.requires_grad for m in bns for p in m.parameters())
    before = bns[0].running_mean.clone()
    free.train()(torch.rand(4, 3, 32, 32) * 5)
    assert not torch.equal(before, bns[0].running_mean)  # the statistics move


def _fits_with_bad_card(path: Path) -> None:
    hdu = fits.PrimaryHDU(np.ones((8, 8), np.float32))
    wcs = {"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CDELT1": -1e-5, "CDELT2": 1e-5}
    for k, v in wcs.items():
        hdu.header[k] = v
    hdu.writeto(path)
    raw = bytearray(path.read_bytes())
    end = raw.find(b"END" + b" " * 77)
    raw[end : end + 160] = b"BADVAL  = 12.5.3 / not a number".ljust(80) + b"END".ljust(80)
    path.write_bytes(bytes(raw))


def test_harmless_fits_header_warnings_are_said_once(tmp_path):
    paths = [tmp_path / f"{i}.fits" for i in range(3)]
    for p in paths:
        _fits_with_bad_card(p)
    images = FileImages(paths)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(3):
            assert images[i].shape == (1, 8, 8)
        images.take([2, 1])[0]  # views share the "already said" state
    assert len(caught) == 1, [str(w.message) for w in caught]
    msg = str(caught[0].message)
    assert "0.fits: astropy fixed a non-standard FITS header" in msg and "BADVAL" in msg


def test_cache_holds_decoded_images_at_the_crop_and_resize_scale():
    yy, xx = np.mgrid[0:48, 0:48]
    blob = np.exp(-((xx - 24.0) ** 2 + (yy - 24.0) ** 2) / 80.0).astype(np.float32)
    images = np.stack([blob[None] * (1 + i) for i in range(4)])
    from clumpdet.data.containers import ClassificationData

    data = ClassificationData(
        images=images,
        labels=np.eye(2)[[0, 1, 0, 1]][:, 1:],
        task="binary",
        label_names=("x",),
        bands=("r",),
        ids=np.arange(4),
    )
    plain = ClassificationDataset(data, center_crop=20)
    cached = ClassificationDataset(data, center_crop=20, cache=True)
    torch.testing.assert_close(cached[2][0], plain[2][0])  # same pixels, crop only
    assert cached._cache[2].shape == (1, 22, 22)  # the crop plus a small margin
    aug = GalaxyAugmentation(rotate=True, zoom=0.1)
    small = ClassificationDataset(data, center_crop=20, resize=10, cache=True, augmentation=aug)
    x = small.load_image(3)
    assert x.shape == (1, 10, 10) and small._cache[3].shape[1] < 20  # stored at the final scale
    ref = ClassificationDataset(data, center_crop=20, resize=10).load_image(3)
    # same crop at the same scale; only the edge pixels differ (the cached resize sees the margin)
    torch.testing.assert_close(x[:, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], atol=0.01, rtol=0.01)
    assert small[3][0].shape == (1, 10, 10)
    whole = ClassificationDataset(data, resize=12, cache=True)
    torch.testing.assert_close(whole[1][0], ClassificationDataset(data, resize=12)[1][0])
    assert whole._cache[1].shape == (1, 12, 12)  # a square image without crop: stored resized


def test_training_input_follows_the_data(tmp_path):
    from clumpdet.data.containers import ClassificationData
    from clumpdet.engine.classify import training_input

    ids = ["a", "b"]
    write_fits_folder(tmp_path / "stamps", ids)
    with fits.open(tmp_path / "stamps" / "a_h.fits", mode="update") as hdul:
        hdul[0].header["BUNIT"] = "nanomaggy"
    labels = np.zeros((2, 1), np.float32)

    def data(images, **kw):
        return ClassificationData(
            images=images, labels=labels, task="merger", label_names=("MergerLabel",),
            bands=("h",), ids=np.arange(2), **kw,
        )  # fmt: skip

    stamps = FileImages([tmp_path / "stamps" / f"{i}_h.fits" for i in ids])
    assert training_input(data(stamps)) == {"kind": "fits", "unit": "nanomaggy"}
    per_band = FileImages([(tmp_path / "stamps" / f"{i}_h.fits",) for i in ids])
    assert training_input(data(per_band)) == {"kind": "fits", "unit": "nanomaggy"}
    write_pngs(tmp_path / "png", ids, classes=[0, 1])
    jpeg = tmp_path / "a.jpg"
    Image.open(tmp_path / "png" / "a.png").save(jpeg)
    assert training_input(data(FileImages([jpeg, jpeg])))["kind"] == "jpeg"
    arrays = np.zeros((2, 1, 8, 8), np.float32)
    assert training_input(data(arrays)) == {"kind": "unknown", "unit": ""}
    simulated = {"kind": "fits", "unit": "uJy/arcsec2"}
    assert training_input(data(arrays, input=simulated)) == simulated
    sim = write_task_dir(tmp_path / "sim", "merger", n=4)
    (sim / "config.yaml").write_text("image:\n  bands: [g, r, i]\n_run_:\n  unit: uJy/arcsec2\n")
    read = load_data(source="sim_dir", path=sim, task="merger")
    assert training_input(read) == simulated
