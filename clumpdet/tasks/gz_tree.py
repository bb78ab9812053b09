"""The Galaxy Zoo 2 decision tree as data: 11 questions, 37 answers.

Answer order is that of the Kaggle *Galaxy Zoo - The Galaxy Challenge* file
``training_solutions_rev1.csv`` (``Class1.1`` ... ``Class11.6``), which is also the order of the
GZ2 tasks ``t01`` ... ``t11`` in ``gz2_hart16.csv`` (:data:`GZ2_COLUMNS`). Values are
*cumulative* vote fractions: the answers of a question sum to the value of its parent answer
(1 for the root questions Q1 and Q6), e.g. ``Class2.1 + Class2.2 == Class1.2``.

:func:`normalise` is Dieleman et al. (2015)'s output layer: non-negative raw outputs are
normalised within each question and multiplied by the parent answer's value. It works on numpy
arrays and (differentiably) on torch tensors.

>>> import numpy as np
>>> raw = np.ones((1, 37))
>>> out = normalise(raw)
>>> round(float(out[0, 0]), 4), round(float(out[0, 3] + out[0, 4]), 4)  # Q1.1, Q2 sums to Q1.2
(0.3333, 0.3333)
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np


class Question(NamedTuple):
    """One decision-tree question.

    Attributes
    ----------
    number : int
        1 ... 11 (Kaggle ``ClassN``).
    text : str
        Short description.
    answers : tuple of str
        Answer descriptions, in column order.
    parent : str or None
        Kaggle name of the answer that leads here (``"Class1.2"``), ``None`` for a root question.
    """

    number: int
    text: str
    answers: tuple[str, ...]
    parent: str | None


#: The 11 questions, parents as in Willett et al. (2013) / the Kaggle challenge.
QUESTIONS: tuple[Question, ...] = (
    Question(1, "smooth or features", ("smooth", "features or disk", "star or artifact"), None),
    Question(2, "edge-on", ("yes", "no"), "Class1.2"),
    Question(3, "bar", ("yes", "no"), "Class2.2"),
    Question(4, "spiral", ("yes", "no"), "Class2.2"),
    Question(5, "bulge prominence", ("none", "noticeable", "obvious", "dominant"), "Class2.2"),
    Question(6, "anything odd", ("yes", "no"), None),
    Question(7, "rounded", ("completely round", "in between", "cigar-shaped"), "Class1.1"),
    Question(
        8,
        "odd feature",
        ("ring", "lens or arc", "disturbed", "irregular", "other", "merger", "dust lane"),
        "Class6.1",
    ),
    Question(9, "edge-on bulge shape", ("rounded", "boxy", "no bulge"), "Class2.1"),
    Question(10, "arm winding", ("tight", "medium", "loose"), "Class4.1"),
    Question(11, "arm number", ("1", "2", "3", "4", "more than four", "can't tell"), "Class4.1"),
)

#: ``("Class1.1", "Class1.2", ..., "Class11.6")``: the 37 Kaggle column names, in order.
ANSWER_NAMES: tuple[str, ...] = tuple(
    f"Class{q.number}.{a}" for q in QUESTIONS for a in range(1, len(q.answers) + 1)
)

#: Number of outputs (answers).
N_ANSWERS: int = len(ANSWER_NAMES)

#: Column stems of the 37 answers in GZ2 tables (``gz2_hart16.csv``: append ``_debiased``,
#: ``_count``, ``_fraction`` ...), in :data:`ANSWER_NAMES` order. Note the GZ2 answer numbers
#: are not contiguous (``a38_dust_lane`` belongs to t08, ``a35`` does not exist).
GZ2_COLUMNS: tuple[str, ...] = (
    "t01_smooth_or_features_a01_smooth",
    "t01_smooth_or_features_a02_features_or_disk",
    "t01_smooth_or_features_a03_star_or_artifact",
    "t02_edgeon_a04_yes",
    "t02_edgeon_a05_no",
    "t03_bar_a06_bar",
    "t03_bar_a07_no_bar",
    "t04_spiral_a08_spiral",
    "t04_spiral_a09_no_spiral",
    "t05_bulge_prominence_a10_no_bulge",
    "t05_bulge_prominence_a11_just_noticeable",
    "t05_bulge_prominence_a12_obvious",
    "t05_bulge_prominence_a13_dominant",
    "t06_odd_a14_yes",
    "t06_odd_a15_no",
    "t07_rounded_a16_completely_round",
    "t07_rounded_a17_in_between",
    "t07_rounded_a18_cigar_shaped",
    "t08_odd_feature_a19_ring",
    "t08_odd_feature_a20_lens_or_arc",
    "t08_odd_feature_a21_disturbed",
    "t08_odd_feature_a22_irregular",
    "t08_odd_feature_a23_other",
    "t08_odd_feature_a24_merger",
    "t08_odd_feature_a38_dust_lane",
    "t09_bulge_shape_a25_rounded",
    "t09_bulge_shape_a26_boxy",
    "t09_bulge_shape_a27_no_bulge",
    "t10_arms_winding_a28_tight",
    "t10_arms_winding_a29_medium",
    "t10_arms_winding_a30_loose",
    "t11_arms_number_a31_1",
    "t11_arms_number_a32_2",
    "t11_arms_number_a33_3",
    "t11_arms_number_a34_4",
    "t11_arms_number_a36_more_than_4",
    "t11_arms_number_a37_cant_tell",
)


def question_slices() -> dict[int, slice]:
    """Column range of each question in the 37-vector: ``{1: slice(0, 3), 2: slice(3, 5), ...}``."""
    out: dict[int, slice] = {}
    start = 0
    for q in QUESTIONS:
        out[q.number] = slice(start, start + len(q.answers))
        start += len(q.answers)
    return out


def parent_index(question: int) -> int | None:
    """Column index (0-36) of ``question``'s parent answer, ``None`` for Q1 and Q6."""
    parent = QUESTIONS[question - 1].parent
    return None if parent is None else ANSWER_NAMES.index(parent)


