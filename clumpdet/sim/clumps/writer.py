"""Write simulated clumpy-galaxy data sets to disk (FITS + COCO + label CSV + config).

Layout of ``out`` (docs/conventions.md)::

    images/000000.fits ...   (C, H, W) cubes in nanomaggies with WCS, bands, PIXSCALE, PSF, noise
    annotations.json         COCO; categories clump / odd_clump; per annotation flux_ratio, snr,
                             flux {band: nanomaggies}, kind
    labels.csv               local_ids,label,x1,y1,x2,y2 (local_ids = COCO image id)
    config.yaml              resolved ClumpSimConfig plus a ``_run_`` block (kind, seed, n, version)
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

from clumpdet.data.coco import CLUMP_CATEGORIES
from clumpdet.data.labels import write_labels_csv
from clumpdet.sim.clumps.config import ClumpSimConfig, validate_sim_config
from clumpdet.sim.clumps.scene import ClumpScene, simulate_clump_scene
from clumpdet.sim.run import (
    check_run_args,
    map_images,
    render_detection_image,
    write_detection_set,
)

#: Comment of the FITS ``NOBJ`` card.
_NOBJ = "number of labelled objects (truth boxes)"


def scene_records(
    scene: ClumpScene, *, file_name: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """COCO image record and annotations (without ``id``) of one scene.

    Parameters
    ----------
    scene : ClumpScene
        A simulated scene.
    file_name : str
        Image path relative to the data set root.

    Returns
    -------
    image : dict
        ``id, file_name, width, height, bands, psf_fwhm`` (r band, arcsec) plus ``pixel_scale``,
        ``noise_sigma`` {band: nanomaggies}, ``host`` (magnitude, size, shape).
    annotations : list of dict
        ``image_id, category_id, bbox [x, y, w, h], area, iscrowd, flux_ratio, snr, flux, kind``
        plus ``centre [x, y]``, ``hlr`` (arcsec), ``fwhm_eff`` (px).
    """
    _, c_h, c_w = scene.image.shape
    hst = scene.host
    image = {
        "id": int(scene.image_id),
        "file_name": file_name,
        "width": int(c_w),
        "height": int(c_h),
        "bands": list(scene.bands),
        "psf_fwhm": round(float(scene.psf_fwhm), 5),
        "pixel_scale": float(scene.pixel_scale),
        "noise_sigma": {b: round(float(v), 6) for b, v in scene.noise_sigma.items()},
        "host": {
            "x": round(hst.x, 3),
            "y": round(hst.y, 3),
            "mag_r": round(hst.mag_r, 4),
            "hlr": round(hst.hlr, 4),
            "axis_ratio": round(hst.axis_ratio, 4),
            "position_angle": round(hst.position_angle, 3),
            "bulge_fraction": round(hst.bulge_fraction, 4),
        },
    }
    anns = []
    for obj, box in zip(scene.objects, scene.boxes.tolist()):
        x1, y1, x2, y2 = box
        bw, bh = x2 - x1, y2 - y1
        anns.append(
            {
                "image_id": int(scene.image_id),
                "category_id": int(obj.label),
                "bbox": [x1, y1, bw, bh],
                "area": bw * bh,
                "iscrowd": 0,
                "kind": obj.kind,
                "flux_ratio": obj.flux_ratio,
                "snr": obj.snr,
                "flux": dict(obj.flux),
                "centre": [obj.x, obj.y],
                "hlr": obj.hlr,
                "fwhm_eff": obj.fwhm_eff,
            }
        )
    return image, anns


#: How :func:`~clumpdet.sim.run.render_detection_image` renders one clump image, in memory
#: (:func:`iter_scene_records`) or on disk (:func:`simulate_clumps`).
_RENDER: dict[str, Any] = {
    "simulate_scene": simulate_clump_scene,
    "records": scene_records,
    "psf_band": "r",
    "objects": _NOBJ,
}


def iter_scene_records(
    *,
    n: int,
    seed: int,
    config: ClumpSimConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Simulate images ``0 .. n-1`` of a run in memory and yield their COCO records in order
    (the records :func:`simulate_clumps` writes, without the files).

    Parameters
    ----------
    n, seed : int
        Number of images and master seed (image ``i`` uses :func:`image_seed` ``(seed, i)``).
    config : ClumpSimConfig, optional
        Defaults to ``ClumpSimConfig()``.
    workers : int, optional
        Processes; default ``os.cpu_count()``; 1 runs in this process. Output does not depend on it.
    progress : bool
        Show a tqdm bar.
    """
    cfg = validate_sim_config(config if config is not None else ClumpSimConfig())
    workers = check_run_args(n=n, seed=seed, workers=workers)
    worker = partial(render_detection_image, **_RENDER, config=cfg, seed=int(seed), root=None)
    yield from map_images(worker, n=n, workers=workers, progress=progress, desc="simulate clumps")


def simulate_clumps(
    *,
    n: int,
    seed: int,
    out: str | Path,
    config: ClumpSimConfig | None = None,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Simulate ``n`` clumpy-galaxy images with truth and write them to ``out`` atomically.

    Parameters
    ----------
    n : int
        Number of images (>= 1).
    seed : int
        Master seed. Image ``i`` is a pure function of ``(config, seed, i)``: the output does not
        depend on ``workers``, and the first ``m`` images of a run with ``n > m`` equal a run of
        ``m``.
    out : str or Path
        Output directory (layout in the module docstring); built under a temporary name and
        renamed on success.
    config : ClumpSimConfig, optional
        Defaults to ``ClumpSimConfig()`` (``configs/sim/clumps_sdss.yaml``).
    workers : int, optional
        Processes; default ``os.cpu_count()``; 1 runs in-process. Workers are started with
        ``spawn`` (forking a process that has run GalSim's OpenMP code can deadlock), so a script
        that calls this with ``workers > 1`` needs the usual ``if __name__ == "__main__":`` guard.
    overwrite : bool
        Replace a non-empty existing ``out``.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ConfigError
        ``n < 1``, a bad seed or worker count, or an invalid config.
    InputError
        ``out`` exists and is not empty and ``overwrite`` is false.
    """
    cfg = validate_sim_config(config if config is not None else ClumpSimConfig())
    return write_detection_set(
        out,
        kind="clumps",
        config=cfg,
        n=n,
        seed=seed,
        workers=workers,
        overwrite=overwrite,
        progress=progress,
        **_RENDER,
        categories=CLUMP_CATEGORIES,
        description="clumpdet simulated clumpy galaxies (GalSim)",
        tables=_write_labels,
    )


def _write_labels(root: Path, per_image: list[tuple[list[dict[str, Any]], Any]]) -> None:
    """``labels.csv``: one ``local_ids,label,x1,y1,x2,y2`` row per annotation."""
    rows = []
    for anns, _ in per_image:
        for a in anns:
            x, y, bw, bh = a["bbox"]
            rows.append((a["image_id"], a["category_id"], x, y, x + bw, y + bh))
    write_labels_csv(root / "labels.csv", rows)
