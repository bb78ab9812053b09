"""Readers of galaxy-classification data, one module per format, behind one :func:`load_data`.

Every reader returns a :class:`~clumpdet.data.containers.ClassificationData`; the sources
(config ``data.source``) are registered in :data:`SOURCES`.

=================  ===============================================================================
source             files (module)
=================  ===============================================================================
deepmerge_fits     HLSP FITS: primary HDU (N, 3|2, 75, 75) float64 + BINTABLE ``MergerLabel``
                   (Ciprijanovic et al. 2020; :mod:`~clumpdet.data.readers.deepmerge`)
deepmerge_npy      images .npy (N, C, H, W) or (N, H, W, C) + labels .npy (N,) 0/1
gz_kaggle          ``training_solutions_rev1.csv`` (GalaxyID, Class1.1 ... Class11.6) + JPEGs
                   (Willett et al. 2013; :mod:`~clumpdet.data.readers.galaxy_zoo`)
gz2                ``gz2_hart16.csv`` (37 ``*_debiased``) + ``gz2_filename_mapping.csv`` + JPEGs
                   (Hart et al. 2016)
four_class_npz     npz: images (N, 128, 128, 3) + one-hot labels (N, 4)
                   (:mod:`~clumpdet.data.readers.four_class`)
candels            CSV with 5 vote fractions + one FITS cutout per galaxy or one per band
                   (Huertas-Company et al. 2015; :mod:`~clumpdet.data.readers.candels`)
folder             any CSV with label columns + FITS/PNG/JPEG files, any task
                   (:mod:`~clumpdet.data.readers.folder`)
sim_dir            ``images.npy`` + ``labels.csv`` written by ``clumpdet simulate``
                   (:mod:`~clumpdet.data.readers.sim_dir`)
=================  ===============================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clumpdet.data.containers import ClassificationData
from clumpdet.data.readers import candels, deepmerge, folder, four_class, galaxy_zoo, sim_dir
from clumpdet.data.readers.candels import read_candels_csv
from clumpdet.data.readers.common import SOURCES, Missing, SourceArgs
from clumpdet.data.readers.deepmerge import read_deepmerge_fits, read_deepmerge_npy
from clumpdet.data.readers.folder import read_image_folder
from clumpdet.data.readers.four_class import read_four_class_npz
from clumpdet.data.readers.galaxy_zoo import read_gz2, read_gz_kaggle
from clumpdet.data.readers.sim_dir import read_sim_dir
from clumpdet.errors import ConfigError

__all__ = [
    "SOURCES",
    "SourceArgs",
    "candels",
    "deepmerge",
    "folder",
    "four_class",
    "galaxy_zoo",
    "load_data",
    "read_candels_csv",
    "read_deepmerge_fits",
    "read_deepmerge_npy",
    "read_four_class_npz",
    "read_gz2",
    "read_gz_kaggle",
    "read_image_folder",
    "read_sim_dir",
    "sim_dir",
]


def load_data(
    *,
    source: str,
    path: str | Path | None = None,
    labels: str | Path | None = None,
    images_dir: str | Path | None = None,
    mapping: str | Path | None = None,
    label_columns: Sequence[str] = (),
    task: str | None = None,
    id_column: str | None = None,
    image_pattern: str | None = None,
    image_bands: Sequence[str] = (),
    missing: Missing = "error",
    split_column: str | None = None,
) -> ClassificationData:
    """Read the data of ``source`` (a :data:`SOURCES` name) from config-style arguments.

    =================  ===================================================================
    source             arguments
    =================  ===================================================================
    deepmerge_fits     ``path`` (HLSP FITS)
    deepmerge_npy      ``path`` (images .npy), ``labels`` (labels .npy)
    gz_kaggle          ``labels`` or ``path`` (CSV), ``images_dir``
    gz2                ``labels`` or ``path`` (hart16 CSV), ``mapping``, ``images_dir``
    four_class_npz     ``path``
    candels            ``labels`` or ``path`` (CSV), ``images_dir``; optional
                       ``label_columns`` (5), ``id_column`` (``ID``), ``image_pattern``
                       (``{id}.fits``), ``image_bands``
    folder             ``labels`` or ``path`` (CSV), ``images_dir``, ``label_columns``,
                       ``task``; optional ``id_column`` (``id``), ``image_pattern``
                       (``{id}``), ``image_bands``
    sim_dir            ``path``, ``task``
    =================  ===================================================================

    ``missing`` applies to the sources with image files (gz_kaggle, gz2, candels, folder);
    ``split_column`` to those with a label table of one row per galaxy (candels, folder,
    sim_dir).

    Raises
    ------
    ConfigError
        Unknown source, a required argument missing, or one the source does not use.
    InputError
        From the readers.
    """
    args = SourceArgs(
        source=source,
        path=path,
        labels=labels,
        images_dir=images_dir,
        mapping=mapping,
        label_columns=tuple(label_columns or ()),
        task=task,
        id_column=id_column,
        image_pattern=image_pattern,
        image_bands=tuple(image_bands or ()),
        missing=missing,
        split_column=split_column,
    )
    if source not in SOURCES:
        raise ConfigError(f"unknown data source {source!r}; choose from {', '.join(SOURCES)}")
    return SOURCES.get(source)(args)
