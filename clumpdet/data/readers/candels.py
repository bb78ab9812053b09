"""CANDELS visual morphology (Huertas-Company et al. 2015): vote fractions + HST cutouts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from clumpdet.data.containers import ClassificationData
from clumpdet.data.images import NanPolicy
from clumpdet.data.readers.common import (
    SOURCES,
    Missing,
    SourceArgs,
    find_column,
    need_columns,
    need_dir,
    need_file,
    read_csv,
)
from clumpdet.data.readers.folder import folder_data
from clumpdet.errors import ConfigError, InputError
from clumpdet.tasks.candels import CANDELS_LABELS

#: Accepted CSV column names (case-insensitive) for each CANDELS label, tried in order.
CANDELS_ALIASES: dict[str, tuple[str, ...]] = {
    "spheroid": ("spheroid", "f_spheroid", "f_sph"),
    "disk": ("disk", "f_disk"),
    "irregular": ("irregular", "f_irr", "irr", "f_irregular"),
    "point_source": ("point_source", "f_ps", "ps", "f_point_source"),
    "unclassifiable": ("unclassifiable", "f_unc", "unc", "f_unclassifiable"),
}


def read_candels_csv(
    csv_path: str | Path,
    images_dir: str | Path,
    *,
    id_column: str = "ID",
    image_pattern: str = "{id}.fits",
    image_bands: Sequence[str] = (),
    columns: Sequence[str] | None = None,
    band: str = "F160W",
    nan_policy: NanPolicy = "raise",
    missing: Missing = "error",
    split_column: str | None = None,
) -> ClassificationData:
    """Read CANDELS morphology (Huertas-Company et al. 2015): vote fractions + H-band cutouts.

    Parameters
    ----------
    csv_path : str or Path
        CSV with ``id_column`` and five vote-fraction columns (spheroid, disk,
        irregular/peculiar, point source/compact, unclassifiable), each in [0, 1]; they need not
        sum to 1 (classifiers could tick several).
    images_dir : str or Path
        Folder of FITS cutouts named by ``image_pattern``.
    id_column : str
        Id column; its text (leading zeros kept) fills ``{id}`` in ``image_pattern``.
    image_pattern : str
        File name of a galaxy's cutout, e.g. ``"{id}.fits"`` or ``"cut_{id}_H.fits.gz"``; with
        ``image_bands``, of one band's stamp: ``"{id}_{band}.fits"``.
    image_bands : sequence of str
        Real CANDELS stamps come one FITS per band (``<id>_h.fits``, ``_j``, ``_v``, ``_z``):
        the values of ``{band}`` (e.g. ``("h", "j", "v", "z")``), stacked in this order and
        naming the bands.
    columns : sequence of 5 str, optional
        The five label columns in :data:`CANDELS_LABELS` order. Default: found by name
        (case-insensitive) among :data:`CANDELS_ALIASES` (``spheroid`` or ``f_spheroid`` ...).
    band : str
        Band name given to single-plane cutouts that do not name their band.
    nan_policy : {"raise", "zero", "median"}
        NaN pixels in a cutout (see :func:`clumpdet.data.images.read_image`).
    missing : {"error", "drop"}
        Missing cutouts are an error (default) or dropped with a warning.
    split_column : str, optional
        Column of ``train``/``val``/``test`` giving each galaxy's split.

    Returns
    -------
    ClassificationData
        ``task="candels"``, labels (N, 5), images a :class:`FileImages`.

    Raises
    ------
    InputError
        Missing columns, NaN or out-of-range fractions, missing cutouts, unreadable files.
    """
    csv_path = need_file(csv_path, "label file")
    images_dir = need_dir(images_dir)
    df = read_csv(csv_path, str_columns=(id_column,))
    if columns is None:
        found = []
        for name in CANDELS_LABELS:
            col = next(
                (c for a in CANDELS_ALIASES[name] if (c := find_column(df.columns, a))), None
            )
            if col is None:
                raise InputError(
                    csv_path,
                    f"no column for {name!r} (tried {', '.join(CANDELS_ALIASES[name])}); "
                    "name the five columns with columns=",
                )
            found.append(col)
        columns = found
    elif len(columns) != 5:
        raise ConfigError(f"CANDELS needs 5 label columns {CANDELS_LABELS}, got {list(columns)}")
    need_columns(df, (id_column, *columns), csv_path)
    return folder_data(
        df,
        csv_path=csv_path,
        images_dir=images_dir,
        label_columns=list(columns),
        label_names=CANDELS_LABELS,
        id_column=id_column,
        image_pattern=image_pattern,
        image_bands=image_bands,
        task="candels",
        nan_policy=nan_policy,
        missing=missing,
        split_column=split_column,
        default_bands=(band,),
    )


@SOURCES.register("candels", help="CANDELS vote-fraction CSV + FITS cutouts (one or per band)")
def _load_candels(args: SourceArgs) -> ClassificationData:
    args.need("csv", "images_dir")
    return read_candels_csv(
        args.csv,  # type: ignore[arg-type]
        args.images_dir,  # type: ignore[arg-type]
        id_column=args.id_column or "ID",
        image_pattern=args.image_pattern or "{id}.fits",
        image_bands=args.image_bands,
        columns=list(args.label_columns) or None,
        missing=args.missing,
        split_column=args.split_column,
    )
