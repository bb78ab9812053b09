"""Metrics of source detection and deblending on simulated blended fields.

Truth is the simulator's ``objects.csv`` (every object, one row each, ``labelled`` when its
S/N >= 5 put it in the COCO file); predictions are a table of detections (the neural detector's
or a classical baseline's, :func:`clumpdet.baselines.sources.run_source_baseline`). Both use
corner-origin pixel coordinates (docs/conventions.md).

Matching
--------
Per image, detections are matched one-to-one to truth *centroids*, greedily by descending score
(the rule of :func:`clumpdet.evaluation.matching.match_detections` with ``rule="centre"``: each
detection takes the nearest still-free truth within the radius; ties go to the lower truth
index). The radius is ``max(radius_fwhm * FWHM, min_radius_px)`` with that image's PSF FWHM.

1. Detections are matched to the **labelled** truth (class-agnostic for completeness and
   purity; class-aware for the per-class precision-recall: a detection labelled ``c`` is a true
   positive only if it matches a labelled object of class ``c``).
2. A detection left unmatched is then matched, one-to-one and in the same order, to the
   **unlabelled** (too faint) objects; one that matches is **ignored**, neither a true nor a false
   positive (COCO's ignore regions): finding a real object below the labelling limit is not an
   error. A second detection on the same faint object is a false positive.

Because detections are visited in score order, the matching of the detections with
``score >= t`` is the prefix of the matching of all of them for every ``t``: one matching gives
all thresholds (the operating point and the precision-recall curves).

Curves and rates carry 68% Wilson intervals (``*_low`` / ``*_high``). Separations are
``nn_sep_fwhm`` (distance to the nearest other object in PSF FWHMs); a missing value (an object
with no neighbour) counts as infinitely isolated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from astropy.table import Table
from scipy.spatial import cKDTree

from clumpdet.errors import InputError
from clumpdet.evaluation.detection import wilson_interval
from clumpdet.evaluation.matching import f1_score, match_points
from clumpdet.utils import format_number, markdown_table

#: Default magnitude bin edges (AB, reference band): 14 to 28 in 0.5 mag steps.
DEFAULT_MAG_BINS: tuple[float, ...] = tuple(float(v) for v in np.arange(14.0, 28.01, 0.5))
#: Default separation bin edges, PSF FWHMs (the last bin holds isolated objects).
DEFAULT_SEP_BINS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 6.0, math.inf)
#: Default class names of the blended-field benchmark.
DEFAULT_CLASS_NAMES: Mapping[int, str] = {1: "star", 2: "galaxy"}
#: Most points kept in each stored precision-recall curve.
MAX_CURVE_POINTS: int = 200

_OBJ_REQUIRED = ("image_id", "category_id", "x", "y", "labelled")
_PRED_REQUIRED = ("image_id", "x", "y", "label", "score")

_MATCHING_NOTES = {
    "one_to_one": "greedy by descending score; each detection takes the nearest still-free "
    "truth centroid within the radius",
    "ignore": "a detection matching no labelled object but (one-to-one) an unlabelled one is "
    "ignored: neither TP nor FP",
    "overall": "class-agnostic",
    "per_class": "class-aware: a detection labelled c is TP only on a labelled object of class c",
    "intervals": "68% Wilson score intervals",
    "pairs": "a pair is deblended when each member is matched by a distinct detection within "
    "the radius and each detection is closer to its own member than to the other",
}


# --------------------------------------------------------------------------- set records


def psf_fwhm_by_image(truth: str | Path | Mapping[str, Any]) -> dict[int, float]:
    """PSF FWHM in pixels of every image of a blended-field COCO set.

    Parameters
    ----------
    truth : str, Path or mapping
        ``annotations.json`` (or its parsed dict) whose image records hold ``psf_fwhm_px``, or
        ``psf_fwhm`` (arcsec) and ``pixel_scale`` (arcsec/px).

    Returns
    -------
    dict of int to float
        ``{image_id: fwhm_px}``, the ``fwhm_px`` argument of :func:`evaluate_sources`.

    Raises
    ------
    InputError
        A record without a usable FWHM.
    """
    if isinstance(truth, Mapping):
        doc, src = truth, None
    else:
        from clumpdet.data.coco import load_coco

        src = Path(truth)
        doc = load_coco(src)
    out: dict[int, float] = {}
    for rec in doc["images"]:
        fwhm = rec.get("psf_fwhm_px")
        if fwhm is None and rec.get("psf_fwhm") is not None and rec.get("pixel_scale"):
            fwhm = float(rec["psf_fwhm"]) / float(rec["pixel_scale"])
        if fwhm is None or not (math.isfinite(float(fwhm)) and float(fwhm) > 0):
            raise InputError(
                src,
                f"image {rec['id']}: no usable psf_fwhm_px (or psf_fwhm and pixel_scale) in its "
                "record",
            )
        out[int(rec["id"])] = float(fwhm)
    return out


# --------------------------------------------------------------------------- curves


def _bin_centres(edges: np.ndarray) -> np.ndarray:
    lo, hi = edges[:-1], edges[1:]
    centres = 0.5 * (lo + hi)
    for k in range(len(lo)):
        if not math.isfinite(hi[k]):
            width = lo[k] - lo[k - 1] if k > 0 and math.isfinite(lo[k - 1]) else 1.0
            centres[k] = lo[k] + 0.5 * width
        elif not math.isfinite(lo[k]):
            width = hi[k + 1] - hi[k] if k + 1 < len(hi) and math.isfinite(hi[k + 1]) else 1.0
            centres[k] = hi[k] - 0.5 * width
    return centres


def binned_fraction(
    values: np.ndarray, success: np.ndarray, *, edges: Sequence[float]
) -> dict[str, Any]:
    """Fraction of successes in bins of a property, with 68% Wilson intervals.

    Parameters
    ----------
    values : ndarray, shape (N,)
        The property of each trial (magnitude, separation ...); NaN values are excluded.
    success : ndarray of bool, shape (N,)
        Outcome of each trial (found, true positive, deblended).
    edges : sequence of float, length B + 1
        Increasing bin edges; bins are ``[e_k, e_k+1)``; ``inf`` is allowed as the last edge,
        and that bin then holds infinite values too.

    Returns
    -------
    dict
        ``bin_edges`` (B + 1), ``bin_centres`` (B; an open last bin is drawn half a previous
        width past its left edge), ``n`` and ``k`` (trials and successes per bin, int),
        ``fraction`` (``k / n``, NaN for empty bins), ``low`` / ``high`` (Wilson interval),
        ``n_excluded`` (trials with NaN or out-of-range values).
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
        raise ValueError(f"bin edges must increase and number at least 2, got {list(edges)}")
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    ok_s = np.asarray(success, dtype=bool).reshape(-1)
    nb = e.size - 1
    idx = np.searchsorted(e, v, side="right") - 1
    if e[-1] == np.inf:  # an open last bin holds +inf (e.g. an object without neighbours)
        idx[v == np.inf] = nb - 1
    inside = ~np.isnan(v) & (idx >= 0) & (idx < nb)
    n = np.bincount(idx[inside], minlength=nb).astype(np.float64)
    k = np.bincount(idx[inside], weights=ok_s[inside].astype(np.float64), minlength=nb)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(n > 0, k / np.where(n > 0, n, 1.0), np.nan)
    low, high = wilson_interval(k, n)
    return {
        "bin_edges": e.tolist(),
        "bin_centres": _bin_centres(e).tolist(),
        "n": n.astype(int).tolist(),
        "k": k.astype(int).tolist(),
        "fraction": frac.tolist(),
        "low": np.where(n > 0, low, np.nan).tolist(),
        "high": np.where(n > 0, high, np.nan).tolist(),
        "n_excluded": int(np.count_nonzero(~inside)),
    }


