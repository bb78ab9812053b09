"""Readers, stretches, preprocessing, augmentation and datasets.

Names are imported lazily so that ``import clumpdet.data`` stays light: torch is imported only
when :class:`DetectionDataset` (or the other dataset helpers) is first used, albumentations
only with the augmentation helpers.
"""

from __future__ import annotations

from clumpdet.utils import lazy_exports

_LAZY = {
    # images / FITS
    "ImageData": "clumpdet.data.images",
    "read_image": "clumpdet.data.images",
    "select_bands": "clumpdet.data.images",
    "apply_nan_policy": "clumpdet.data.images",
    "read_fits": "clumpdet.data.fits",
    "write_image_fits": "clumpdet.data.fits",
    "make_wcs": "clumpdet.data.fits",
    # labels and COCO
    "LABEL_COLUMNS": "clumpdet.data.labels",
    "read_labels_csv": "clumpdet.data.labels",
    "write_labels_csv": "clumpdet.data.labels",
    "labels_to_targets": "clumpdet.data.labels",
    "load_coco": "clumpdet.data.coco",
    "write_coco": "clumpdet.data.coco",
    "CLUMP_CATEGORIES": "clumpdet.data.coco",
    # stretches and preprocessing
    "STRETCHES": "clumpdet.data.stretch",
    "apply_stretch": "clumpdet.data.stretch",
    "list_stretches": "clumpdet.data.stretch",
    "Preprocessing": "clumpdet.data.preprocessing",
    # augmentation
    "bbox_params": "clumpdet.data.augment",
    "build_augmentation": "clumpdet.data.augment",
    "build_eval_augmentation": "clumpdet.data.augment",
    "apply_augmentation": "clumpdet.data.augment",
    # datasets
    "DetectionDataset": "clumpdet.data.dataset",
    "detection_collate": "clumpdet.data.dataset",
    "split_ids": "clumpdet.data.dataset",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
