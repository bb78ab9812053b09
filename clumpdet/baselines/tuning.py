"""Tuning and full-curve runs of the classical clump finders on simulated validation data.

A classical finder only compares like with like with the network when both are scored over
their whole precision-recall curve. :func:`sweep_config` turns a
:class:`~clumpdet.baselines.classical.ClassicalConfig` into its *sweep* form: the detection
threshold and the S/N floor drop to ``floor_snr`` (default 1.5 sigma) and each detection keeps
its monotone S/N score, so the evaluator's threshold sweep (COCO AP, purity at completeness
0.9) runs over the finder's own detection threshold.

:func:`tune_classical` then picks the box rule on a validation set (never the test set): the
finder runs once per image, and every candidate ``box_scale`` (and ``box_rule``) only rebuilds
the boxes from the stored centre and adaptive-moment FWHM, so a grid of 20 box rules costs one
finder run. The winner maximises AP50 (ties: purity at completeness 0.9).

Noise and PSF: the finder estimates the noise from the image (MAD of the host-subtracted
residual); the PSF FWHM is the survey's nominal value in the config (an instrument property),
never read from a truth file.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from clumpdet.baselines.classical import ClassicalConfig, Method, _jobs_from_truth, _read_image
from clumpdet.baselines.classical import find_clumps as _find_clumps
from clumpdet.baselines.common import JobFailure, map_images
from clumpdet.errors import ClumpdetError, ConfigError, InputError

#: Default box-scale grid (box side = scale x adaptive-moment FWHM).
DEFAULT_BOX_SCALES: tuple[float, ...] = tuple(np.round(np.arange(2.2, 4.61, 0.2), 2).tolist())


def sweep_config(
    config: ClassicalConfig | None = None, *, floor_snr: float = 1.5, max_detections: int = 200
) -> ClassicalConfig:
    """The sweep form of a finder config: detection threshold and S/N floor at ``floor_snr``.

    Parameters
    ----------
    config : ClassicalConfig, optional
        Base config (defaults if omitted).
    floor_snr : float
        Lowest detection threshold and aperture S/N kept (sigma of the filtered residual).
    max_detections : int
        Per-image cap, raised so the low-S/N end of the curve is not cut.

    Returns
    -------
    ClassicalConfig
    """
    cfg = config if config is not None else ClassicalConfig()
    if not (math.isfinite(floor_snr) and floor_snr > 0):
        raise ConfigError(f"floor_snr must be a positive number, got {floor_snr!r}")
    return dataclasses.replace(
        cfg,
        threshold=min(cfg.threshold, floor_snr),
        min_snr=min(cfg.min_snr, floor_snr),
        max_detections=max(cfg.max_detections, int(max_detections)),
    )


def boxes_for(table: Table, cfg: ClassicalConfig, shape: tuple[int, int]) -> np.ndarray:
    """Rebuild ``xyxy`` boxes of a :func:`find_clumps` table under ``cfg``'s box rule.

    Parameters
    ----------
    table : astropy.table.Table
        Output of :func:`~clumpdet.baselines.classical.find_clumps` (``x, y, fwhm``).
    cfg : ClassicalConfig
        Supplies ``box_rule``, ``box_scale``, ``box_min``, ``box_max`` and ``psf_fwhm``.
    shape : (int, int)
        Image ``(H, W)``; boxes are clipped to it.

    Returns
    -------
    ndarray, shape (N, 4)
        Boxes in pixels (COCO pixel convention), same as ``find_clumps`` would give.
    """
    x = np.asarray(table["x"], dtype=np.float64)
    y = np.asarray(table["y"], dtype=np.float64)
    fwhm = np.asarray(table["fwhm"], dtype=np.float64)
    base = fwhm if cfg.box_rule == "size" else np.full_like(x, cfg.psf_fwhm)
    side = np.clip(cfg.box_scale * base, cfg.box_min * cfg.psf_fwhm, cfg.box_max * cfg.psf_fwhm)
    h, w = shape
    boxes = np.stack([x - side / 2, y - side / 2, x + side / 2, y + side / 2], axis=1)
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0.0, float(w))
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0.0, float(h))
    return boxes


def _run_one(
    job: tuple[int, Path], *, method: str, cfg: ClassicalConfig
) -> tuple[int, Table, tuple[int, int]] | JobFailure:
    image_id, path = job
    try:
        data, bands = _read_image(path)
        table = _find_clumps(data, method=method, config=cfg, bands=bands)  # type: ignore[arg-type]
    except ClumpdetError as exc:
        return JobFailure(str(path), str(exc), input_error=True)
    return image_id, table, (int(data.shape[-2]), int(data.shape[-1]))


def run_tables(
    truth: str | Path,
    *,
    method: Method,
    config: ClassicalConfig,
    workers: int = 1,
    progress: bool = False,
) -> list[tuple[int, Table, tuple[int, int]]]:
    """Run the finder on every image of a COCO set; ``(image_id, table, (H, W))`` per image."""
    jobs = _jobs_from_truth(Path(truth))
    for _, p in jobs:
        if not p.is_file():
            raise InputError(p, "image file not found")
    return map_images(
        functools.partial(_run_one, method=method, cfg=config),
        jobs,
        workers=max(1, min(int(workers), len(jobs))),
        desc=f"classical {method}",
        progress=progress,
    )


def tables_to_results(
    tables: Sequence[tuple[int, Table, tuple[int, int]]], cfg: ClassicalConfig
) -> list[dict[str, Any]]:
    """COCO results of finder tables with boxes rebuilt under ``cfg`` (:func:`boxes_for`)."""
    out: list[dict[str, Any]] = []
    for image_id, table, shape in tables:
        if len(table) == 0:
            continue
        boxes = boxes_for(table, cfg, shape)
        for (x1, y1, x2, y2), lab, s in zip(boxes.tolist(), table["label"], table["score"]):
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(lab),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(s),
                }
            )
    return out


def tune_classical(
    val_truth: str | Path,
    *,
    method: Method,
    base: ClassicalConfig | None = None,
    box_scales: Sequence[float] = DEFAULT_BOX_SCALES,
    box_rules: Sequence[str] = ("size", "psf"),
    floor_snr: float = 1.5,
    workers: int | None = None,
    progress: bool = False,
) -> tuple[ClassicalConfig, list[dict[str, Any]]]:
    """Pick the classical finder's box rule by AP50 on a validation set, in sweep form.

    Parameters
    ----------
    val_truth : str or Path
        COCO annotations of the validation set (never the test set).
    method : {"residual", "unsharp"}
        Finder variant.
    base : ClassicalConfig, optional
        Starting config; its detection knobs are kept (in :func:`sweep_config` form).
    box_scales : sequence of float
        Candidate ``box_scale`` values.
    box_rules : sequence of {"size", "psf"}
        Candidate ``box_rule`` values.
    floor_snr : float
        Detection-threshold floor of the sweep (sigma).
    workers : int, optional
        Processes (default: ``min(2, cores)``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    best : ClassicalConfig
        The sweep config with the best ``box_rule`` / ``box_scale``.
    trials : list of dict
        ``box_rule, box_scale, AP50, AP, purity_at_completeness_0.9, completeness, purity``
        per candidate (completeness / purity at score 0.3).
    """
    from clumpdet.data.coco import load_coco
    from clumpdet.evaluation.detection import DetectionEvaluator

    cfg0 = sweep_config(base, floor_snr=floor_snr)
    n_workers = min(2, os.cpu_count() or 1) if workers is None else int(workers)
    tables = run_tables(val_truth, method=method, config=cfg0, workers=n_workers,
                        progress=progress)  # fmt: skip
    doc = load_coco(val_truth)
    trials: list[dict[str, Any]] = []
    best, best_key = cfg0, (-math.inf, -math.inf)
    for rule in box_rules:
        for scale in box_scales:
            cfg = dataclasses.replace(cfg0, box_rule=rule, box_scale=float(scale))  # type: ignore[arg-type]
            ev = DetectionEvaluator(doc, score_threshold=0.3)
            ev.process_results(tables_to_results(tables, cfg))
            m = ev.evaluate()
            p90 = m["purity_at_completeness"]["0.9"]["purity"]
            trials.append(
                {
                    "box_rule": rule,
                    "box_scale": float(scale),
                    "AP50": m["AP50"],
                    "AP": m["AP"],
                    "purity_at_completeness_0.9": p90,
                    "completeness": m["completeness"],
                    "purity": m["purity"],
                }
            )
            key = (_finite(m["AP50"]), _finite(p90))
            if key > best_key:
                best, best_key = cfg, key
    return best, trials


def _finite(v: float) -> float:
    return float(v) if v is not None and math.isfinite(v) else -math.inf
