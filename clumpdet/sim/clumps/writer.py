"""Write simulated clumpy-galaxy data sets to disk (FITS + COCO + label CSV + config).

Layout of ``out`` (docs/conventions.md)::

    images/000000.fits ...   (C, H, W) cubes in nanomaggies with WCS, bands, PIXSCALE, PSF, noise
    annotations.json         COCO; categories clump / odd_clump; per annotation flux_ratio, snr,
                             flux {band: nanomaggies}, kind
    labels.csv               local_ids,label,x1,y1,x2,y2 (local_ids = COCO image id)
    config.yaml              resolved ClumpSimConfig plus a ``_run_`` block (kind, seed, n, version)
    colour/                  only with ``render.colour: true`` (the colour-set CONTRACT below)

Colour-set contract (``render.colour: true``; ``configs/sim/clumps_sdss_colour.yaml``)
--------------------------------------------------------------------------------------
``DIR/colour/`` is a complete detection set of the same scenes as the volunteers saw them:

* ``colour/images/NNNNNN.jpg`` (or ``.png`` with ``render.format: png``): 8-bit RGB, red = i,
  green = r, blue = g, Lupton et al. (2004) asinh (:mod:`clumpdet.sim.colour`), ``render.size``
  (424) px framed per galaxy as the GZ2 cutouts (``render.frame_r90`` (0.02) x the host's
  Petrosian R90 arcsec per pixel), JPEG quality ``render.quality`` (75);
* ``colour/annotations.json``: COCO with the **same image ids** as ``DIR/annotations.json``;
  boxes in the colour image's pixel frame (the FITS boxes mapped by the frame's scale and shift,
  clipped; objects whose centre falls outside the colour frame are dropped); per annotation
  the FITS-set truth (``kind, flux_ratio, snr, flux, hlr, fwhm_eff``) plus ``centre`` in colour
  pixels; per image ``bands: [i, r, g]`` (channel order), ``pixel_scale`` (arcsec per colour
  pixel) and ``frame`` (``x0, y0, zoom``: colour pixel ``u = (x_fits - x0) / zoom``,
  ``v = size - (y_fits - y0) / zoom``; the picture shows the sky the same way up as the FITS image
  displayed with ``origin="lower"``, so its rows are flipped relative to the FITS array);
  ``info.rendering`` records the whole ``render`` config;
* ``colour/labels.csv``: Clump Scout ``local_ids,label,x1,y1,x2,y2`` in colour pixels.

Only labelled objects (clumps and odd clumps) carry boxes; unlabelled knots, neighbours and field
stars never do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from clumpdet.data.coco import CLUMP_CATEGORIES
from clumpdet.data.labels import write_labels_csv
from clumpdet.errors import ConfigError
from clumpdet.sim.clumps.config import SIM_BANDS, ClumpSimConfig, RenderConfig, validate_sim_config
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
    if hst.morphology is not None:
        image["host"].update(
            type=hst.morphology,
            r90=round(float(hst.r90), 4),
            n_knots=int(hst.n_knots),
            n_neighbours=int(hst.n_neighbours),
            n_stars=int(hst.n_stars),
        )
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
        if hst.morphology is not None:
            anns[-1].update(gr=obj.gr, ri=obj.ri)
    return image, anns


def scene_canvas(scene: ClumpScene) -> SimpleNamespace:
    """The canvas the colour writer frames: the realistic scene's own, or (smooth population)
    the FITS frame itself with R90 = 2.3 disk half-light radii."""
    if scene.canvas is not None:
        return scene.canvas
    missing = [b for b in SIM_BANDS if b not in scene.bands]
    if missing:
        raise ConfigError(
            f"render.colour needs the g, r and i bands in image.bands; {missing} missing"
        )
    from clumpdet.sim.hosts import R90_R50_DISK

    idx = [scene.bands.index(b) for b in SIM_BANDS]
    return SimpleNamespace(
        cube=scene.image[idx],
        origin=(0, 0),
        sigma=np.array([scene.noise_sigma[b] for b in SIM_BANDS]),
        host_xy=(scene.host.x, scene.host.y),
        r90=R90_R50_DISK * scene.host.hlr,
    )


def colour_records(
    scene: ClumpScene, *, file_name: str, render: RenderConfig
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """FITS-set records of a scene plus its colour rendering (the ``colour/`` contract above).

    Returns
    -------
    image, annotations : dict, list of dict
        As :func:`scene_records`.
    colour : dict
        ``data`` (encoded image bytes), ``image`` (COCO image record) and ``annotations``
        (colour-frame COCO annotations without ``id``).
    """
    from clumpdet.sim import colour as col

    image, anns = scene_records(scene, file_name=file_name)
    cv = scene_canvas(scene)
    frame = col.gz2_frame(
        cx=cv.host_xy[0],
        cy=cv.host_xy[1],
        r90_arcsec=cv.r90,
        pixel_scale=scene.pixel_scale,
        size=render.size,
        frame_r90=render.frame_r90,
    )
    rng = np.random.default_rng([int(scene.image_id), 0xC0102])
    stretch = {
        "scales": render.scales,
        "stretch": render.stretch,
        "q": render.q,
        "minimum": render.minimum,
    }
    if render.native_quality:
        # the survey's native-scale colour JPEG, then resampled into the GZ2 frame
        big, nframe = col.pad_to_frame(
            np.asarray(cv.cube, dtype=np.float64), frame, sigma=cv.sigma, rng=rng
        )
        native = col.native_jpeg(big, **stretch, quality=render.native_quality)
        pic = col.resample(native, nframe, fill_sigma=np.zeros(3), rng=rng, smooth=render.smooth)
        rgb = np.clip(np.rint(pic), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    else:
        cube = col.resample(
            np.asarray(cv.cube, dtype=np.float64),
            frame,
            fill_sigma=cv.sigma,
            rng=rng,
            smooth=render.smooth,
        )
        rgb = col.lupton_rgb(dict(zip(SIM_BANDS, cube)), **stretch)
    data = (
        col.encode_jpeg(rgb, quality=render.quality)
        if render.format == "jpg"
        else (col.encode_png(rgb))
    )
    ox, oy = cv.origin
    cname = "images/" + Path(file_name).stem + "." + render.format
    c_image = {
        "id": image["id"],
        "file_name": cname,
        "width": render.size,
        "height": render.size,
        "bands": list(col.RGB_BANDS),
        "pixel_scale": round(frame.zoom * scene.pixel_scale, 6),
        "frame": {"x0": frame.x0 - ox, "y0": frame.y0 - oy, "zoom": frame.zoom},
        "psf_fwhm": image["psf_fwhm"],
        "host": image["host"],
    }
    c_anns = []
    for a, box in zip(anns, scene.boxes.tolist()):
        cx, cy = frame.to_colour(a["centre"][0] + ox, a["centre"][1] + oy)
        if not (0.0 <= cx < render.size and 0.0 <= cy < render.size):
            continue
        b = frame.box(np.array([[box[0] + ox, box[1] + oy, box[2] + ox, box[3] + oy]]))[0]
        x1, y1, x2, y2 = (float(v) for v in b)
        c_anns.append(
            {
                **a,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": (x2 - x1) * (y2 - y1),
                "centre": [float(cx), float(cy)],
            }
        )
    return image, anns, {"data": data, "image": c_image, "annotations": c_anns}


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
    render = dict(_RENDER)
    tables = _write_labels
    if cfg.render.colour:
        render["records"] = partial(colour_records, render=cfg.render)
        tables = partial(_write_colour_set, render=cfg.render, seed=int(seed), n=int(n))
    return write_detection_set(
        out,
        kind="clumps",
        config=cfg,
        n=n,
        seed=seed,
        workers=workers,
        overwrite=overwrite,
        progress=progress,
        **render,
        categories=CLUMP_CATEGORIES,
        description="clumpdet simulated clumpy galaxies (GalSim)",
        tables=tables,
    )


def _write_labels(root: Path, per_image: list[tuple[list[dict[str, Any]], Any]]) -> None:
    """``labels.csv``: one ``local_ids,label,x1,y1,x2,y2`` row per annotation."""
    rows = []
    for anns, _ in per_image:
        for a in anns:
            x, y, bw, bh = a["bbox"]
            rows.append((a["image_id"], a["category_id"], x, y, x + bw, y + bh))
    write_labels_csv(root / "labels.csv", rows)


def _write_colour_set(
    root: Path,
    per_image: list[tuple[list[dict[str, Any]], Any]],
    *,
    render: RenderConfig,
    seed: int,
    n: int,
) -> None:
    """``labels.csv`` of the FITS set and the whole ``colour/`` set (module docstring)."""
    from clumpdet.data.coco import write_coco
    from clumpdet.sim.run import coco_info

    _write_labels(root, per_image)
    cdir = root / "colour"
    (cdir / "images").mkdir(parents=True)
    images, anns, rows = [], [], []
    for _, extra in per_image:
        (cdir / extra["image"]["file_name"]).write_bytes(extra["data"])
        images.append(extra["image"])
        for a in extra["annotations"]:
            a = {"id": len(anns) + 1, **a}
            anns.append(a)
            x, y, bw, bh = a["bbox"]
            rows.append((a["image_id"], a["category_id"], x, y, x + bw, y + bh))
    info = coco_info("clumpdet simulated clumpy galaxies, gri colour (GalSim)", seed=seed, n=n)
    info["rendering"] = {
        **dataclasses.asdict(render),
        "channels": {"red": "i", "green": "r", "blue": "g"},
        "stretch_function": "astropy.visualization.make_lupton_rgb (Lupton et al. 2004)",
    }
    write_coco(
        cdir / "annotations.json",
        images=images,
        annotations=anns,
        categories=CLUMP_CATEGORIES,
        info=info,
    )
    write_labels_csv(cdir / "labels.csv", rows)
