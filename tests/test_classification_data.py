"""Galaxy-classification readers, ClassificationData, the Dataset, augmentation and splits.

Every file is written here, small, in the exact layout its source publishes: DeepMerge HLSP
(Ciprijanovic et al. 2020), Galaxy Zoo Kaggle and GZ2 (Willett et al. 2013; Hart et al. 2016),
the four-class set, CANDELS (Huertas-Company et al. 2015).
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits
from PIL import Image

from clumpdet.data.containers import (
    ArrayImages,
    ClassificationData,
    MappedArray,
    is_memory_mapped,
)
from clumpdet.data.galaxy_dataset import ClassificationDataset, GalaxyAugmentation
from clumpdet.data.preprocessing import Preprocessing
from clumpdet.data.readers import (
    load_data,
    read_candels_csv,
    read_deepmerge_fits,
    read_deepmerge_npy,
    read_four_class_npz,
    read_gz2,
    read_gz_kaggle,
    read_image_folder,
)
from clumpdet.data.splits import stratified_split
from clumpdet.errors import ConfigError, InputError
from clumpdet.tasks import gz_tree

# ------------------------------------------------------------------------------ writers


def write_deepmerge_fits(
    path: Path, *, n: int = 6, bands: int = 3, size: int = 75, labels=None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """HLSP layout: primary (N, C, 75, 75) big-endian float64 + BINTABLE 'MergerLabel'."""
    rng = np.random.default_rng(seed)
    images = rng.normal(1.0, 0.5, (n, bands, size, size)).astype(">f8")
    if labels is None:
        labels = np.arange(n) % 2
    col = fits.Column(name="MergerLabel", format="K", array=np.asarray(labels))
    fits.HDUList(
        [fits.PrimaryHDU(images), fits.BinTableHDU.from_columns([col], name="MergerLabel")]
    ).writeto(path)
    return images, np.asarray(labels)


def gz_fractions(n: int, seed: int = 0) -> np.ndarray:
    """Tree-consistent cumulative vote fractions (N, 37)."""
    rng = np.random.default_rng(seed)
    return gz_tree.normalise(rng.uniform(0.05, 1.0, (n, 37)))


def write_jpegs(folder: Path, names, *, size: int = 12, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        arr = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{name}.jpg", quality=95)


def write_kaggle(root: Path, n: int = 4, *, fractions=None) -> tuple[Path, Path, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    ids = np.arange(100008, 100008 + n)
    fr = gz_fractions(n) if fractions is None else fractions
    df = pd.DataFrame(fr, columns=gz_tree.ANSWER_NAMES)
    df.insert(0, "GalaxyID", ids)
    csv = root / "training_solutions_rev1.csv"
    df.to_csv(csv, index=False)
    write_jpegs(root / "images_training_rev1", ids)
    return csv, root / "images_training_rev1", fr


def write_gz2(root: Path, n: int = 4) -> tuple[Path, Path, Path, np.ndarray, np.ndarray]:
    """gz2_hart16.csv (per-question debiased fractions + counts), mapping, JPEGs."""
    cum = gz_fractions(n, seed=5)
    per_q = gz_tree.per_question_fractions(cum)
    counts = np.round(per_q * 40)
    objids = np.arange(587722981741363200, 587722981741363200 + n, dtype=np.int64)
    data = {"dr7objid": objids, "ra": np.linspace(150, 151, n), "total_votes": 200}
    for j, stem in enumerate(gz_tree.GZ2_COLUMNS):
        data[f"{stem}_count"] = counts[:, j].astype(int)
        data[f"{stem}_fraction"] = per_q[:, j]
        data[f"{stem}_debiased"] = per_q[:, j]
        data[f"{stem}_flag"] = 0
    hart = root / "gz2_hart16.csv"
    pd.DataFrame(data).to_csv(hart, index=False)
    assets = np.arange(10, 10 + n)
    mapping = root / "gz2_filename_mapping.csv"
    pd.DataFrame(
        {
            "objid": [*objids.tolist(), 587722981741399999],
            "sample": "original",
            "asset_id": [*assets.tolist(), 999],
        }
    ).to_csv(mapping, index=False)
    write_jpegs(root / "images", assets)
    return hart, mapping, root / "images", cum, counts


# ------------------------------------------------------------------------------ DeepMerge


def test_read_deepmerge_fits_is_memory_mapped_and_exact(tmp_path):
    path = tmp_path / "hlsp_deepmerge_pristine.fits"
    images, labels = write_deepmerge_fits(path)
    data = read_deepmerge_fits(path)
    assert data.task == "merger" and len(data) == 6
    assert data.bands == ("F814W", "F356W", "F160W")
    assert data.labels.dtype == np.float32 and data.labels.shape == (6, 1)
    np.testing.assert_array_equal(data.labels[:, 0], labels)
    assert isinstance(data.images, MappedArray)
    assert is_memory_mapped(data.images.array)  # not loaded into RAM
    img = data.image(4)
    assert img.dtype == np.float32 and img.dtype.isnative and img.shape == (3, 75, 75)
    np.testing.assert_allclose(img, images[4].astype(np.float32))
    # picklable without pixels (DataLoader workers), and still reads the same rows
    blob = pickle.dumps(data.images)
    assert len(blob) < 2000
    np.testing.assert_array_equal(pickle.loads(blob)[4], img)
    # a subset stays lazy and indexes the right rows
    sub = data.subset([5, 1])
    assert isinstance(sub.images, MappedArray) and sub.labels[:, 0].tolist() == [1, 1]
    np.testing.assert_array_equal(sub.image(1), images[1].astype(np.float32))


def test_read_deepmerge_fits_two_filter_variant(tmp_path):
    path = tmp_path / "hst_only.fits"
    write_deepmerge_fits(path, n=4, bands=2)
    data = read_deepmerge_fits(path)
    assert data.bands == ("F814W", "F160W") and data.image(0).shape == (2, 75, 75)


@pytest.mark.parametrize(
    ("labels", "n", "match"),
    [
        (np.zeros(11), 12, "12 images but 11 labels"),
        (np.array([0, 1, np.nan, 0]), 4, r"row 2: label merger is nan"),
        (np.array([0, 1, 2, 0]), 4, r"row 2: merger label is 2, expected 0 or 1"),
    ],
)
def test_read_deepmerge_fits_bad_labels(tmp_path, labels, n, match):
    path = tmp_path / "bad.fits"
    rng = np.random.default_rng(0)
    col = fits.Column(name="MergerLabel", format="D", array=labels)
    fits.HDUList(
        [
            fits.PrimaryHDU(rng.normal(size=(n, 3, 8, 8))),
            fits.BinTableHDU.from_columns([col], name="MergerLabel"),
        ]
    ).writeto(path)
    with pytest.raises(InputError, match=match) as exc:
        read_deepmerge_fits(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_read_deepmerge_fits_structure_errors(tmp_path):
    no_table = tmp_path / "no_table.fits"
    fits.PrimaryHDU(np.zeros((2, 3, 8, 8))).writeto(no_table)
    with pytest.raises(InputError, match="no HDU named 'MergerLabel'"):
        read_deepmerge_fits(no_table)
    flat = tmp_path / "flat.fits"
    fits.PrimaryHDU(np.zeros((8, 8))).writeto(flat)
    with pytest.raises(InputError, match=r"\(N, C, H, W\)"):
        read_deepmerge_fits(flat)
    with pytest.raises(InputError, match="not found"):
        read_deepmerge_fits(tmp_path / "absent.fits")


def test_read_deepmerge_npy_channels_first_and_last(tmp_path):
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(5, 3, 20, 20))
    labels = np.array([0, 1, 1, 0, 1])
    np.save(tmp_path / "x_first.npy", cube)
    np.save(tmp_path / "x_last.npy", np.moveaxis(cube, 1, -1))
    np.save(tmp_path / "y.npy", labels)
    first = read_deepmerge_npy(tmp_path / "x_first.npy", tmp_path / "y.npy")
    last = read_deepmerge_npy(tmp_path / "x_last.npy", tmp_path / "y.npy")
    for data in (first, last):
        assert is_memory_mapped(data.images.array)
        assert data.images.shape == (5, 3, 20, 20)
        np.testing.assert_allclose(data.image(3), cube[3].astype(np.float32))
        np.testing.assert_array_equal(data.labels[:, 0], labels)
    np.save(tmp_path / "y_short.npy", labels[:4])
    with pytest.raises(InputError, match="5 images but 4 labels"):
        read_deepmerge_npy(tmp_path / "x_first.npy", tmp_path / "y_short.npy")
    np.save(tmp_path / "y_nan.npy", np.array([0, 1, np.nan, 0, 1]))
    with pytest.raises(InputError, match="row 2"):
        read_deepmerge_npy(tmp_path / "x_first.npy", tmp_path / "y_nan.npy")


# ------------------------------------------------------------------------------ Galaxy Zoo


def test_read_gz_kaggle(tmp_path):
    csv, images_dir, fr = write_kaggle(tmp_path)
    data = read_gz_kaggle(csv, images_dir)
    assert data.task == "gz_votes" and data.label_names == gz_tree.ANSWER_NAMES
    assert data.ids.dtype == np.int64 and data.ids[0] == 100008
    np.testing.assert_allclose(data.labels, fr, atol=1e-6)
    assert data.bands == ("B", "G", "R")
    img = data.image(2)
    assert img.shape == (3, 12, 12) and img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0
    expected = np.asarray(Image.open(images_dir / "100010.jpg"), np.float32)
    np.testing.assert_allclose(img, expected[..., ::-1].transpose(2, 0, 1) / 255.0)


def test_read_gz_kaggle_missing_images(tmp_path):
    csv, images_dir, _ = write_kaggle(tmp_path, n=5)
    (images_dir / "100009.jpg").unlink()
    (images_dir / "100011.jpg").unlink()
    with pytest.raises(InputError, match=r"not found \(2 of 5 images") as exc:
        read_gz_kaggle(csv, images_dir)
    assert "100009.jpg" in str(exc.value)
    with pytest.warns(UserWarning, match="dropping 2 of 5"):
        data = read_gz_kaggle(csv, images_dir, missing="drop")
    assert data.ids.tolist() == [100008, 100010, 100012]


def test_read_gz_kaggle_nan_and_inconsistent_fractions(tmp_path):
    fr = gz_fractions(4)
    fr[2, gz_tree.ANSWER_NAMES.index("Class5.3")] = np.nan
    csv, images_dir, _ = write_kaggle(tmp_path / "nan", fractions=fr)
    with pytest.raises(InputError, match=r"line 4 \(GalaxyID 100010\): label Class5.3 is nan"):
        read_gz_kaggle(csv, images_dir)

    fr = gz_fractions(4)
    fr[1, gz_tree.ANSWER_NAMES.index("Class7.2")] += 0.3  # Q7 no longer sums to Class1.1
    csv, images_dir, _ = write_kaggle(tmp_path / "tree", fractions=fr)
    with pytest.raises(InputError, match=r"line 3 \(GalaxyID 100009\).*question 7") as exc:
        read_gz_kaggle(csv, images_dir)
    assert "Class1.1" in str(exc.value) and "tree" in str(exc.value)
    assert len(read_gz_kaggle(csv, images_dir, tol=None)) == 4  # check can be switched off


def test_read_gz2_maps_columns_and_converts_to_cumulative(tmp_path):
    hart, mapping, images_dir, cum, counts = write_gz2(tmp_path)
    data = read_gz2(hart, mapping, images_dir)
    assert data.task == "gz_votes" and len(data) == 4
    np.testing.assert_allclose(data.labels, cum, atol=1e-5)
    np.testing.assert_array_equal(data.counts, counts)
    assert data.ids.dtype == np.int64 and data.ids[0] == 587722981741363200
    assert isinstance(data.images.paths[1], Path) and data.images.paths[1].name == "11.jpg"
    assert data.image(0).shape == (3, 12, 12)


def test_read_gz2_answer_columns_land_in_the_right_kaggle_columns(tmp_path):
    """Independent of GZ2_COLUMNS: one odd, dust-lane, 'more than four arms' spiral."""
    cols = {}
    hand = {  # GZ2 column -> per-question debiased fraction
        "t01_smooth_or_features_a02_features_or_disk": 1.0,
        "t02_edgeon_a05_no": 1.0,
        "t04_spiral_a08_spiral": 1.0,
        "t03_bar_a07_no_bar": 1.0,
        "t05_bulge_prominence_a11_just_noticeable": 1.0,
        "t06_odd_a14_yes": 1.0,
        "t08_odd_feature_a38_dust_lane": 0.6,
        "t08_odd_feature_a24_merger": 0.4,
        "t10_arms_winding_a28_tight": 1.0,
        "t11_arms_number_a36_more_than_4": 1.0,
    }
    for stem in gz_tree.GZ2_COLUMNS:
        cols[f"{stem}_debiased"] = [hand.get(stem, 0.0)]
    cols = dict(reversed(list(cols.items())))  # column order must not matter
    pd.DataFrame({"dr7objid": [7], **cols}).to_csv(tmp_path / "h.csv", index=False)
    pd.DataFrame({"objid": [7], "sample": ["original"], "asset_id": [3]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    write_jpegs(tmp_path / "img", [3])
    data = read_gz2(tmp_path / "h.csv", tmp_path / "m.csv", tmp_path / "img")
    got = dict(zip(gz_tree.ANSWER_NAMES, data.labels[0].tolist()))
    assert got["Class8.7"] == pytest.approx(0.6) and got["Class8.6"] == pytest.approx(0.4)
    assert got["Class11.5"] == pytest.approx(1.0) and got["Class10.1"] == pytest.approx(1.0)
    assert got["Class5.2"] == pytest.approx(1.0) and got["Class6.1"] == pytest.approx(1.0)
    assert got["Class7.1"] == 0.0 and got["Class9.1"] == 0.0
    assert data.counts is None  # no *_count columns in this file


def test_read_gz2_bad_inputs(tmp_path):
    hart, mapping, images_dir, _, _ = write_gz2(tmp_path)
    df = pd.read_csv(hart)
    df.loc[1, "t03_bar_a06_bar_debiased"] = 0.9  # t03 now sums to ~1.9
    df.to_csv(tmp_path / "tree.csv", index=False)
    with pytest.raises(InputError, match=r"line 3 \(dr7objid \d+\).*question 3 \(bar\)"):
        read_gz2(tmp_path / "tree.csv", mapping, images_dir)
    df = pd.read_csv(hart)
    df.loc[0, "t01_smooth_or_features_a01_smooth_debiased"] = np.nan
    df.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(InputError, match=r"line 2 .*t01_smooth_or_features_a01_smooth_debiased"):
        read_gz2(tmp_path / "nan.csv", mapping, images_dir)
    (images_dir / "12.jpg").unlink()
    with pytest.raises(InputError, match=r"12\.jpg: image file not found \(1 of 4"):
        read_gz2(hart, mapping, images_dir)
    pd.read_csv(mapping).iloc[1:].to_csv(tmp_path / "short_map.csv", index=False)
    with pytest.warns(UserWarning) as record:
        data = read_gz2(hart, tmp_path / "short_map.csv", images_dir, missing="drop")
    text = " | ".join(str(w.message) for w in record)
    assert "1 of 4 galaxies have no asset_id" in text and "dropping 1 of 3" in text
    assert len(data) == 2 and 587722981741363200 not in data.ids


# ------------------------------------------------------------------------------ four-class


def test_read_four_class_npz(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 128, 128, 3), dtype=np.uint8)
    labels = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0, 2]]
    np.savez(tmp_path / "four.npz", images=images, labels=labels)
    data = read_four_class_npz(tmp_path / "four.npz")
    assert data.task == "four_class" and data.label_names == ("normal", "ringed", "merger", "other")
    img = data.image(5)
    assert img.shape == (3, 128, 128)
    np.testing.assert_allclose(img, images[5].transpose(2, 0, 1) / 255.0, atol=1e-6)
    np.testing.assert_array_equal(data.class_index(), [0, 1, 2, 3, 0, 2])

    np.savez(tmp_path / "xy.npz", X=images[:2], y=np.array([3, 1]))  # alternative keys, indices
    assert read_four_class_npz(tmp_path / "xy.npz").labels.argmax(1).tolist() == [3, 1]

    bad = labels.copy()
    bad[4] = [1, 1, 0, 0]
    np.savez(tmp_path / "bad.npz", images=images, labels=bad)
    with pytest.raises(InputError, match=r"row 4: label \[1.0, 1.0, 0.0, 0.0\] is not one-hot"):
        read_four_class_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "keys.npz", pixels=images, target=labels)
    with pytest.raises(InputError, match=r"the file has \['pixels', 'target'\]"):
        read_four_class_npz(tmp_path / "keys.npz")
    np.savez(tmp_path / "count.npz", images=images, labels=labels[:5])
    with pytest.raises(InputError, match="6 images .* but 5 labels"):
        read_four_class_npz(tmp_path / "count.npz")


# ------------------------------------------------------------------------------ CANDELS, folder


def test_read_candels_csv_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "cutouts").mkdir()
    ids = ["00012", "00345", "01000"]
    for i in ids:
        fits.PrimaryHDU(rng.normal(size=(16, 16)).astype(">f4")).writeto(
            tmp_path / "cutouts" / f"cut_{i}.fits"
        )
    fr = rng.uniform(0, 1, (3, 5))
    df = pd.DataFrame(fr, columns=["f_spheroid", "f_disk", "f_irr", "f_PS", "f_Unc"])
    df.insert(0, "ID", ids)
    df.to_csv(tmp_path / "candels.csv", index=False)
    data = read_candels_csv(
        tmp_path / "candels.csv", tmp_path / "cutouts", image_pattern="cut_{id}.fits"
    )
    assert data.task == "candels" and data.bands == ("F160W",)
    assert data.ids.tolist() == ids  # leading zeros kept: str ids
    np.testing.assert_allclose(data.labels, fr, atol=1e-6)
    assert data.image(1).shape == (1, 16, 16) and data.image(1).dtype.isnative
    # explicit columns= (reordered on purpose: the caller decides)
    alt = read_candels_csv(
        tmp_path / "candels.csv",
        tmp_path / "cutouts",
        image_pattern="cut_{id}.fits",
        columns=["f_disk", "f_spheroid", "f_irr", "f_PS", "f_Unc"],
    )
    np.testing.assert_allclose(alt.labels[:, 0], fr[:, 1], atol=1e-6)
    df.loc[2, "f_irr"] = np.nan
    df.to_csv(tmp_path / "nan.csv", index=False)
    with pytest.raises(InputError, match=r"line 4 \(ID 01000\): label irregular is nan"):
        read_candels_csv(tmp_path / "nan.csv", tmp_path / "cutouts", image_pattern="cut_{id}.fits")
    with pytest.raises(InputError, match=r"cut_x_00012\.fits: image file not found \(3 of 3"):
        read_candels_csv(
            tmp_path / "candels.csv", tmp_path / "cutouts", image_pattern="cut_x_{id}.fits"
        )


def test_read_image_folder_png_four_class_and_fits_merger(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "pngs"
    folder.mkdir()
    names = [f"gal{i}.png" for i in range(4)]
    for name in names:
        Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(folder / name)
    onehot = np.eye(4)[[2, 0, 1, 3]]
    df = pd.DataFrame(onehot.astype(int), columns=["normal", "ring", "merger", "other"])
    df.insert(0, "file", names)
    df.to_csv(tmp_path / "labels.csv", index=False)
    data = read_image_folder(
        tmp_path / "labels.csv",
        folder,
        label_columns=["normal", "ring", "merger", "other"],
        id_column="file",
        image_pattern="{id}",
        task="four_class",
    )
    assert data.bands == ("B", "G", "R") and data.image(0).shape == (3, 10, 10)
    assert data.class_index().tolist() == [2, 0, 1, 3]
    df.loc[1, "ring"] = 1
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match=r"line 3 \(file gal1.png\).*not one-hot"):
        read_image_folder(
            tmp_path / "bad.csv",
            folder,
            label_columns=["normal", "ring", "merger", "other"],
            id_column="file",
            task="four_class",
        )
    with pytest.raises(ConfigError, match="needs 4 label column"):
        read_image_folder(
            tmp_path / "labels.csv", folder, label_columns=["ring"], id_column="file",
            task="four_class",
        )  # fmt: skip

    # FITS cutouts through load_data (config-style dispatch)
    fdir = tmp_path / "fits"
    fdir.mkdir()
    for i in range(3):
        fits.PrimaryHDU(rng.normal(size=(2, 8, 8)).astype(np.float32)).writeto(fdir / f"{i}.fits")
    pd.DataFrame({"id": [0, 1, 2], "is_merger": [1, 0, 1]}).to_csv(tmp_path / "m.csv", index=False)
    merg = load_data(
        source="folder",
        labels=tmp_path / "m.csv",
        images_dir=fdir,
        label_columns=("is_merger",),
        task="merger",
        image_pattern="{id}.fits",
    )
    assert merg.ids.tolist() == [0, 1, 2] and merg.image(2).shape == (2, 8, 8)
    with pytest.raises(ConfigError, match="needs images_dir"):
        load_data(source="gz_kaggle", labels=tmp_path / "m.csv")
    with pytest.raises(ConfigError, match="unknown data source"):
        load_data(source="sdss")


# ------------------------------------------------------------------------------ data + Dataset


def test_classification_data_checks_and_lazy_subsets(tmp_path):
    with pytest.raises(InputError, match="5 images but 4 labels"):
        ClassificationData(
            images=np.zeros((5, 1, 4, 4)),
            labels=np.zeros((4, 1)),
            task="merger",
            label_names=("merger",),
            bands=("r",),
            ids=np.arange(4),
        )
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype="<f8", shape=(6, 1, 4, 4))
    mm[:] = np.arange(6)[:, None, None, None]
    data = ClassificationData(
        images=mm,
        labels=np.arange(6) % 2,
        task="merger",
        label_names=("merger",),
        bands=("r",),
        ids=np.arange(6),
    )
    sub = data.subset([4, 2])
    assert isinstance(sub.images, ArrayImages) and is_memory_mapped(sub.images.array)
    assert sub.image(0)[0, 0, 0] == 4.0 and sub.ids.tolist() == [4, 2]
    assert sub.subset([1]).image(0)[0, 0, 0] == 2.0


def _toy_data(n: int = 8, size: int = 24, counts: bool = False) -> ClassificationData:
    rng = np.random.default_rng(0)
    fr = gz_fractions(n)
    return ClassificationData(
        images=rng.normal(size=(n, 3, size, size)).astype(np.float32),
        labels=fr,
        task="gz_votes",
        label_names=gz_tree.ANSWER_NAMES,
        bands=("R", "G", "B"),
        ids=np.arange(n),
        counts=np.round(fr * 30) if counts else None,
    )


def test_dataset_preprocessing_crop_resize_and_counts():
    data = _toy_data(counts=True)
    prep = Preprocessing(bands=("B", "R"), stretch="none", mean=(1.0, 0.0), std=(2.0, 1.0))
    ds = ClassificationDataset(data, preprocessing=prep, center_crop=16, resize=8)
    x, y = ds[3]
    assert x.dtype == torch.float32 and x.shape == (2, 8, 8) and y.shape == (37,)
    assert ds.image_size == (8, 8) and ds.n_channels == 2
    torch.testing.assert_close(y, torch.from_numpy(data.labels[3]))
    # band selection by name + mean/std, then the central crop (no resize)
    crop = ClassificationDataset(data, preprocessing=prep, center_crop=16)
    raw = data.image(3)
    expected = np.stack([(raw[2] - 1.0) / 2.0, raw[0]])[:, 4:20, 4:20]
    np.testing.assert_allclose(crop[3][0].numpy(), expected, rtol=1e-6)
    with_counts = ClassificationDataset(data, return_counts=True)
    assert len(with_counts[0]) == 3 and with_counts[0][2].shape == (37,)
    with pytest.raises(ConfigError, match="no vote counts"):
        ClassificationDataset(_toy_data(), return_counts=True)
    with pytest.raises(InputError, match="not among the data's bands"):
        ClassificationDataset(data, preprocessing=Preprocessing(bands=("u",), stretch="none"))
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 2, 8, 8) and yb.shape == (4, 37)


def test_galaxy_augmentation_geometry_only_and_seeded():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 20, 20)
    dihedral = GalaxyAugmentation(rot90=True, flips=True)
    seen = set()
    for _ in range(30):
        out = dihedral(img, generator=g)
        assert out.shape == img.shape
        # an exact pixel permutation: same values per band, no colour change
        torch.testing.assert_close(out.flatten(1).sort(1).values, img.flatten(1).sort(1).values)
        seen.add(tuple(out[0, 0, :2].tolist()))
    assert len(seen) > 3  # several different views
    full = GalaxyAugmentation(rotate=True, zoom=0.2, shift=0.05)
    a = full(img, generator=torch.Generator().manual_seed(1))
    b = full(img, generator=torch.Generator().manual_seed(1))
    assert a.shape == img.shape and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, img)
    # bilinear + reflect padding never leaves the input's value range
    assert a.min() >= img.min() - 1e-6 and a.max() <= img.max() + 1e-6
    # a centred symmetric galaxy stays centred under rotation + zoom
    yy, xx = torch.meshgrid(torch.arange(32.0) + 0.5, torch.arange(32.0) + 0.5, indexing="ij")
    blob = torch.exp(-((xx - 16) ** 2 + (yy - 16) ** 2) / 8.0)[None]
    rot = GalaxyAugmentation(rotate=True, zoom=0.2)(blob, generator=torch.Generator())
    cy = float((rot[0] * yy).sum() / rot[0].sum())
    cx = float((rot[0] * xx).sum() / rot[0].sum())
    assert abs(cy - 16) < 0.3 and abs(cx - 16) < 0.3
    with pytest.raises(ConfigError, match="zoom"):
        GalaxyAugmentation(zoom=-0.1)

    ds = ClassificationDataset(_toy_data(), augmentation=full, seed=3)
    ds2 = ClassificationDataset(_toy_data(), augmentation=full, seed=3)
    torch.testing.assert_close(ds[0][0], ds2[0][0])
    assert not torch.allclose(ds[0][0], ds.load_image(0))


def test_stratified_split_keeps_class_mix_and_is_deterministic():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    tr, te = stratified_split(labels, fractions=(0.8, 0.2), seed=0)
    assert len(tr) == 80 and len(te) == 20
    assert np.bincount(labels[te]).tolist() == [10, 6, 4]
    assert sorted(np.concatenate([tr, te]).tolist()) == list(range(100))
    again = stratified_split(labels, fractions=(0.8, 0.2), seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((tr, te), again))
    other = stratified_split(labels, fractions=(0.8, 0.2), seed=1)
    assert not np.array_equal(te, other[1])
    parts = stratified_split(np.eye(3)[labels], fractions=(0.7, 0.1, 0.2), seed=2)
    assert [len(p) for p in parts] == [70, 10, 20]
    assert np.bincount(labels[parts[1]], minlength=3).tolist() == [5, 3, 2]
    with pytest.raises(ConfigError, match="sum to 1"):
        stratified_split(labels, fractions=(0.5, 0.2))


def test_no_stray_warnings_on_clean_reads(tmp_path):
    csv, images_dir, _ = write_kaggle(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_gz_kaggle(csv, images_dir)
