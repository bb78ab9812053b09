"""Image readers (FITS layouts, PNG/JPEG, NaN policies, corrupt files) and the label CSV."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from PIL import Image

from clumpdet.data import (
    ImageData,
    labels_to_targets,
    make_wcs,
    read_image,
    read_labels_csv,
    write_image_fits,
    write_labels_csv,
)
from clumpdet.errors import InputError

H, W = 12, 16


def _planes(n: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, H, W)).astype(np.float32)


def _write_2d(path, data, **cards):
    hdr = fits.Header()
    for k, v in cards.items():
        hdr[k] = v
    fits.PrimaryHDU(data=data, header=hdr).writeto(path)
    return path


# --------------------------------------------------------------------------- FITS layouts


def test_cube_with_band_keywords_and_wcs(tmp_path):
    data = _planes()
    wcs = make_wcs(shape=(H, W), ra=150.0, dec=2.0, pixel_scale=0.396)
    path = write_image_fits(tmp_path / "cube.fits", data, bands=("g", "r", "i"), wcs=wcs)
    im = read_image(path)
    assert im.bands == ("g", "r", "i") and im.band_names_known
    assert im.data.dtype == np.float32 and im.data.dtype.isnative
    assert im.data.flags.c_contiguous
    np.testing.assert_array_equal(im.data, data)
    assert im.wcs is not None and im.wcs.naxis == 2 and im.wcs.has_celestial
    np.testing.assert_allclose(im.wcs.wcs.crval, [150.0, 2.0])
    assert im.path == path and im.header["NBANDS"] == 3

    sel = read_image(path, bands=["i", "g"])
    assert sel.bands == ("i", "g")
    np.testing.assert_array_equal(sel.data, data[[2, 0]])


def test_compressed_fits(tmp_path):
    data = _planes()
    path = write_image_fits(tmp_path / "c.fits", data, bands=("g", "r", "i"))
    with open(path, "rb") as src, gzip.open(tmp_path / "c.fits.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    im = read_image(tmp_path / "c.fits.gz", bands=("r",))
    np.testing.assert_array_equal(im.data, data[[1]])
    ints = (data[0] * 100).astype(np.int16)  # integers: tile compression is lossless
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(ints)]).writeto(tmp_path / "t.fits.fz")
    np.testing.assert_array_equal(read_image(tmp_path / "t.fits.fz").data[0], ints)


def test_cube_nbands_mismatch(tmp_path):
    hdu = fits.PrimaryHDU(_planes())
    hdu.header["NBANDS"] = 2
    hdu.writeto(tmp_path / "bad.fits")
    with pytest.raises(InputError, match=r"bad\.fits: .*NBANDS = 2 but the cube has 3"):
        read_image(tmp_path / "bad.fits")


def test_2d_hdu_band_from_filter_and_unnamed(tmp_path):
    data = _planes(1)[0]
    named = _write_2d(tmp_path / "r.fits", data, FILTER="r")
    im = read_image(named)
    assert im.bands == ("r",) and im.data.shape == (1, H, W)
    np.testing.assert_array_equal(im.data[0], data)
    assert im.wcs is None

    unnamed = _write_2d(tmp_path / "plain.fits", data)
    im = read_image(unnamed)
    assert im.bands == ("band1",) and not im.band_names_known
    # An unnamed single band may be declared to be the requested band ...
    assert read_image(unnamed, bands=("r",)).bands == ("r",)
    # ... but a wrong band count is an error naming the file.
    with pytest.raises(InputError, match=r"plain\.fits: expected 3 bands \(g, r, i\), found 1"):
        read_image(unnamed, bands=("g", "r", "i"))
    with pytest.raises(InputError, match=r"r\.fits: expected 3 bands \(g, r, i\), found 1"):
        read_image(named, bands=("g", "r", "i"))


def test_missing_band_named(tmp_path):
    path = write_image_fits(tmp_path / "c.fits", _planes(), bands=("g", "r", "i"))
    with pytest.raises(InputError, match=r"c\.fits: band\(s\) z not found; the file has bands"):
        read_image(path, bands=("g", "r", "z"))


def test_per_band_file_list(tmp_path):
    data = _planes()
    paths = [_write_2d(tmp_path / f"{b}.fits", data[k], FILTER=b) for k, b in enumerate("gri")]
    im = read_image(paths)
    assert im.bands == ("g", "r", "i")
    np.testing.assert_array_equal(im.data, data)
    assert im.path == tuple(paths)
    im = read_image([paths[2], paths[0]], bands=("g", "i"))
    np.testing.assert_array_equal(im.data, data[[0, 2]])

    odd = _write_2d(tmp_path / "odd.fits", np.zeros((H + 1, W), np.float32), FILTER="z")
    with pytest.raises(InputError, match=r"odd\.fits: image shape \(13, 16\) differs"):
        read_image([paths[0], odd])
    with pytest.raises(InputError, match=r"nope\.fits: file not found"):
        read_image([paths[0], tmp_path / "nope.fits"])


def test_multi_extension_bands(tmp_path):
    data = _planes(3)
    hdus = [fits.PrimaryHDU()]
    for k, b in enumerate("gri"):
        hdus.append(fits.ImageHDU(data[k].astype(">f8"), header=fits.Header([("FILTER", b)])))
    fits.HDUList(hdus).writeto(tmp_path / "mef.fits")
    im = read_image(tmp_path / "mef.fits")
    assert im.bands == ("g", "r", "i")
    assert im.data.dtype == np.float32 and im.data.dtype.isnative
    np.testing.assert_allclose(im.data, data)
    np.testing.assert_array_equal(read_image(tmp_path / "mef.fits", bands=("r",)).data, data[[1]])

    # EXTNAME names the band when no BAND/FILTER keyword exists; hdu= reads one extension.
    hdus = [fits.PrimaryHDU()] + [fits.ImageHDU(data[k], name=b) for k, b in enumerate("GRI")]
    fits.HDUList(hdus).writeto(tmp_path / "ext.fits")
    assert read_image(tmp_path / "ext.fits").bands == ("G", "R", "I")
    one = read_image(tmp_path / "ext.fits", hdu="R")
    np.testing.assert_array_equal(one.data, data[[1]])
    np.testing.assert_array_equal(read_image(tmp_path / "ext.fits", hdu=3).data, data[[2]])
    with pytest.raises(InputError, match=r"ext\.fits: no HDU 'Z'"):
        read_image(tmp_path / "ext.fits", hdu="Z")


def test_first_hdu_with_data(tmp_path):
    """An empty primary followed by a cube and a table: the cube is read."""
    data = _planes(2)
    cube = fits.ImageHDU(data, name="SCI")
    cube.header["BAND1"], cube.header["BAND2"] = "g", "r"
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=[1.0])])
    fits.HDUList([fits.PrimaryHDU(), cube, table]).writeto(tmp_path / "f.fits")
    im = read_image(tmp_path / "f.fits")
    assert im.bands == ("g", "r")
    np.testing.assert_array_equal(im.data, data)
    with pytest.raises(InputError, match="not an image"):
        read_image(tmp_path / "f.fits", hdu=2)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i2"])
def test_big_endian_data(tmp_path, dtype):
    raw = (np.arange(H * W).reshape(H, W) - 50).astype(dtype)
    hdu = fits.PrimaryHDU(raw)
    expected = raw.astype(np.float64)
    if dtype == ">i2":
        hdu.header["BSCALE"], hdu.header["BZERO"] = 0.25, 100.0
        expected = expected * 0.25 + 100.0
    hdu.writeto(tmp_path / "be.fits")
    assert fits.getdata(tmp_path / "be.fits", do_not_scale_image_data=True).dtype.byteorder == ">"
    im = read_image(tmp_path / "be.fits")
    assert im.data.dtype == np.dtype(np.float32) and im.data.dtype.isnative
    np.testing.assert_allclose(im.data[0], expected, rtol=1e-6)


def test_4d_data_rejected(tmp_path):
    fits.PrimaryHDU(np.zeros((2, 3, 4, 5), np.float32)).writeto(tmp_path / "n.fits")
    with pytest.raises(InputError, match=r"n\.fits: .*found 4-D data"):
        read_image(tmp_path / "n.fits")


# --------------------------------------------------------------------------- PNG / JPEG


def test_png_colour_rows_top_down(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    im = read_image(tmp_path / "c.png")
    assert im.bands == ("B", "G", "R") and im.data.shape == (3, H, W)
    assert im.data.dtype == np.float32 and im.wcs is None
    # Row 0 of the array is the top row of the picture (no flip), values in [0, 1]; planes in
    # wavelength order (blue first).
    np.testing.assert_allclose(im.data, rgb[..., ::-1].transpose(2, 0, 1) / 255.0, atol=1e-7)

    rgba = np.concatenate([rgb, np.full((H, W, 1), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_allclose(read_image(tmp_path / "a.png").data, im.data)


def test_png_greyscale_8_and_16_bit(tmp_path):
    grey = np.random.default_rng(2).integers(0, 256, size=(H, W), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    im = read_image(tmp_path / "g.png")
    assert im.bands == ("L",) and im.data.shape == (1, H, W)
    np.testing.assert_allclose(im.data[0], grey / 255.0, atol=1e-7)

    g16 = (np.arange(H * W).reshape(H, W) * 300).astype(np.uint16)
    Image.fromarray(g16).save(tmp_path / "g16.png")
    np.testing.assert_allclose(read_image(tmp_path / "g16.png").data[0], g16 / 65535.0, atol=1e-6)


def test_jpeg_colour(tmp_path):
    yy, xx = np.mgrid[0:H, 0:W]
    rgb = np.stack([xx * 15, yy * 20, np.full_like(xx, 128)], axis=2).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=98)
    im = read_image(tmp_path / "c.jpg", bands=("R", "G", "B"))
    assert im.bands == ("R", "G", "B") and im.data.shape == (3, H, W)
    np.testing.assert_allclose(im.data, rgb.transpose(2, 0, 1) / 255.0, atol=0.05)
    with pytest.raises(InputError, match=r"c\.jpg: band\(s\) g, r, i not found; .*\(B, G, R\)"):
        read_image(tmp_path / "c.jpg", bands=("g", "r", "i"))


# --------------------------------------------------------------------------- NaN / empty


def test_nan_policies(tmp_path):
    data = _planes(2)
    data[0, 1, 2] = np.nan
    data[0, 3, 4] = np.inf
    data[1, 0, 0] = -np.inf
    path = write_image_fits(tmp_path / "nan.fits", data, bands=("g", "r"))
    with pytest.raises(InputError, match=r"nan\.fits: 3 non-finite \(NaN/inf\) pixel"):
        read_image(path)
    # Only the selected bands count.
    with pytest.raises(InputError, match=r"1 non-finite"):
        read_image(path, bands=("r",))

    zero = read_image(path, nan_policy="zero").data
    assert np.isfinite(zero).all()
    assert zero[0, 1, 2] == 0 and zero[0, 3, 4] == 0 and zero[1, 0, 0] == 0
    assert zero[0, 0, 0] == data[0, 0, 0]

    med = read_image(path, nan_policy="median").data
    good0 = np.isfinite(data[0])
    assert med[0, 1, 2] == med[0, 3, 4] == pytest.approx(np.median(data[0][good0]))
    assert med[1, 0, 0] == pytest.approx(np.median(data[1][np.isfinite(data[1])]))
    np.testing.assert_array_equal(med[0][good0], data[0][good0])

    kept = read_image(path, nan_policy="keep").data
    np.testing.assert_array_equal(kept, data)  # NaN and inf left for a masking caller


@pytest.mark.parametrize("policy", ["raise", "zero", "median"])
def test_all_nan_band_always_rejected(tmp_path, policy):
    data = _planes(2)
    data[1] = np.nan
    path = write_image_fits(tmp_path / "allnan.fits", data, bands=("g", "r"))
    with pytest.raises(InputError, match=r"allnan\.fits: band\(s\) r contain no finite pixels"):
        read_image(path, nan_policy=policy)


def test_keep_policy_passes_an_all_nan_band(tmp_path):
    data = _planes(2)
    data[1] = np.nan
    path = write_image_fits(tmp_path / "allnan.fits", data, bands=("g", "r"))
    assert np.isnan(read_image(path, nan_policy="keep").data[1]).all()


def test_empty_image(tmp_path):
    fits.PrimaryHDU(np.zeros((0, 5), np.float32)).writeto(tmp_path / "e.fits")
    with pytest.raises(InputError, match=r"e\.fits: image is empty"):
        read_image(tmp_path / "e.fits", nan_policy="zero")
    from clumpdet.data import apply_nan_policy

    empty = ImageData(data=np.zeros((1, 0, 4), np.float32), bands=("r",))
    with pytest.raises(InputError, match="image is empty"):
        apply_nan_policy(empty, "zero")


# --------------------------------------------------------------------------- bad files


def test_corrupt_and_truncated_fits(tmp_path):
    path = write_image_fits(tmp_path / "good.fits", _planes(), bands=("g", "r", "i"))
    raw = path.read_bytes()
    (tmp_path / "half.fits").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "head.fits").write_bytes(raw[:1000])
    (tmp_path / "rand.fits").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "zero.fits").write_bytes(b"")
    for name in ("half.fits", "head.fits", "rand.fits", "zero.fits"):
        with pytest.raises(InputError, match=rf"{name}: not a valid FITS file \(.+\)"):
            read_image(tmp_path / name)


def test_missing_corrupt_raster_and_unknown_suffix(tmp_path):
    with pytest.raises(InputError, match=r"gone\.fits: file not found"):
        read_image(tmp_path / "gone.fits")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    with pytest.raises(InputError, match=r"bad\.png: not a valid PNG/JPEG image"):
        read_image(tmp_path / "bad.png")
    (tmp_path / "x.tif").write_bytes(b"II*\x00")
    with pytest.raises(InputError, match=r"x\.tif: unsupported file type '\.tif'; supported: .*"):
        read_image(tmp_path / "x.tif")
    try:
        read_image(tmp_path / "x.tif")
    except InputError as exc:
        assert ".fits" in exc.problem and ".png" in exc.problem and ".jpg" in exc.problem


# --------------------------------------------------------------------------- label CSV

GOOD_CSV = """local_ids,label,x1,y1,x2,y2,note
3,1,10.5,20.0,26.5,36.0,a

