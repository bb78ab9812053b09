"""One-to-one matching of detections to truth, and completeness / purity.

Boxes are ``xyxy`` float pixels (docs/conventions.md). Matching is greedy by descending score:
each prediction, in turn, takes the best still-unmatched truth that satisfies the rule (highest
IoU for ``rule="iou"``, smallest centre distance for ``rule="centre"``). Because predictions are
visited in score order, the matching of the predictions with ``score >= t`` is exactly the prefix
of the matching of all predictions, for every threshold ``t``: one matching gives the whole
completeness / purity versus threshold curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

MatchRule = Literal["iou", "centre"]


def _as_boxes(boxes: np.ndarray, name: str) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name} must have shape (N, 4), got {b.shape}")
    return b


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection over union of two sets of ``xyxy`` boxes.

    Parameters
    ----------
    a : ndarray, shape (N, 4)
        Boxes ``x1, y1, x2, y2`` in pixels.
    b : ndarray, shape (M, 4)
        Boxes ``x1, y1, x2, y2`` in pixels.

    Returns
    -------
    ndarray, shape (N, M), float64
        IoU in [0, 1]; 0 where the union is empty.
    """
    a = _as_boxes(a, "a")
    b = _as_boxes(b, "b")
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def centre_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distance, in pixels, between the centres of ``xyxy`` boxes.

    Parameters
    ----------
    a : ndarray, shape (N, 4)
    b : ndarray, shape (M, 4)

    Returns
    -------
    ndarray, shape (N, M), float64
    """
    a = _as_boxes(a, "a")
    b = _as_boxes(b, "b")
    ca = 0.5 * (a[:, :2] + a[:, 2:])
    cb = 0.5 * (b[:, :2] + b[:, 2:])
    return np.hypot(ca[:, None, 0] - cb[None, :, 0], ca[:, None, 1] - cb[None, :, 1])


@dataclass(frozen=True)
class MatchResult:
    """Outcome of :func:`match_detections` for one image.

    Attributes
    ----------
    pred_to_truth : ndarray, shape (M,), int64
        Index of the truth each prediction matched, or -1.
    truth_to_pred : ndarray, shape (N,), int64
        Index of the prediction that matched each truth, or -1.
    quality : ndarray, shape (M,), float64
        IoU (``rule="iou"``) or centre distance in pixels (``rule="centre"``) of each match;
        NaN for unmatched predictions.
    """

    pred_to_truth: np.ndarray
    truth_to_pred: np.ndarray
    quality: np.ndarray

    @property
    def n_true(self) -> int:
        """Number of truths."""
        return int(self.truth_to_pred.size)

    @property
    def n_pred(self) -> int:
        """Number of predictions."""
        return int(self.pred_to_truth.size)

    @property
    def n_matched(self) -> int:
        """Number of matched pairs."""
        return int(np.count_nonzero(self.pred_to_truth >= 0))

    @property
    def completeness(self) -> float:
        """Matched truths / all truths; NaN when there are no truths."""
        return self.n_matched / self.n_true if self.n_true else math.nan

    @property
    def purity(self) -> float:
        """Matched predictions / all predictions; NaN when there are no predictions."""
        return self.n_matched / self.n_pred if self.n_pred else math.nan


def f1_score(completeness: float, purity: float) -> float:
    """Harmonic mean of completeness and purity, ``2 TP / (2 TP + FP + FN)``.

    NaN without truths (completeness NaN). With truths but no predictions (purity NaN,
    completeness 0) it is 0: nothing was found, and a learning curve that dropped such a point
    as missing would average only the runs that found something.
    """
    if math.isnan(completeness):
        return math.nan
    if math.isnan(purity):
        return 0.0 if completeness == 0 else math.nan
    s = completeness + purity
    return 2.0 * completeness * purity / s if s > 0 else 0.0


def match_detections(
    truth_boxes: np.ndarray,
    truth_labels: np.ndarray,
    pred_boxes: np.ndarray,
    pred_labels: np.ndarray,
    pred_scores: np.ndarray,
    *,
    rule: MatchRule = "iou",
    iou_threshold: float = 0.5,
    centre_radius: float = 5.0,
    class_aware: bool = True,
) -> MatchResult:
    """Match predictions to truths one-to-one, greedily by descending score.

    Each prediction, from the highest score down, takes the still-unmatched truth that best
    satisfies the rule: the highest IoU with ``IoU >= iou_threshold`` (``rule="iou"``), or the
    smallest centre distance with ``distance <= centre_radius`` pixels (``rule="centre"``).
    Ties go to the lower truth index; equal scores keep the input order. A truth is matched at
    most once, so a second prediction on an already-found clump is a false positive.

    Parameters
    ----------
    truth_boxes : ndarray, shape (N, 4)
        Truth boxes, ``xyxy`` pixels.
    truth_labels : ndarray, shape (N,)
        Truth class ids.
    pred_boxes : ndarray, shape (M, 4)
        Predicted boxes, ``xyxy`` pixels.
    pred_labels : ndarray, shape (M,)
        Predicted class ids.
    pred_scores : ndarray, shape (M,)
        Detection scores (any finite floats; only their order matters).
    rule : {"iou", "centre"}
        Matching criterion.
    iou_threshold : float
        Minimum IoU for ``rule="iou"`` (inclusive).
    centre_radius : float
        Maximum centre distance in pixels for ``rule="centre"`` (inclusive).
    class_aware : bool
        If true a prediction only matches truth of its own class (per-class metrics); if false
        the class is ignored (a clump found with the wrong class still counts as found).

    Returns
    -------
    MatchResult
    """
    tb = _as_boxes(truth_boxes, "truth_boxes")
    pb = _as_boxes(pred_boxes, "pred_boxes")
    tl = np.asarray(truth_labels).reshape(-1)
    pl = np.asarray(pred_labels).reshape(-1)
    ps = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    n, m = len(tb), len(pb)
    if len(tl) != n or len(pl) != m or len(ps) != m:
        raise ValueError(
            f"inconsistent lengths: {n} truth boxes / {len(tl)} labels, "
            f"{m} pred boxes / {len(pl)} labels / {len(ps)} scores"
        )
    pred_to_truth = np.full(m, -1, dtype=np.int64)
    truth_to_pred = np.full(n, -1, dtype=np.int64)
    quality = np.full(m, np.nan)
    if n == 0 or m == 0:
        return MatchResult(pred_to_truth, truth_to_pred, quality)

    if rule == "iou":
        q = box_iou(pb, tb)  # (M, N), higher is better
        ok = q >= iou_threshold
        cost = -q
    elif rule == "centre":
        q = centre_distance(pb, tb)  # (M, N), lower is better
        ok = q <= centre_radius
        cost = q
    else:
        raise ValueError(f"unknown matching rule {rule!r}; choose 'iou' or 'centre'")
    if class_aware:
        ok &= pl[:, None] == tl[None, :]

    free = np.ones(n, dtype=bool)
    for j in np.argsort(-ps, kind="stable"):
        cand = ok[j] & free
        if not cand.any():
            continue
        i = int(np.argmin(np.where(cand, cost[j], np.inf)))
        pred_to_truth[j] = i
        truth_to_pred[i] = j
        quality[j] = q[j, i]
        free[i] = False
    return MatchResult(pred_to_truth, truth_to_pred, quality)


def match_points(
    truth_xy: np.ndarray,
    pred_xy: np.ndarray,
    pred_scores: np.ndarray,
    *,
    radius: float,
) -> MatchResult:
    """Greedy one-to-one matching of detection centres to truth centres, best score first.

    Same result as :func:`match_detections` with
    ``rule="centre"`` on zero-size boxes, but with a k-d tree, so memory grows with the number
    of candidate pairs rather than ``N * M`` (2048 x 2048 mosaics hold thousands of objects).

    Parameters
    ----------
    truth_xy : ndarray, shape (N, 2)
        Truth centres ``x, y``, pixels.
    pred_xy : ndarray, shape (M, 2)
        Detection centres ``x, y``, pixels.
    pred_scores : ndarray, shape (M,)
        Scores; detections are visited from the highest down (stable for ties).
    radius : float
        Maximum centre distance, pixels (inclusive).

    Returns
    -------
    MatchResult
        ``quality`` holds the matched distances in pixels.
    """
    t = np.asarray(truth_xy, dtype=np.float64).reshape(-1, 2)
    p = np.asarray(pred_xy, dtype=np.float64).reshape(-1, 2)
    s = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    n, m = len(t), len(p)
    if len(s) != m:
        raise ValueError(f"{m} detection centres but {len(s)} scores")
    pred_to_truth = np.full(m, -1, dtype=np.int64)
    truth_to_pred = np.full(n, -1, dtype=np.int64)
    quality = np.full(m, np.nan)
    if n == 0 or m == 0:
        return MatchResult(pred_to_truth, truth_to_pred, quality)
    order = np.argsort(-s, kind="stable")
    tree = cKDTree(t)
    # a hair wider than the radius; the exact test below decides (as match_detections does)
    candidates = tree.query_ball_point(p[order], r=radius * (1.0 + 1e-9) + 1e-12)
    free = np.ones(n, dtype=bool)
    for j, cand in zip(order.tolist(), candidates):
        if not cand:
            continue
        c = np.asarray(cand, dtype=np.int64)
        c = c[free[c]]
        if c.size == 0:
            continue
        d = np.hypot(p[j, 0] - t[c, 0], p[j, 1] - t[c, 1])
        ok = d <= radius
        if not ok.any():
            continue
        c, d = c[ok], d[ok]
        k = int(np.lexsort((c, d))[0])  # nearest; ties to the lower truth index
        i = int(c[k])
        pred_to_truth[j] = i
        truth_to_pred[i] = j
        quality[j] = d[k]
        free[i] = False
    return MatchResult(pred_to_truth, truth_to_pred, quality)