def _depth(q: Question) -> int:
    d = 0
    while q.parent is not None:
        q = QUESTIONS[int(q.parent[5:].split(".")[0]) - 1]
        d += 1
    return d


#: Questions ordered so that every parent is computed before its children.
_TOPO_ORDER: tuple[int, ...] = tuple(
    q.number for q in sorted(QUESTIONS, key=lambda q: (_depth(q), q.number))
)


def _check_width(x: Any) -> None:
    if x.ndim != 2 or x.shape[1] != N_ANSWERS:
        raise ValueError(
            f"expected an (N, {N_ANSWERS}) array of answers, got shape {tuple(x.shape)}"
        )


def normalise(raw: Any, *, method: Literal["sum", "softmax"] = "sum", eps: float = 1e-12) -> Any:
    """Turn raw outputs into decision-tree-consistent cumulative vote fractions.

    Dieleman et al. (2015): within each question the (non-negative) raw outputs are divided by
    their sum, then multiplied by the value of the question's parent answer (1 for Q1 and Q6),
    so that e.g. ``Class2.1 + Class2.2 == Class1.2``.

    Parameters
    ----------
    raw : ndarray or torch.Tensor, shape (N, 37)
        Raw outputs. With ``method="sum"`` negative values are clipped to 0 (a ReLU), as in
        Dieleman's network; a question whose outputs are all 0 gets all-0 fractions.
    method : {"sum", "softmax"}
        ``"sum"``: divide by the question's sum (Dieleman); ``"softmax"``: a softmax within each
        question (accepts any real inputs, never all-0).
    eps : float
        Added to each question's sum to avoid 0/0.

    Returns
    -------
    ndarray or torch.Tensor, shape (N, 37)
        Same type, dtype and device as ``raw``; differentiable for tensors.
    """
    if method not in ("sum", "softmax"):
        raise ValueError(f"method must be 'sum' or 'softmax', got {method!r}")
    _check_width(raw)
    slices = question_slices()
    is_numpy = isinstance(raw, np.ndarray)
    if not is_numpy:
        import torch

    parts: dict[int, Any] = {}
    for number in _TOPO_ORDER:
        block = raw[:, slices[number]]
        if method == "softmax" and is_numpy:
            e = np.exp(block - block.max(axis=1, keepdims=True))
            frac = e / e.sum(axis=1, keepdims=True)
        elif method == "softmax":
            frac = torch.softmax(block, dim=1)
        else:
            block = np.maximum(block, 0) if is_numpy else torch.clamp(block, min=0)
            total = block.sum(axis=1, keepdims=True) if is_numpy else block.sum(1, keepdim=True)
            frac = block / (total + eps)
        pidx = parent_index(number)
        if pidx is not None:
            pq = int(ANSWER_NAMES[pidx][5:].split(".")[0])
            col = pidx - slices[pq].start
            frac = frac * parts[pq][:, col : col + 1]
        parts[number] = frac
    ordered = [parts[q.number] for q in QUESTIONS]
    return np.concatenate(ordered, axis=1) if is_numpy else torch.cat(ordered, dim=1)


