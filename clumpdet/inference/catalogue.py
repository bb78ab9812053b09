"""Clump catalogues: detections + photometry + sky positions, as astropy Tables.

Columns (one row per detection at or above the operating score threshold):

``image``, ``image_id``, ``clump_id`` (1-based within the image), ``label``, ``label_name``,
``score``, ``x1 y1 x2 y2`` (pixels, xyxy, docs/conventions.md), ``x``, ``y`` (box centre),
``ra``, ``dec`` (deg, ICRS, from the WCS; NaN without one), then the photometry of
:mod:`clumpdet.inference.photometry` (same columns for every image, empty ones included):
``host_segment``, ``fwhm_eff`` and ``aperture_radius`` (px), per band ``flux_<band>`` (clump
total flux with the local host light removed, forced at the same position in every band, image
units), ``flux_err_<band>``, ``host_flux_<band>`` (whole galaxy, clumps included, neighbours
deblended away), ``host_flux_err_<band>``, ``flux_ratio_<band>`` (clump / host),
``flux_ratio_err_<band>``; ``flux_ratio`` (reference band), ``flux_ratio_cut`` (cut band: ``u``
if present, else the bluest), ``flux_ratio_ge_3pct`` / ``flux_ratio_ge_8pct`` (one flag per
ratio cut, Popp et al. 2024), ``phot_flag`` (bits, :data:`~clumpdet.inference.photometry.FLAG_EDGE`
...), then ``backbone``, ``checkpoint_sha256``. ``meta`` records ``REFBAND`` and ``CUTBAND``.

The columns follow the detector's stored detection kind (``DetectorBundle.detection_kind``):
``"clumps"`` gives the clump catalogue above; ``"sources"`` (star/galaxy detectors) gives
``source_id`` in place of ``clump_id`` and no host columns: ``flux_<band>`` is the sum in the box.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.table import Table

from clumpdet.data.images import ImageData
from clumpdet.detections import Detections
from clumpdet.errors import InputError
from clumpdet.inference.photometry import (
    PhotometryConfig,
    cut_band_of,
    measure_photometry,
    photometry_columns,
)
from clumpdet.utils import atomic_path

CATALOGUE_FORMATS = {
    ".fits": "fits",
    ".parquet": "parquet",
    ".csv": "ascii.csv",
    ".ecsv": "ascii.ecsv",
}


def segment_hosts(band: np.ndarray, *, nsigma: float = 2.0, npixels: int = 30) -> np.ndarray:
    """Segmentation map (0 sky, 1..K segments) of one background-subtracted band, as used for
    the hosts (:func:`clumpdet.inference.photometry.segment_hosts`)."""
    from clumpdet.inference.photometry import segment_hosts as _segment

    segm, _ = _segment(band, nsigma=nsigma, npixels=npixels)
    if segm is None:
        return np.zeros(np.shape(band), dtype=np.int32)
    return segm.data.astype(np.int32)


def _box_sum(plane: np.ndarray, box: np.ndarray) -> float:
    h, w = plane.shape
    x1, y1 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    if x2 <= x1 or y2 <= y1:
        return float("nan")
    return float(np.nansum(plane[y1:y2, x1:x2]))


def _radec(wcs, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (deg) of 0-based pixel positions: the WCS's own world coordinates when its axes
    are RA/Dec (100x faster than a SkyCoord), else through ``pixel_to_world`` (e.g. galactic
    axes, converted to ICRS RA/Dec)."""
    ctype = [str(c).upper() for c in wcs.wcs.ctype]
    lng, lat = wcs.wcs.lng, wcs.wcs.lat
    if lng >= 0 and lat >= 0 and ctype[lng].startswith("RA") and ctype[lat].startswith("DEC"):
        world = wcs.all_pix2world(np.stack([x, y], axis=1), 0)
        return world[:, lng], world[:, lat]
    sky = wcs.pixel_to_world(x, y)
    return np.atleast_1d(sky.icrs.ra.deg), np.atleast_1d(sky.icrs.dec.deg)