3,2,1,2,3,4,b
7,1,0,0,9.1,9.1,c
"""


def test_read_labels_csv_good(tmp_path):
    (tmp_path / "l.csv").write_text(GOOD_CSV)
    df = read_labels_csv(tmp_path / "l.csv")
    assert list(df.columns) == ["local_ids", "label", "x1", "y1", "x2", "y2", "note"]
    assert df["local_ids"].dtype == np.int64 and df["label"].dtype == np.int64
    assert all(df[c].dtype == np.float64 for c in ("x1", "y1", "x2", "y2"))
    assert df["local_ids"].tolist() == [3, 3, 7] and df["label"].tolist() == [1, 2, 1]
    assert df["x1"].tolist() == [10.5, 1.0, 0.0] and df["note"].tolist() == ["a", "b", "c"]

    targets = labels_to_targets(df, image_ids=[3, 7, 9])
    boxes, labels = targets[3]
    assert boxes.dtype == np.float32 and boxes.shape == (2, 4) and labels.dtype == np.int64
    np.testing.assert_array_equal(boxes[0], [10.5, 20.0, 26.5, 36.0])
    np.testing.assert_array_equal(labels, [1, 2])
    assert targets[9][0].shape == (0, 4) and targets[9][1].shape == (0,)
    assert set(labels_to_targets(df)) == {3, 7}


def test_labels_csv_round_trip_and_header_only(tmp_path):
    rows = [(0, 1, 1.25, 2.5, 10.0, 12.0), (5, 2, 3.0, 4.0, 5.0, 6.0)]
    write_labels_csv(tmp_path / "w.csv", rows)
    df = read_labels_csv(tmp_path / "w.csv")
    np.testing.assert_allclose(df.to_numpy(dtype=float), np.array(rows, dtype=float))

    write_labels_csv(tmp_path / "empty.csv", [])
    df = read_labels_csv(tmp_path / "empty.csv")
    assert len(df) == 0 and df["local_ids"].dtype == np.int64 and df["x1"].dtype == np.float64
    assert labels_to_targets(df) == {}


def test_labels_csv_missing_columns_and_file(tmp_path):
    (tmp_path / "h.csv").write_text("local_ids,label,x1,y1\n1,1,2,3\n")
    with pytest.raises(InputError, match=r"h\.csv: missing column\(s\) x2, y2 in header"):
        read_labels_csv(tmp_path / "h.csv")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(InputError, match=r"blank\.csv: empty file"):
        read_labels_csv(tmp_path / "blank.csv")
    with pytest.raises(InputError, match=r"none\.csv: file not found"):
        read_labels_csv(tmp_path / "none.csv")


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("4,1,1,2,3", "expected 6 fields, found 5"),
        ("4,1,1,2,3,4,5", "expected 6 fields, found 7"),
        ("4,1,one,2,3,4", "x1 'one' is not a number"),
        ("x,1,1,2,3,4", "local_ids 'x' is not an integer"),
        ("4,3,1,2,3,4", "label 3 is not one of \\[1, 2\\]"),
        ("4,1,5,2,5,4", "empty or inverted box"),
        ("4,1,1,6,3,4", "empty or inverted box"),
        ("4,1,nan,2,3,4", "x1 is 'nan', not finite"),
        ("4,1,1,2,3,inf", "y2 is 'inf', not finite"),
    ],
)
def test_labels_csv_malformed_rows(tmp_path, row, problem):
    path = tmp_path / "bad.csv"
    path.write_text(f"local_ids,label,x1,y1,x2,y2\n1,1,0,0,5,5\n{row}\n")
    with pytest.raises(InputError, match=rf"bad\.csv: line 3: {problem}"):
        read_labels_csv(path)


def test_read_labels_returns_dataframe(tmp_path):
    (tmp_path / "l.csv").write_text("x2,y2,x1,y1,label,local_ids\n4,5,1,2,1,9\n")
    df = read_labels_csv(tmp_path / "l.csv")
    assert isinstance(df, pd.DataFrame)
    assert df.iloc[0].to_dict() == {
        "local_ids": 9,
        "label": 1,
        "x1": 1.0,
        "y1": 2.0,
        "x2": 4.0,
        "y2": 5.0,
    }