def per_question_fractions(fractions: Any, *, eps: float = 1e-12) -> Any:
    """Invert the parent weighting: each question's answers divided by their sum.

    Parameters
    ----------
    fractions : ndarray, shape (N, 37)
        Cumulative (Kaggle-style) vote fractions.
    eps : float
        Rows where a question's sum is below ``eps`` get all-0 answers for that question.

    Returns
    -------
    ndarray, float64, shape (N, 37)
        Each question's answers sum to 1 (or are all 0).
    """
    x = np.asarray(fractions, dtype=np.float64)
    _check_width(x)
    out = np.zeros_like(x)
    for sl in question_slices().values():
        total = x[:, sl].sum(axis=1, keepdims=True)
        out[:, sl] = np.where(total > eps, x[:, sl] / np.where(total > eps, total, 1.0), 0.0)
    return out


def check_tree_consistency(
    fractions: Any, tol: float = 0.05
) -> list[tuple[int, int, float, float]]:
    """Find rows whose questions do not sum to their parent answer.

    Parameters
    ----------
    fractions : ndarray or torch.Tensor, shape (N, 37)
        Cumulative vote fractions (Kaggle ``Class1.1 ... Class11.6`` order).
    tol : float
        Allowed absolute difference between a question's sum and its parent's value.

    Returns
    -------
    list of (row, question, expected_sum, actual_sum)
        One entry per inconsistent (row, question), rows 0-based, questions 1-11, in row order.
        ``expected_sum`` is the parent answer's value (1.0 for Q1 and Q6). Empty when consistent.
    """
    if not isinstance(fractions, np.ndarray):
        fractions = fractions.detach().cpu().numpy() if hasattr(fractions, "detach") else fractions
    x = np.asarray(fractions, dtype=np.float64)
    _check_width(x)
    slices = question_slices()
    bad: list[tuple[int, int, float, float]] = []
    sums = {}
    for q in QUESTIONS:
        actual = x[:, slices[q.number]].sum(axis=1)
        pidx = parent_index(q.number)
        expected = np.ones(len(x)) if pidx is None else x[:, pidx]
        sums[q.number] = (expected, actual)
    diff = np.stack([np.abs(e - a) for e, a in sums.values()], axis=1)  # (N, 11)
    rows, cols = np.nonzero(~(diff <= tol))  # NaN counts as inconsistent
    for r, c in zip(rows.tolist(), cols.tolist()):
        e, a = sums[c + 1]
        bad.append((r, c + 1, float(e[r]), float(a[r])))
    return bad
