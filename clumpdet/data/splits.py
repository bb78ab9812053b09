"""Train / validation / test splits of classification rows: stratified, or given explicitly."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clumpdet.errors import ConfigError, InputError


def _check_fractions(fractions: Sequence[float]) -> list[float]:
    fr = [float(f) for f in fractions]
    if not fr or any(not (f > 0 and math.isfinite(f)) for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be positive and sum to 1, got {list(fractions)}")
    return fr


def stratified_split(
    labels_1d: Sequence[int] | np.ndarray,
    *,
    fractions: Sequence[float] = (0.8, 0.2),
    seed: int = 0,
) -> tuple[np.ndarray, ...]:
    """Split row indices into parts with the same class mix, deterministically.

    Each class's rows are permuted with ``numpy.random.default_rng(seed)`` and cut at
    ``round(cumsum(fractions) * n_class)``, so every part gets (to within one row) its share
    of every class.

    Parameters
    ----------
    labels_1d : array-like, shape (N,)
        Class of each row (ints or strings). A 2-D array (one-hot or fractions) is reduced
        with ``argmax`` over axis 1.
    fractions : sequence of float
        E.g. ``(0.8, 0.2)`` or ``(0.7, 0.1, 0.2)``; positive, summing to 1.
    seed : int
        Random seed.

    Returns
    -------
    tuple of ndarray of int64
        Sorted row indices of each part; together they hold every row once.

    Raises
    ------
    ConfigError
        Bad fractions.
    """
    fr = _check_fractions(fractions)
    lab = np.asarray(labels_1d)
    if lab.ndim == 2:
        lab = lab.argmax(axis=1)
    if lab.ndim != 1:
        raise InputError(None, f"stratified_split: expected labels of shape (N,), got {lab.shape}")
    rng = np.random.default_rng(seed)
    cuts = np.cumsum(fr)
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for cls in np.unique(lab):
        rows = np.flatnonzero(lab == cls)
        rows = rows[rng.permutation(len(rows))]
        edges = [0, *np.round(cuts * len(rows)).astype(int).tolist()]
        edges[-1] = len(rows)
        for k in range(len(fr)):
            parts[k].append(rows[edges[k] : edges[k + 1]])
    return tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)


#: The parts of a classification split, in order.
PARTS: tuple[str, ...] = ("train", "val", "test")


def assigned_split(values: Sequence[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train / val / test row indices from a per-row assignment (``data.split_column``).

    Parameters
    ----------
    values : array-like of str, shape (N,)
        ``"train"``, ``"val"`` or ``"test"`` per row.

    Raises
    ------
    InputError
        Another value, or an empty train or test part.
    """
    v = np.asarray(values, dtype=str)
    bad = ~np.isin(v, PARTS)
    if bad.any():
        r = int(np.argmax(bad))
        raise InputError(None, f"split row {r} is {v[r]!r}, expected one of {', '.join(PARTS)}")
    parts = tuple(np.flatnonzero(v == name).astype(np.int64) for name in PARTS)
    for name, rows in zip(PARTS, parts):
        if name != "val" and not len(rows):
            raise InputError(None, f"the explicit split has no {name!r} rows")
    return parts  # type: ignore[return-value]


def read_id_list(path: str | Path) -> list[str]:
    """Ids listed in a text file, one per line (blank lines and ``#`` comments skipped)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "id list not found")
    ids = [line.split("#", 1)[0].strip() for line in p.read_text().splitlines()]
    ids = [i for i in ids if i]
    if not ids:
        raise InputError(p, "no ids listed")
    return ids


def split_by_test_ids(
    ids: np.ndarray,
    test_ids: Sequence[str],
    strata: np.ndarray,
    *,
    fractions: Sequence[float],
    seed: int,
    source: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Test rows are those whose id is in ``test_ids``; the rest split into train and val.

    Parameters
    ----------
    ids : ndarray, shape (N,)
        Row ids (compared as text with ``test_ids``).
    test_ids : sequence of str
        Ids of the test set (e.g. from :func:`read_id_list`). Listed ids that are not in
        ``ids`` are ignored with a warning (their galaxy may have been dropped).
    strata : ndarray of int, shape (N,)
        Class of each row for the stratified train/val cut.
    fractions : sequence of 3 float
        Train / val / test fractions; train and val are rescaled to share the non-test rows.
    seed : int
        Seed of the train/val cut.
    source : str or Path, optional
        The id list, for messages.
    """
    text = np.array([str(i) for i in ids])
    wanted = set(str(i) for i in test_ids)
    is_test = np.isin(text, list(wanted))
    unknown = wanted - set(text.tolist())
    if not is_test.any():
        raise InputError(source, f"none of the {len(wanted)} test ids is in the data")
    if is_test.all():
        raise InputError(source, "every galaxy is a test id: nothing left to train on")
    if unknown:
        warnings.warn(
            f"{source}: {len(unknown)} of {len(wanted)} test ids are not in the data "
            f"(e.g. {sorted(unknown)[0]}); ignored",
            stacklevel=2,
        )
    rest = np.flatnonzero(~is_test)
    fr = _check_fractions(fractions)
    train_val = [fr[0] / (fr[0] + fr[1]), fr[1] / (fr[0] + fr[1])]
    tr, va = stratified_split(np.asarray(strata)[rest], fractions=train_val, seed=seed)
    return rest[tr], rest[va], np.flatnonzero(is_test).astype(np.int64)
