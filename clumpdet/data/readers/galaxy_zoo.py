"""Galaxy Zoo: the Kaggle challenge CSV + JPEGs, and Galaxy Zoo 2 (Hart et al. 2016) + JPEGs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from clumpdet.data.containers import ClassificationData, FileImages
from clumpdet.data.images import COLOUR_BANDS
from clumpdet.data.readers.common import (
    SOURCES,
    Missing,
    SourceArgs,
    check_labels,
    check_unique,
    csv_rows,
    find_column,
    float_block,
    ids_from_strings,
    image_files,
    need_columns,
    need_dir,
    need_file,
    read_csv,
    table_ids,
)
from clumpdet.errors import InputError
from clumpdet.tasks import gz_tree


def read_gz_kaggle(
    csv_path: str | Path,
    images_dir: str | Path,
    *,
    tol: float | None = 0.05,
    missing: Missing = "error",
) -> ClassificationData:
    """Read the Galaxy Zoo Kaggle challenge set: ``training_solutions_rev1.csv`` + JPEG folder.

    Parameters
    ----------
    csv_path : str or Path
        CSV with ``GalaxyID`` and the 37 columns ``Class1.1 ... Class11.6`` (any column order;
        extra columns ignored): cumulative vote fractions.
    images_dir : str or Path
        Folder of ``<GalaxyID>.jpg`` (424x424 RGB).
    tol : float or None
        Allowed difference between a question's sum and its parent answer
        (:func:`clumpdet.tasks.gz_tree.check_tree_consistency`); ``None`` skips the check.
    missing : {"error", "drop"}
        Missing image files are an error (default) or dropped with a warning.

    Returns
    -------
    ClassificationData
        ``task="gz_votes"``, labels (N, 37), bands ``("B", "G", "R")``, ids the GalaxyIDs,
        images a :class:`FileImages` (JPEGs read on access as (3, H, W) float32 in [0, 1]).

    Raises
    ------
    InputError
        Missing columns, repeated ids, non-numeric/NaN/out-of-range fractions, fractions
        inconsistent with the tree (naming the line, GalaxyID and question), missing images.
    """
    csv_path = need_file(csv_path, "label file")
    images_dir = need_dir(images_dir)
    df = read_csv(csv_path, str_columns=("GalaxyID",))
    need_columns(df, ("GalaxyID", *gz_tree.ANSWER_NAMES), csv_path)
    id_text, ids, row = table_ids(df, "GalaxyID", csv_path)
    labels = float_block(df, gz_tree.ANSWER_NAMES, csv_path, row)
    check_labels(
        labels, task="gz_votes", names=gz_tree.ANSWER_NAMES, source=csv_path, row=row, tol=tol
    )
    paths, keep = image_files([f"{i}.jpg" for i in id_text], images_dir, csv_path, missing=missing)
    return _gz_votes_data(paths, keep, labels=labels, ids=ids, source=csv_path)


def read_gz2(
    hart16_csv: str | Path,
    mapping_csv: str | Path,
    images_dir: str | Path,
    *,
    tol: float | None = 0.05,
    missing: Missing = "error",
) -> ClassificationData:
    """Read Galaxy Zoo 2: ``gz2_hart16.csv`` + ``gz2_filename_mapping.csv`` + JPEG folder.

    The 37 ``*_debiased`` columns (Hart et al. 2016) are *per-question* fractions. Each
    question's answers are renormalised to sum to 1 (or left at 0 when nobody answered it) and
    multiplied by the parent answer (:func:`clumpdet.tasks.gz_tree.normalise`), giving
    Kaggle-style cumulative fractions in :data:`~clumpdet.tasks.gz_tree.ANSWER_NAMES` order
    (GZ2 task ``tNN`` is Kaggle ``ClassNN``; see :data:`~clumpdet.tasks.gz_tree.GZ2_COLUMNS`).

    Parameters
    ----------
    hart16_csv : str or Path
        Needs ``dr7objid`` (or ``objid``) and the 37 ``<stem>_debiased`` columns; the matching
        ``<stem>_count`` columns, when all present, become :attr:`ClassificationData.counts`.
    mapping_csv : str or Path
        ``objid, sample, asset_id``: the image of ``objid`` is ``<asset_id>.jpg``. An objid
        listed more than once uses its first row.
    images_dir : str or Path
        Folder of the JPEGs.
    tol : float or None
        A question whose debiased answers sum to neither ~0 nor ~1 (within ``tol``) is an error;
        ``None`` skips the check.
    missing : {"error", "drop"}
        Missing image files are an error (default) or dropped with a warning. Galaxies with no
        mapping row are always dropped with a warning.

    Returns
    -------
    ClassificationData
        ``task="gz_votes"``, labels (N, 37) cumulative fractions, optional counts (N, 37),
        ids the dr7objids, bands ``("B", "G", "R")``, images a :class:`FileImages`.

    Raises
    ------
    InputError
        Missing columns, NaN fractions in answered questions, fractions outside [0, 1] or
        questions that do not sum to 1, no galaxy with a mapping, missing images.
    """
    hart = need_file(hart16_csv, "GZ2 table")
    mapping = need_file(mapping_csv, "filename mapping")
    images_dir = need_dir(images_dir)
    head = read_csv(hart, nrows=0).columns.tolist()
    id_col = find_column(head, "dr7objid") or find_column(head, "objid")
    if id_col is None:
        raise InputError(hart, "no 'dr7objid' (or 'objid') column")
    df = read_csv(hart, str_columns=(id_col,))
    frac_cols, count_cols = [], []
    for stem in gz_tree.GZ2_COLUMNS:
        frac_cols.append(find_column(df.columns, f"{stem}_debiased") or f"{stem}_debiased")
        count_cols.append(find_column(df.columns, f"{stem}_count"))
    need_columns(df, frac_cols, hart)
    if df.empty:
        raise InputError(hart, "no rows")
    mp = read_csv(mapping, str_columns=("objid", "asset_id"))
    need_columns(mp, ("objid", "asset_id"), mapping)
    mp = mp.dropna(subset=["objid", "asset_id"])
    asset = dict(
        zip(mp["objid"].str.strip()[::-1], mp["asset_id"].str.strip()[::-1])
    )  # reversed: the first row of a repeated objid wins
    obj_text = df[id_col].fillna("").str.strip().tolist()
    has_map = np.array([o in asset for o in obj_text], dtype=bool)
    if not has_map.any():
        raise InputError(
            mapping, f"none of the {len(df)} {id_col} values of {hart.name} are mapped"
        )
    if not has_map.all():
        warnings.warn(
            f"{mapping}: {int((~has_map).sum())} of {len(df)} galaxies have no asset_id; dropped",
            stacklevel=2,
        )
    lines = np.flatnonzero(has_map) + 2
    df = df[has_map].reset_index(drop=True)
    obj_text = [o for o, k in zip(obj_text, has_map) if k]
    ids = ids_from_strings(obj_text)
    check_unique(ids, hart, id_col)
    row = csv_rows(obj_text, id_col, lines)
    per_q = float_block(df, frac_cols, hart, row).astype(np.float64)
    counts = None
    if all(c is not None for c in count_cols):
        counts = float_block(df, count_cols, hart, row)
    slices = gz_tree.question_slices()
    for q, sl in slices.items():
        block = per_q[:, sl]
        nan = np.isnan(block)
        if counts is not None:  # unanswered question: NaN fractions are just "no votes"
            unanswered = np.nan_to_num(counts[:, sl]).sum(axis=1) == 0
            block[nan & unanswered[:, None]] = 0.0
            nan = np.isnan(block)
        if nan.any():
            r, c = np.argwhere(nan)[0]
            raise InputError(hart, f"{row(int(r))}: {frac_cols[sl.start + c]} is NaN")
        if ((block < 0) | (block > 1 + 1e-6)).any():
            r, c = np.argwhere((block < 0) | (block > 1 + 1e-6))[0]
            raise InputError(
                hart,
                f"{row(int(r))}: {frac_cols[sl.start + c]} = {block[r, c]:g} is outside [0, 1]",
            )
        total = block.sum(axis=1)
        if tol is not None:
            wrong = (total > tol) & (np.abs(total - 1.0) > tol)
            if wrong.any():
                r = int(np.argmax(wrong))
                raise InputError(
                    hart,
                    f"{row(r)}: vote fractions inconsistent with the Galaxy Zoo tree: question "
                    f"{q} ({gz_tree.QUESTIONS[q - 1].text}) debiased answers sum to "
                    f"{total[r]:.3f}, expected 1 (or 0 if unanswered; tolerance {tol}; "
                    f"{int(wrong.sum())} row(s) affected)",
                )
        per_q[:, sl] = block
    labels = gz_tree.normalise(per_q, method="sum").astype(np.float32)
    check_labels(labels, task="gz_votes", names=gz_tree.ANSWER_NAMES, source=hart, row=row)
    names = [f"{asset[o]}.jpg" for o in obj_text]
    paths, keep = image_files(names, images_dir, mapping, missing=missing)
    counts = None if counts is None else np.nan_to_num(counts)
    return _gz_votes_data(
        paths, keep, labels=labels, ids=ids, source=(hart, mapping), counts=counts
    )


def _gz_votes_data(
    paths: list[Path],
    keep: np.ndarray,
    *,
    labels: np.ndarray,
    ids: np.ndarray,
    source: Path | tuple[Path, ...],
    counts: np.ndarray | None = None,
) -> ClassificationData:
    """Galaxy Zoo vote fractions (N, 37) of the rows ``keep`` with JPEGs ``paths`` (RGB)."""
    return ClassificationData(
        images=FileImages(paths),
        labels=labels[keep],
        task="gz_votes",
        label_names=gz_tree.ANSWER_NAMES,
        bands=COLOUR_BANDS,
        ids=ids[keep],
        source=source,
        counts=None if counts is None else counts[keep],
    )


@SOURCES.register("gz_kaggle", help="Galaxy Zoo Kaggle training_solutions_rev1.csv + JPEGs")
def _load_kaggle(args: SourceArgs) -> ClassificationData:
    args.need("csv", "images_dir")
    args.refuse("id_column", "image_pattern", "image_bands", "split_column")
    return read_gz_kaggle(args.csv, args.images_dir, missing=args.missing)  # type: ignore[arg-type]


@SOURCES.register("gz2", help="Galaxy Zoo 2 gz2_hart16.csv + filename mapping + JPEGs")
def _load_gz2(args: SourceArgs) -> ClassificationData:
    args.need("csv", "mapping", "images_dir")
    args.refuse("id_column", "image_pattern", "image_bands", "split_column")
    return read_gz2(
        args.csv,  # type: ignore[arg-type]
        args.mapping,  # type: ignore[arg-type]
        args.images_dir,  # type: ignore[arg-type]
        missing=args.missing,
    )