def _rate(k: int, n: int) -> tuple[float, float, float]:
    if n == 0:
        return math.nan, math.nan, math.nan
    lo, hi = wilson_interval(np.array([float(k)]), np.array([float(n)]))
    return k / n, float(lo[0]), float(hi[0])


def precision_recall(
    scores: np.ndarray,
    is_tp: np.ndarray,
    *,
    n_truth: int,
    target_recall: float = 0.8,
    max_points: int = MAX_CURVE_POINTS,
) -> dict[str, Any]:
    """Precision-recall curve of scored detections, precision at a recall, and AP.

    Parameters
    ----------
    scores : ndarray, shape (M,)
        Scores of the counted (not ignored) detections.
    is_tp : ndarray of bool, shape (M,)
        Whether each is a true positive (its match decided on all detections, see the module
        docstring).
    n_truth : int
        Number of truth objects (the recall denominator).
    target_recall : float
        Recall at which precision is reported.
    max_points : int
        The stored curve is subsampled to at most this many points (metrics use all).

    Returns
    -------
    dict
        ``precision_at_recall``: the highest precision over score thresholds whose recall is
        ``>= target_recall`` (None if never reached); ``target_recall``; ``max_recall``;
        ``ap``: area under the precision envelope (all-point interpolation, as VOC 2010+);
        ``curve``: ``recall``, ``precision``, ``threshold`` arrays, one point per distinct score
        (a threshold keeps the detections with ``score >= threshold``).
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    tp = np.asarray(is_tp, dtype=bool).reshape(-1)
    out: dict[str, Any] = {
        "target_recall": float(target_recall),
        "precision_at_recall": None,
        "max_recall": math.nan,
        "ap": math.nan,
        "curve": {"recall": [], "precision": [], "threshold": []},
    }
    if n_truth <= 0:
        return out
    if s.size == 0:
        out["max_recall"] = 0.0
        out["ap"] = 0.0
        return out
    order = np.argsort(-s, kind="stable")
    s, tp = s[order], tp[order]
    ctp = np.cumsum(tp)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # end of each tie group
    recall = ctp[last] / float(n_truth)
    precision = ctp[last] / (last + 1.0)
    reached = recall >= target_recall - 1e-12
    if reached.any():
        out["precision_at_recall"] = float(precision[reached].max())
    out["max_recall"] = float(recall.max())
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    out["ap"] = float(np.sum(np.diff(np.r_[0.0, recall]) * envelope))
    keep = np.unique(np.linspace(0, recall.size - 1, min(max_points, recall.size)).round())
    keep = keep.astype(int)
    out["curve"] = {
        "recall": recall[keep].tolist(),
        "precision": precision[keep].tolist(),
        "threshold": s[last][keep].tolist(),
    }
    return out


# --------------------------------------------------------------------------- evaluation


def _check_columns(df: pd.DataFrame, required: Sequence[str], what: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise InputError(None, f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(
            None, f"{what}: missing column(s) {missing} (has {list(map(str, df.columns))})"
        )


def _image_radius(fwhm_px: Mapping[int, float], radius_fwhm: float, min_radius: float) -> dict:
    radii = {}
    for iid, fwhm in fwhm_px.items():
        f = float(fwhm)
        if not (math.isfinite(f) and f > 0):
            raise InputError(None, f"fwhm_px[{iid}] must be a positive number, got {fwhm!r}")
        radii[int(iid)] = max(radius_fwhm * f, min_radius)
    return radii


def _check_images(ids: np.ndarray, known: Mapping[int, float], what: str) -> None:
    unknown = sorted(set(np.unique(ids).tolist()) - set(known))
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise InputError(
            None,
            f"{what} on image(s) {unknown[:5]}{more} that fwhm_px does not list "
            "(evaluate a subset by filtering both tables)",
        )


def _rows_by_image(ids: np.ndarray) -> dict[int, np.ndarray]:
    """``{image_id: row positions}`` (ascending) of a column of image ids."""
    order = np.argsort(ids, kind="stable")
    uniq, start = np.unique(ids[order], return_index=True)
    return {int(u): part for u, part in zip(uniq, np.split(order, start[1:]))}


def _match_image(
    t_xy: np.ndarray,
    t_lab: np.ndarray,
    t_cls: np.ndarray,
    p_xy: np.ndarray,
    p_score: np.ndarray,
    p_label: np.ndarray,
    radius: float,
    classes: Sequence[int],
) -> dict[str, np.ndarray]:
    """Matches of one image; indices are positions within the image's rows."""
    m = len(p_xy)
    lab_idx = np.flatnonzero(t_lab)
    unl_idx = np.flatnonzero(~t_lab)

    def two_pass(sel: np.ndarray, truth_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return (matched truth position or -1, ignored) for the detections ``sel``."""
        res = match_points(t_xy[truth_idx], p_xy[sel], p_score[sel], radius=radius)
        matched = np.full(sel.size, -1, dtype=np.int64)
        hit = res.pred_to_truth >= 0  # (indexing an empty truth_idx with -1 would fail)
        matched[hit] = truth_idx[res.pred_to_truth[hit]]
        ignored = np.zeros(sel.size, dtype=bool)
        left = np.flatnonzero(matched < 0)
        if left.size and unl_idx.size:
            res2 = match_points(t_xy[unl_idx], p_xy[sel[left]], p_score[sel[left]], radius=radius)
            ignored[left] = res2.pred_to_truth >= 0
        return matched, ignored

    all_sel = np.arange(m)
    matched, ignored = two_pass(all_sel, lab_idx)
    cls_tp = np.zeros(m, dtype=bool)
    cls_ignored = np.zeros(m, dtype=bool)
    for c in classes:
        sel = np.flatnonzero(p_label == c)
        if sel.size == 0:
            continue
        mc, ic = two_pass(sel, lab_idx[t_cls[lab_idx] == c])
        cls_tp[sel] = mc >= 0
        cls_ignored[sel] = ic
    nearest = np.full(m, -1, dtype=np.int64)
    if len(t_xy) and m:
        _, nearest = cKDTree(t_xy).query(p_xy, k=1)
        nearest = np.asarray(nearest, dtype=np.int64)
    return {
        "matched": matched,
        "ignored": ignored,
        "cls_tp": cls_tp,
        "cls_ignored": cls_ignored,
        "nearest": nearest,
    }


def evaluate_sources(
    objects: pd.DataFrame,
    predictions: pd.DataFrame | Table,
    *,
    fwhm_px: Mapping[int, float],
    radius_fwhm: float = 0.5,
    min_radius_px: float = 1.5,
    score_threshold: float | None = None,
    mag_bins: Sequence[float] = DEFAULT_MAG_BINS,
    sep_bins: Sequence[float] = DEFAULT_SEP_BINS,
    class_names: Mapping[int, str] = DEFAULT_CLASS_NAMES,
    target_recall: float = 0.8,
    close_pair_fwhm: float = 2.0,
) -> dict[str, Any]:
    """Detection, classification and deblending metrics of one method on a blended-field set.

    Parameters
    ----------
    objects : pandas.DataFrame
        Truth, one row per simulated object: ``image_id, category_id, x, y`` (true centroid,
        corner-origin pixels), ``labelled`` (bool); optional ``mag`` (reference-band AB),
        ``nn_sep_fwhm``, ``pair_id`` (-1 when not in a designed pair) and ``pair_sep_fwhm``
        feed the curves that need them.
    predictions : pandas.DataFrame or astropy.table.Table
        Detections: ``image_id, x, y, label, score``; optional ``mag`` (measured, may be NaN).
        A Table (:func:`clumpdet.baselines.sources.run_source_baseline`) is read as its
        ``to_pandas()``.
    fwhm_px : mapping of int to float
        PSF FWHM in pixels of every evaluated image (:func:`psf_fwhm_by_image`). Images listed
        here without objects or detections count; objects or detections on other images are an
        error.
    radius_fwhm : float
        Matching radius in PSF FWHMs ...
    min_radius_px : float
        ... but at least this many pixels.
    score_threshold : float, optional
        Operating point of completeness, purity, F1 and the binned curves (detections with
        ``score >= score_threshold``); None uses every detection. The precision-recall curves
        always use every detection.
    mag_bins : sequence of float
        Magnitude bin edges (AB) of completeness vs truth ``mag`` and purity vs measured ``mag``.
    sep_bins : sequence of float
        Separation bin edges, PSF FWHMs (``inf`` allowed last), for completeness / purity vs
        ``nn_sep_fwhm`` and the pair-deblending rate vs ``pair_sep_fwhm``.
    class_names : mapping of int to str
        Class id to name, for the per-class metrics.
    target_recall : float
        Recall of the per-class "precision at recall".
    close_pair_fwhm : float
        The close-pair deblending rate counts pairs with ``pair_sep_fwhm`` below this.

    Returns
    -------
    dict
        ``n_images``, ``n_truth`` (labelled), ``n_truth_unlabelled``, ``n_pred`` (all),
        ``n_pred_used`` (at the threshold), ``n_tp``, ``n_fp``, ``n_fn``, ``n_ignored``,
        ``completeness``, ``purity``, ``f1`` (NaN where undefined), ``matching`` (settings and
        rules), ``per_class`` (by name: ``class_id``, ``n_truth``, ``n_pred`` (counted, all
        scores), ``precision`` / ``recall`` at the threshold, and :func:`precision_recall`'s
        ``precision_at_recall``, ``target_recall``, ``max_recall``, ``ap``, ``curve``),
        ``completeness_vs_mag``, ``purity_vs_mag`` (measured magnitude; the matched truth's
        where it is NaN), ``completeness_vs_sep``, ``purity_vs_sep`` (the matched truth's
        ``nn_sep_fwhm``, else the nearest object's) as :func:`binned_fraction` dicts (None
        without the column), and ``pair_deblending`` (None without ``pair_id``): ``n_pairs``,
        ``n_deblended``, ``rate`` (+ ``rate_low``/``rate_high``), ``close_pair_fwhm``,
        ``n_pairs_close``, ``n_deblended_close``, ``rate_close`` (+ interval), ``vs_sep``
        (binned), ``n_skipped_unlabelled`` (pairs with a member below the labelling limit) and
        ``n_skipped_malformed`` (pair ids without exactly two members). A pair is deblended when
        each member is matched by a distinct detection within the matching radius and each
        detection is closer to its own member than to the other (:func:`pair_deblended`).

    Raises
    ------
    InputError
        Missing columns, bad FWHMs, or rows on images ``fwhm_px`` does not list.
    """
    if isinstance(predictions, Table):
        predictions = predictions.to_pandas()
    _check_columns(objects, _OBJ_REQUIRED, "objects")
    _check_columns(predictions, _PRED_REQUIRED, "predictions")
    radii = _image_radius(fwhm_px, float(radius_fwhm), float(min_radius_px))
    obj = objects.reset_index(drop=True)
    pred = predictions.reset_index(drop=True)
    o_img = obj["image_id"].to_numpy(dtype=np.int64)
    p_img = pred["image_id"].to_numpy(dtype=np.int64)
    _check_images(o_img, radii, "objects")
    _check_images(p_img, radii, "predictions")
    o_xy = obj[["x", "y"]].to_numpy(dtype=np.float64)
    o_lab = obj["labelled"].to_numpy().astype(bool)
    o_cls = obj["category_id"].to_numpy(dtype=np.int64)
    p_xy = pred[["x", "y"]].to_numpy(dtype=np.float64)
    p_score = pred["score"].to_numpy(dtype=np.float64)
    p_label = pred["label"].to_numpy(dtype=np.int64)
    if not np.all(np.isfinite(p_score)):
        raise InputError(None, "predictions: score must be finite")
    classes = [int(c) for c in class_names]

    n_p = len(pred)
    matched = np.full(n_p, -1, dtype=np.int64)  # global object row
    ignored = np.zeros(n_p, dtype=bool)
    cls_tp = np.zeros(n_p, dtype=bool)
    cls_ignored = np.zeros(n_p, dtype=bool)
    nearest = np.full(n_p, -1, dtype=np.int64)
    o_rows = _rows_by_image(o_img)
    p_rows = _rows_by_image(p_img)
    empty = np.zeros(0, dtype=np.int64)
    for iid, radius in radii.items():
        ti = o_rows.get(iid, empty)
        pj = p_rows.get(iid, empty)
        if pj.size == 0:
            continue
        r = _match_image(
            o_xy[ti], o_lab[ti], o_cls[ti], p_xy[pj], p_score[pj], p_label[pj], radius, classes
        )
        matched[pj] = np.where(r["matched"] >= 0, ti[np.maximum(r["matched"], 0)], -1)
        ignored[pj] = r["ignored"]
        cls_tp[pj] = r["cls_tp"]
        cls_ignored[pj] = r["cls_ignored"]
        nearest[pj] = np.where(r["nearest"] >= 0, ti[np.maximum(r["nearest"], 0)], -1)

    used = np.ones(n_p, dtype=bool) if score_threshold is None else p_score >= score_threshold
    is_tp = used & (matched >= 0)
    counted = used & ~ignored
    found = np.zeros(len(obj), dtype=bool)
    found[matched[is_tp]] = True
    det_xy_of = np.full((len(obj), 2), np.nan)
    det_xy_of[matched[is_tp]] = p_xy[is_tp]
    radius_of = np.array([radii.get(int(i), math.nan) for i in o_img], dtype=np.float64)
    n_truth = int(o_lab.sum())
    n_tp = int(is_tp.sum())
    n_fp = int((counted & (matched < 0)).sum())
    completeness = n_tp / n_truth if n_truth else math.nan
    purity = n_tp / (n_tp + n_fp) if n_tp + n_fp else math.nan

    per_class: dict[str, Any] = {}
    for c, name in class_names.items():
        sel = (p_label == c) & ~cls_ignored
        n_c = int((o_lab & (o_cls == c)).sum())
        tp_c = int((sel & used & cls_tp).sum())
        n_used = int((sel & used).sum())
        pr = precision_recall(
            p_score[sel], cls_tp[sel], n_truth=n_c, target_recall=float(target_recall)
        )
        per_class[str(name)] = {
            "class_id": int(c),
            "n_truth": n_c,
            "n_pred": int(sel.sum()),
            "precision": tp_c / n_used if n_used else math.nan,
            "recall": tp_c / n_c if n_c else math.nan,
            **pr,
        }

    lab_rows = np.flatnonzero(o_lab)
    o_mag = obj["mag"].to_numpy(dtype=np.float64) if "mag" in obj else None
    o_sep = None
    if "nn_sep_fwhm" in obj:
        o_sep = obj["nn_sep_fwhm"].to_numpy(dtype=np.float64)
        o_sep = np.where(np.isnan(o_sep), np.inf, o_sep)  # no neighbour: isolated
    cnt_rows = np.flatnonzero(counted)
    comp_mag = pur_mag = comp_sep = pur_sep = None
    if o_mag is not None:
        comp_mag = binned_fraction(o_mag[lab_rows], found[lab_rows], edges=mag_bins)
        d_mag = (
            pred["mag"].to_numpy(dtype=np.float64)[cnt_rows]
            if "mag" in pred
            else np.full(cnt_rows.size, np.nan)
        )
        m_rows = matched[cnt_rows]
        fill = np.isnan(d_mag) & (m_rows >= 0)
        d_mag[fill] = o_mag[m_rows[fill]]
        pur_mag = binned_fraction(d_mag, m_rows >= 0, edges=mag_bins)
    if o_sep is not None:
        comp_sep = binned_fraction(o_sep[lab_rows], found[lab_rows], edges=sep_bins)
        m_rows = matched[cnt_rows]
        ref_rows = np.where(m_rows >= 0, m_rows, nearest[cnt_rows])
        d_sep = np.where(ref_rows >= 0, o_sep[np.maximum(ref_rows, 0)], np.nan)
        pur_sep = binned_fraction(d_sep, m_rows >= 0, edges=sep_bins)

    return {
        "n_images": len(radii),
        "n_truth": n_truth,
        "n_truth_unlabelled": int((~o_lab).sum()),
        "n_pred": n_p,
        "n_pred_used": int(used.sum()),
        "n_tp": n_tp,
        "n_fp": n_fp,
        "n_fn": n_truth - n_tp,
        "n_ignored": int((used & ignored).sum()),
        "completeness": completeness,
        "purity": purity,
        "f1": f1_score(completeness, purity),
        "matching": {
            "radius_fwhm": float(radius_fwhm),
            "min_radius_px": float(min_radius_px),
            "score_threshold": score_threshold,
            **_MATCHING_NOTES,
        },
        "per_class": per_class,
        "completeness_vs_mag": comp_mag,
        "purity_vs_mag": pur_mag,
        "completeness_vs_sep": comp_sep,
        "purity_vs_sep": pur_sep,
        "pair_deblending": _pair_metrics(
            obj, det_xy_of, radius_of, sep_bins, float(close_pair_fwhm)
        ),
    }


def pair_deblended(
    members_xy: np.ndarray, detections_xy: np.ndarray | None, *, radius: float
) -> bool:
    """The pair-deblending rule for one designed pair.

    A pair counts as deblended only when each member is matched by a *distinct* detection
    within ``radius`` (0.5 PSF FWHM in the benchmark) **and** each of the two detections is
    closer to its own member than to the other member. Two detections sitting between the
    members (both within the radius of both when the pair is closer than ~1 FWHM) do not count.

    Parameters
    ----------
    members_xy : ndarray, shape (2, 2)
        True centres ``(x, y)`` of the two members (pixels).
    detections_xy : ndarray, shape (2, 2), optional
        Centre of the detection matched to each member, in the same order (None, or a row of
        NaN, when a member is unmatched).
    radius : float
        Matching radius in pixels.

    Returns
    -------
    bool
    """
    if detections_xy is None:
        return False
    m = np.asarray(members_xy, dtype=np.float64).reshape(2, 2)
    d = np.asarray(detections_xy, dtype=np.float64).reshape(2, 2)
    if not np.all(np.isfinite(d)) or np.allclose(d[0], d[1], atol=0.0, rtol=0.0):
        return False
    dist = np.hypot(d[:, None, 0] - m[None, :, 0], d[:, None, 1] - m[None, :, 1])  # (det, mem)
    own = np.diag(dist)
    other = dist[[0, 1], [1, 0]]
    return bool(np.all(own <= radius) and np.all(own < other))


def _pair_metrics(
    obj: pd.DataFrame,
    det_xy_of: np.ndarray,
    radius_of: np.ndarray,
    sep_bins: Sequence[float],
    close: float,
) -> dict[str, Any] | None:
    """Pair-deblending rate; ``det_xy_of`` (N, 2) is each object's matched detection centre
    (NaN when unmatched) and ``radius_of`` (N,) its image's matching radius (pixels)."""
    if "pair_id" not in obj:
        return None
    pid = obj["pair_id"].to_numpy()
    rows = np.flatnonzero(pd.notna(pid) & (pd.to_numeric(pid, errors="coerce") >= 0))
    sep_col = (
        obj["pair_sep_fwhm"].to_numpy(dtype=np.float64)
        if "pair_sep_fwhm" in obj
        else np.full(len(obj), np.nan)
    )
    lab = obj["labelled"].to_numpy().astype(bool)
    keys = pd.DataFrame(
        {"image_id": obj["image_id"].to_numpy()[rows], "pair_id": pid[rows], "row": rows}
    )
    seps, ok = [], []
    n_unlab = n_bad = 0
    for _, grp in keys.groupby(["image_id", "pair_id"], sort=True):
        r = grp["row"].to_numpy()
        if r.size != 2:
            n_bad += 1
            continue
        if not lab[r].all():
            n_unlab += 1
            continue
        s = sep_col[r]
        seps.append(float(np.nanmean(s)) if np.isfinite(s).any() else math.nan)
        o_xy = obj[["x", "y"]].to_numpy(dtype=np.float64)[r]
        ok.append(pair_deblended(o_xy, det_xy_of[r], radius=float(radius_of[r[0]])))
    sep_arr = np.asarray(seps, dtype=np.float64)
    ok_arr = np.asarray(ok, dtype=bool)
    close_sel = sep_arr < close  # NaN compares False
    rate, lo, hi = _rate(int(ok_arr.sum()), ok_arr.size)
    rate_c, lo_c, hi_c = _rate(int(ok_arr[close_sel].sum()), int(close_sel.sum()))
    return {
        "n_pairs": int(ok_arr.size),
        "n_deblended": int(ok_arr.sum()),
        "rate": rate,
        "rate_low": lo,
        "rate_high": hi,
        "close_pair_fwhm": close,
        "n_pairs_close": int(close_sel.sum()),
        "n_deblended_close": int(ok_arr[close_sel].sum()),
        "rate_close": rate_c,
        "rate_close_low": lo_c,
        "rate_close_high": hi_c,
        "vs_sep": binned_fraction(sep_arr, ok_arr, edges=sep_bins),
        "n_skipped_unlabelled": n_unlab,
        "n_skipped_malformed": n_bad,
    }


# --------------------------------------------------------------------------- reporting


def class_order(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Class names of the ``per_class`` entries of several results, in first-seen order.

    Parameters
    ----------
    results : mapping of str to dict
        Method name to :func:`evaluate_sources` output.

    Returns
    -------
    list of str
    """
    names: list[str] = []
    for res in results.values():
        for name in res.get("per_class", {}):
            if name not in names:
                names.append(name)
    return names


def comparison_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """Markdown table comparing methods, one row per method (in the mapping's order).

    Parameters
    ----------
    results : mapping of str to dict
        Method name to :func:`evaluate_sources` output.

    Returns
    -------
    str
        Columns: method, per class precision at the target recall (and, when present, at the
        detector's recall: ``precision_at_detector_recall``), completeness, purity, F1,
        pair-deblending rate below ``close_pair_fwhm`` and over all pairs. Missing values
        (e.g. a recall never reached) read ``n/a``.
    """
    classes = class_order(results)
    first = next(iter(results.values()), {})
    target = next((c["target_recall"] for c in first.get("per_class", {}).values()), 0.8)
    close = (first.get("pair_deblending") or {}).get("close_pair_fwhm", 2.0)
    matched = any(
        "precision_at_detector_recall" in c
        for r in results.values()
        for c in r.get("per_class", {}).values()
    )
    header = [
        "method",
        *[f"{c} P@R{target:g}" for c in classes],
        *[f"{c} P@R(detector)" for c in classes if matched],
        "completeness",
        "purity",
        "F1",
        f"pair-deblend rate (<{close:g} FWHM)",
        "pair-deblend rate (all)",
    ]
    rows = []
    for method, res in results.items():
        pc = res.get("per_class", {})
        pairs = res.get("pair_deblending") or {}
        rows.append(
            [
                str(method),
                *[(pc.get(c) or {}).get("precision_at_recall") for c in classes],
                *[
                    (pc.get(c) or {}).get("precision_at_detector_recall")
                    for c in classes
                    if matched
                ],
                res.get("completeness"),
                res.get("purity"),
                res.get("f1"),
                pairs.get("rate_close"),
                pairs.get("rate"),
            ]
        )
    return markdown_table(header, rows, fmt=format_number) + "\n"
