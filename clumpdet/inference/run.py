"""``clumpdet detect``: images in, catalogue + COCO results (+ overlays) out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from clumpdet.data.images import RASTER_SUFFIXES
from clumpdet.detections import coco_results
from clumpdet.errors import ConfigError, InputError, NoDetectionsWarning
from clumpdet.inference.catalogue import CATALOGUE_FORMATS, build_catalogue, write_catalogue
from clumpdet.inference.predictor import Predictor


def check_input_kind(
    paths: Sequence[str | Path], trained: Mapping[str, str], checkpoint: str | Path
) -> None:
    """Refuse images of another kind than the model's training input.

    FITS (physical units) and PNG/JPEG (8-bit display values) are the two kinds; PNG and JPEG
    count as one. A checkpoint whose input is ``"unknown"`` (older checkpoints) accepts both.

    Parameters
    ----------
    paths : sequence of path
        The images to detect on.
    trained : mapping
        The checkpoint's ``input`` record (``DetectorBundle.input``): ``kind``, ``unit``.
    checkpoint : path
        The checkpoint, for the message.

    Raises
    ------
    InputError
        The first image of the other kind, in one line: the file, what it is, what the model
        was trained on, and the opt-in that overrides it.
    """
    if trained["kind"] == "unknown":
        return
    trained_raster = trained["kind"] in ("png", "jpeg")
    for path in paths:
        raster = Path(path).suffix.lower() in RASTER_SUFFIXES
        if raster != trained_raster:
            what = "a PNG/JPEG image (8-bit display values)" if raster else "a FITS image"
            unit = f" ({trained['unit']})" if trained["unit"] else ""
            raise InputError(
                path,
                f"is {what} but {checkpoint} was trained on {trained['kind']} images{unit}; "
                "pass --allow-input-mismatch (allow_input_mismatch=True) to detect anyway",
            )


def coco_results_path(catalogue: str | Path) -> Path:
    """Where ``detect`` writes the COCO results next to a catalogue (``<stem>_coco.json``)."""
    catalogue = Path(catalogue)
    return catalogue.with_name(f"{catalogue.stem}_coco.json")


def _resolve_inputs(
    images: Sequence[str | Path] | None, coco: str | Path | None
) -> tuple[list[Path], list[int], dict[str, Any] | None]:
    from clumpdet.data.coco import load_coco

    if coco is None:
        if not images:
            raise ConfigError("detect: give image files, or --coco ANNOTATIONS.json")
        return [Path(p) for p in images], list(range(len(images))), None
    doc = load_coco(coco)
    root = Path(doc["_root"])
    by_path = {(root / im["file_name"]).resolve(): int(im["id"]) for im in doc["images"]}
    if not images:
        paths = [root / im["file_name"] for im in doc["images"]]
        return paths, [int(im["id"]) for im in doc["images"]], doc
    ids = []
    for p in images:
        iid = by_path.get(Path(p).resolve())
        if iid is None:
            raise InputError(p, f"is not listed in {coco}")
        ids.append(iid)
    return [Path(p) for p in images], ids, doc


def _stack(parts: list) -> Any:
    """One catalogue from per-chunk catalogues (their metadata kept from the first)."""
    from astropy.table import vstack

    nonempty = [p for p in parts if len(p)] or parts[:1]
    if len(nonempty) == 1:
        return nonempty[0]
    table = vstack(nonempty, join_type="exact", metadata_conflicts="silent")
    table.meta.update(parts[0].meta)
    return table


def run_detection(
    *,
    checkpoint: str | Path,
    out: str | Path,
    images: Sequence[str | Path] | None = None,
    coco: str | Path | None = None,
    score_threshold: float | None = None,
    batch_size: int = 8,
    tile_overlap: int = 48,
    overlays: str | Path | None = None,
    max_overlays: int = 50,
    device: str = "cpu",
    progress: bool = True,
    allow_input_mismatch: bool = False,
    pixel_scale: float | str | None = None,
    central_host: bool | None = None,
    nucleus_exclusion: float | None = None,
) -> dict[str, Any]:
    """Detect clumps (or sources) in images and write a catalogue plus COCO results.

    Parameters
    ----------
    checkpoint : path
        A detector checkpoint (``RUNDIR/model.pt``).
    out : path
        Catalogue file; ``.fits``, ``.parquet`` or ``.csv``; its columns follow the checkpoint's
        detection kind. COCO results (every detection down to the model's ``min_score``, for
        AP) go to ``<stem>_coco.json`` beside it (:func:`clumpdet.data.coco.write_predictions`).
    images : sequence of path, optional
        FITS/PNG/JPEG files. With ``coco`` too, their COCO image ids are looked up there.
    coco : path, optional
        COCO annotations listing the images (all of them when ``images`` is empty); image ids
        then match the truth so ``clumpdet evaluate`` scores the results directly.
    score_threshold : float, optional
        Catalogue cut; default the checkpoint's operating threshold (0.3).
    batch_size, tile_overlap : int
        Inference batch and tile overlap (pixels) for images larger than the training size.
    overlays : path, optional
        Folder for overlay PNGs (the first ``max_overlays`` images), each shown the right way
        up: PNG/JPEG with row 0 at the top, FITS with row 0 at the bottom.
    device : str
        ``"cpu"`` or ``"cuda"``.
    progress : bool
        Show a progress bar.
    allow_input_mismatch : bool
        Detect on images of another kind than the model was trained on (PNG/JPEG for a
        FITS-trained model or the reverse); refused otherwise (:func:`check_input_kind`).
    pixel_scale : float or "model", optional
        Arcsec/pixel of every input (overrides the WCS), or ``"model"`` to run inputs as they
        are. By default each FITS input's scale is read from its WCS and the image resampled
        to the model's scale; a FITS file without a WCS is refused
        (:class:`~clumpdet.inference.predictor.Predictor`).
    central_host : bool, optional
        Keep only detections on the central galaxy of each (per-galaxy) cutout
        (:mod:`clumpdet.inference.footprint`); default the checkpoint's ``model.central_host``.
    nucleus_exclusion : float, optional
        With ``central_host``, also drop boxes centred on the central galaxy's nucleus (within
        this fraction of their side); default the checkpoint's ``model.nucleus_exclusion``.

    Returns
    -------
    dict
        Summary: counts and output paths.

    Raises
    ------
    InputError
        Unknown catalogue format, images not in ``coco``, or (without
        ``allow_input_mismatch``) images of another kind than the training input.
    """
    from clumpdet.data.coco import write_predictions

    out = Path(out)
    if out.suffix.lower() not in CATALOGUE_FORMATS:
        raise InputError(out, f"unknown catalogue format; use one of {sorted(CATALOGUE_FORMATS)}")
    predictor = Predictor.from_checkpoint(
        checkpoint,
        batch_size=batch_size,
        tile_overlap=tile_overlap,
        device=device,
        pixel_scale=pixel_scale,
        require_pixel_scale=True,
        central_host=central_host,
        nucleus_exclusion=nucleus_exclusion,
    )
    bundle = predictor.bundle
    threshold = bundle.model_config.score_threshold if score_threshold is None else score_threshold
    paths, ids, truth = _resolve_inputs(images, coco)
    if not allow_input_mismatch:
        check_input_kind(paths, bundle.input, checkpoint)
    # stream: only one chunk of images is in memory (plus the first few kept for overlays)
    chunk = max(1, 4 * batch_size)
    dets: list = []
    parts = []
    shown: list = []
    images_in_chunk: list = []
    keep_overlays = max_overlays if overlays is not None else 0

    def flush() -> None:
        n0 = len(dets) - len(images_in_chunk)
        parts.append(
            build_catalogue(
                images_in_chunk,
                [d.above(threshold) for d in dets[n0:]],
                class_names=bundle.class_names,
                image_ids=ids[n0 : len(dets)],
                backbone=bundle.model_config.backbone.name,
                checkpoint_sha256=bundle.sha256,
                detection_kind=bundle.detection_kind,
            )
        )
        images_in_chunk.clear()

    for image, det in predictor.iter_files(paths, progress=progress):
        dets.append(det)
        images_in_chunk.append(image)
        if len(shown) < keep_overlays:
            shown.append(image)
        if len(images_in_chunk) >= chunk:
            flush()
    if images_in_chunk or not parts:
        flush()
    table = _stack(parts)
    cut = [d.above(threshold) for d in dets]
    table.meta["SCORETHR"] = float(threshold)
    table.meta["CKPTSHA"] = bundle.sha256
    table.meta["INPUT"] = f"{bundle.input['kind']} ({bundle.input['unit'] or 'no unit'})"
    coco_out = write_predictions(coco_results_path(out), coco_results(dets, ids))
    write_catalogue(table, out)
    if overlays is not None:
        from clumpdet.inference.overlay import plot_overlay

        truth_by_id: dict[int, list] = {}
        if truth is not None:
            for a in truth["annotations"]:
                x, y, w, h = a["bbox"]
                truth_by_id.setdefault(int(a["image_id"]), []).append([x, y, x + w, y + h])
        for image, d, iid in list(zip(shown, cut, ids))[:max_overlays]:
            name = Path(image.path if not isinstance(image.path, tuple) else image.path[0]).stem
            plot_overlay(
                image.data,
                Path(overlays) / f"{name}_detections.png",
                boxes=d.boxes,
                labels=d.labels,
                scores=d.scores,
                class_names=bundle.class_names,
                truth_boxes=truth_by_id.get(iid, []) if truth is not None else None,
                title=f"{name}: {len(d)} detections (score >= {threshold:.2f})",
                origin=image.origin,
                stretch=not image.is_raster,
            )
    if len(table) == 0:
        import warnings

        warnings.warn(
            f"no detections above score {threshold} in {len(paths)} image(s)",
            NoDetectionsWarning,
            stacklevel=2,
        )
    return {
        "n_images": len(paths),
        "n_detections": len(table),
        "catalogue": str(out),
        "coco_results": str(coco_out),
        "score_threshold": float(threshold),
    }
