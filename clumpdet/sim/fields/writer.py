"""Write simulated blended-field data sets (FITS + COCO + per-object table + config).

Layout of ``out``::

    images/000000.fits ...   (C, H, W) cubes in nanomaggies with a TAN WCS, BANDn, PIXSCALE,
                             PSFFWHM (reference band, arcsec), PSFFWHM<B>, NOISE_<B>
    annotations.json         COCO; categories star (1) / galaxy (2); labelled objects only
                             (S/N >= truth.label_snr), with segmentation RLE when truth.masks;
                             image records carry psf_fwhm (arcsec), psf_fwhm_px, pixel_scale,
                             noise_sigma {band: nanomaggy}
    objects.csv              every object, labelled or not (columns: clumpdet.sim.fields.scene)
    config.yaml              resolved FieldSimConfig plus a ``_run_`` block (kind, seed, n, version)
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from clumpdet.errors import InputError
from clumpdet.sim.fields.config import FIELD_CATEGORIES, FieldSimConfig, validate_field_config
from clumpdet.sim.fields.scene import FieldScene, simulate_field_scene
from clumpdet.sim.run import write_detection_set
from clumpdet.utils import atomic_path

#: Pair ids are ``image_id * PAIR_ID_STRIDE + local id``, unique over a data set.
PAIR_ID_STRIDE = 100_000

#: Columns of ``objects.csv`` in order (``mag_<band>`` columns follow ``category``).
OBJECT_COLUMNS = (
    "image_id",
    "object_id",
    "annotation_id",
    "category_id",
    "category",
    "x",
    "y",
    "mag",
    "snr",
    "labelled",
    "x1",
    "y1",
    "x2",
    "y2",
    "hlr",
    "axis_ratio",
    "bulge_fraction",
    "nn_sep_px",
    "nn_sep_fwhm",
    "blendedness",
    "overlap",
    "pair_id",
    "pair_sep_fwhm",
)


def field_records(
    scene: FieldScene, *, file_name: str
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """COCO image record, annotations (without ``id``) and object rows of one scene.

    Returns
    -------
    image : dict
        ``id, file_name, width, height, bands, pixel_scale, psf_fwhm, psf_fwhm_px, noise_sigma``.
    annotations : list of dict
        Labelled objects: ``image_id, category_id, bbox, area, iscrowd, object_id, centre, mag,
        snr, nn_sep_fwhm, blendedness, overlap, pair_id, pair_sep_fwhm`` (+ ``segmentation``).
    objects : list of dict
        Every object (``objects.csv`` rows without ``annotation_id``).
    """
    _, h, w = scene.image.shape
    iid = int(scene.image_id)
    image = {
        "id": iid,
        "file_name": file_name,
        "width": int(w),
        "height": int(h),
        "bands": list(scene.bands),
        "pixel_scale": float(scene.pixel_scale),
        "psf_fwhm": round(float(scene.psf_fwhm), 5),
        "psf_fwhm_px": round(float(scene.psf_fwhm_px), 4),
        "noise_sigma": {b: float(v) for b, v in scene.noise_sigma.items()},
    }
    names = {c["id"]: c["name"] for c in FIELD_CATEGORIES}
    anns, rows = [], []
    for k, o in enumerate(scene.objects):
        pair = int(o["pair_id"])
        row = {
            **{c: o.get(c) for c in OBJECT_COLUMNS if c in o},
            "image_id": iid,
            "category": names[o["category_id"]],
            "pair_id": iid * PAIR_ID_STRIDE + pair if pair >= 0 else -1,
            **{f"mag_{b}": o[f"mag_{b}"] for b in scene.bands},
        }
        rows.append(row)
        if not o["labelled"]:
            continue
        bw, bh = o["x2"] - o["x1"], o["y2"] - o["y1"]
        ann = {
            "image_id": iid,
            "category_id": int(o["category_id"]),
            "bbox": [o["x1"], o["y1"], bw, bh],
            "area": bw * bh,
            "iscrowd": 0,
            "object_id": int(o["object_id"]),
            "centre": [round(o["x"], 4), round(o["y"], 4)],
            "mag": round(o["mag"], 4),
            "snr": round(o["snr"], 3),
            "nn_sep_fwhm": round(o["nn_sep_fwhm"], 4) if o["nn_sep_fwhm"] < 1e9 else None,
            "blendedness": round(o["blendedness"], 5),
            "overlap": round(o["overlap"], 5),
            "pair_id": row["pair_id"],
        }
        if scene.masks is not None:
            ann["segmentation"] = scene.masks[k]
        anns.append(ann)
    return image, anns, rows


def simulate_fields(
    *,
    n: int,
    seed: int,
    out: str | Path,
    config: FieldSimConfig | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Simulate ``n`` blended fields with truth and write them to ``out`` atomically.

    Parameters
    ----------
    n : int
        Number of tiles (or mosaics; the size is ``config.image.width x height``).
    seed : int
        Master seed; field ``i`` is a pure function of ``(config, seed, i)``, whatever ``workers``.
    out : str or Path
        Output directory (layout in the module docstring).
    config : FieldSimConfig, optional
        Defaults to ``FieldSimConfig()`` (``configs/sim/fields_decam.yaml``).
    workers : int, optional
        Processes (default: all cores); 1 runs in-process.
    overwrite : bool
        Replace a non-empty ``out``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    Path
        ``out``.
    """
    cfg = validate_field_config(config if config is not None else FieldSimConfig())
    return write_detection_set(
        out,
        kind="fields",
        config=cfg,
        n=n,
        seed=seed,
        workers=workers,
        overwrite=overwrite,
        progress=progress,
        simulate_scene=simulate_field_scene,
        records=field_records,
        categories=FIELD_CATEGORIES,
        description="clumpdet simulated blended fields: stars and galaxies (GalSim)",
        psf_band="reference",
        objects="number of simulated objects (incl. unlabelled)",
        tables=partial(_write_objects, bands=tuple(cfg.image.bands)),
    )


def _write_objects(
    root: Path, per_image: list[tuple[list[dict[str, Any]], Any]], *, bands: tuple[str, ...]
) -> None:
    """``objects.csv``: every object, with the id of its annotation (-1 when unlabelled)."""
    objects = []
    for anns, rows in per_image:
        by_object = {a["object_id"]: a["id"] for a in anns}
        for r in rows:
            r["annotation_id"] = by_object.get(r["object_id"], -1)
            objects.append(r)
    cols = [*OBJECT_COLUMNS[:5], *(f"mag_{b}" for b in bands), *OBJECT_COLUMNS[5:]]
    df = pd.DataFrame(objects).reindex(columns=cols)
    with atomic_path(root / "objects.csv") as p:
        df.to_csv(p, index=False, float_format="%.6g")


def read_objects(sim_dir: str | Path) -> pd.DataFrame:
    """Read a field simulation's ``objects.csv`` (every object, labelled or not).

    Raises
    ------
    InputError
        When the file is missing or lacks the required columns.
    """
    path = Path(sim_dir)
    path = path / "objects.csv" if path.is_dir() else path.with_name("objects.csv")
    if not path.is_file():
        raise InputError(path, "missing: not a clumpdet field simulation (no objects.csv)")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(path, f"unreadable CSV ({exc})") from None
    missing = [c for c in OBJECT_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(path, f"missing columns {missing}")
    df["labelled"] = df["labelled"].astype(bool)
    return df