def build_catalogue(
    images: Sequence[ImageData],
    detections: Sequence[Detections],
    *,
    class_names: Sequence[str],
    image_ids: Sequence[int] | None = None,
    reference_band: str | None = None,
    backbone: str = "",
    checkpoint_sha256: str = "",
    host_nsigma: float = 2.0,
    detection_kind: str = "clumps",
    photometry: PhotometryConfig | None = None,
) -> Table:
    """Assemble the clump catalogue of a set of images.

    Parameters
    ----------
    images : sequence of ImageData
        The images as read (physical units), with WCS when available.
    detections : sequence of Detections
        One per image, already cut at the operating threshold.
    class_names : sequence of str
        Name of label 1, 2, ...
    image_ids : sequence of int, optional
        Ids written in ``image_id`` (default 0..n-1).
    reference_band : str, optional
        Band for ``flux_ratio`` and host segmentation (default: the middle band, e.g. r of gri).
    backbone, checkpoint_sha256 : str
        Provenance columns.
    host_nsigma : float
        Host segmentation threshold in noise sigmas (used when ``photometry`` is not given).
    detection_kind : {"clumps", "sources"}
        Clump catalogue (``clump_id`` and host photometry) or source catalogue (``source_id``,
        box fluxes only); a detector's is ``DetectorBundle.detection_kind``.
    photometry : PhotometryConfig, optional
        Apertures, PSF, gain, ratio cuts and cut band, host segmentation
        (default ``PhotometryConfig(host_nsigma=host_nsigma)``).

    Returns
    -------
    astropy.table.Table
        One row per detection; ``meta["BANDS"]`` and ``meta["DETKIND"]`` set.
    """
    from clumpdet.checkpoints import DETECTION_KINDS

    if detection_kind not in DETECTION_KINDS:
        raise ValueError(f"detection_kind {detection_kind!r} is not one of {list(DETECTION_KINDS)}")
    host_columns = detection_kind == "clumps"
    if len(images) != len(detections):
        raise ValueError("images and detections differ in length")
    ids = list(range(len(images))) if image_ids is None else list(image_ids)
    bands = list(images[0].bands) if images else []
    phot_cfg = photometry if photometry is not None else PhotometryConfig(host_nsigma=host_nsigma)
    ref = reference_band or (bands[len(bands) // 2] if bands else "")
    rows = []
    for iid, image, det in zip(ids, images, detections):
        if list(image.bands) != bands:
            raise InputError(
                image.path, f"bands {image.bands} differ from the first image's {bands}"
            )
        if ref not in bands:
            raise InputError(image.path, f"reference band {ref!r} not in {bands}")
        name = _image_name(image, iid)
        if len(det) == 0:
            continue
        cx = 0.5 * (det.boxes[:, 0] + det.boxes[:, 2])
        cy = 0.5 * (det.boxes[:, 1] + det.boxes[:, 3])
        if image.wcs is not None:
            # conventions.md: COCO pixel centres sit at +0.5 of astropy's 0-based ones
            ra, dec = _radec(image.wcs, cx - 0.5, cy - 0.5)
        else:
            ra = dec = np.full(len(det), np.nan)
        order = np.argsort(-det.scores, kind="stable")
        phot = None
        if host_columns:
            phot = measure_photometry(
                image.data,
                np.asarray(det.boxes, dtype=np.float64)[order],
                bands=bands,
                reference_band=ref,
                header=image.header,
                config=phot_cfg,
            )
        for k, j in enumerate(order, 1):
            box = det.boxes[j]
            row = {
                "image": name,
                "image_id": int(iid),
                "clump_id" if host_columns else "source_id": k,
                "label": int(det.labels[j]),
                "label_name": _label_name(class_names, int(det.labels[j])),
                "score": float(det.scores[j]),
                "x1": float(box[0]),
                "y1": float(box[1]),
                "x2": float(box[2]),
                "y2": float(box[3]),
                "x": float(cx[j]),
                "y": float(cy[j]),
                "ra": float(ra[j]),
                "dec": float(dec[j]),
            }
            if not host_columns:
                for bi, b in enumerate(bands):
                    row[f"flux_{b}"] = _box_sum(image.data[bi], box)
            else:
                for col, _ in photometry_columns(bands, phot_cfg):
                    v = phot[col][k - 1]
                    row[col] = v.item() if hasattr(v, "item") else v
            row["backbone"] = backbone
            row["checkpoint_sha256"] = checkpoint_sha256
            rows.append(row)
    empty = _empty_table(bands, host_columns=host_columns, photometry=phot_cfg)
    if rows:
        # same columns, order and numeric dtypes for every image (shards concatenate cleanly)
        table = Table(rows=rows)[empty.colnames]
        for col in empty.colnames:
            if empty[col].dtype.kind != "U":
                table[col] = table[col].astype(empty[col].dtype)
    else:
        table = empty
    table.meta["BANDS"] = ",".join(bands)
    if host_columns and bands:
        table.meta["REFBAND"] = ref
        table.meta["CUTBAND"] = cut_band_of(bands, phot_cfg.cut_band)
    table.meta["DETKIND"] = detection_kind
    for col, unit in (("ra", "deg"), ("dec", "deg"), ("x", "pix"), ("y", "pix")):
        if col in table.colnames:
            table[col].unit = unit
    return table


def _label_name(class_names: Sequence[str], label: int) -> str:
    return class_names[label - 1] if 1 <= label <= len(class_names) else f"class{label}"


def _image_name(image: ImageData, iid: int) -> str:
    p = image.path
    if isinstance(p, tuple):
        p = p[0]
    return Path(p).name if p is not None else f"image{iid}"


def _empty_table(
    bands: Sequence[str], *, host_columns: bool = True, photometry: PhotometryConfig | None = None
) -> Table:
    names = [
        "image",
        "image_id",
        "clump_id" if host_columns else "source_id",
        "label",
        "label_name",
        "score",
        "x1",
        "y1",
        "x2",
        "y2",
        "x",
        "y",
        "ra",
        "dec",
    ]
    dtypes = ["U64", "i8", "i8", "i8", "U16", "f8", *["f8"] * 8]
    if host_columns:
        for col, dt in photometry_columns(bands, photometry or PhotometryConfig()):
            names.append(col)
            dtypes.append(dt)
    else:
        names += [f"flux_{b}" for b in bands]
        dtypes += ["f8"] * len(bands)
    names += ["backbone", "checkpoint_sha256"]
    dtypes += ["U64", "U16"]
    return Table(names=names, dtype=dtypes)


def write_catalogue(table: Table, path: str | Path) -> Path:
    """Write a catalogue atomically; the format follows the suffix (.fits, .parquet, .csv)."""
    path = Path(path)
    fmt = CATALOGUE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(path, f"unknown catalogue format; use one of {sorted(CATALOGUE_FORMATS)}")
    with atomic_path(path) as tmp:
        table.write(tmp, format=fmt, overwrite=True)
    return path
