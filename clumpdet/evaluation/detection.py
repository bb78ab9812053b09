"""Detection evaluation: COCO AP/AR plus completeness / purity, curves and plots.

:class:`DetectionEvaluator` (detectron2 style: ``reset / process / evaluate``) holds the truth
and accumulates predictions in memory, so a training loop can score validation images without
writing files. :func:`evaluate_detections` is the thin file-based wrapper used by
``clumpdet evaluate``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from clumpdet.data.coco import load_coco, load_predictions, validate_coco, validate_predictions
from clumpdet.errors import ConfigError, InputError
from clumpdet.evaluation.coco import area_ranges_description, coco_metrics
from clumpdet.evaluation.matching import f1_score, match_detections
from clumpdet.utils import atomic_write

#: Score thresholds of the completeness / purity / F1 curve.
THRESHOLD_GRID: np.ndarray = np.round(np.linspace(0.0, 1.0, 101), 10)

#: What the matching block of metrics.json says about the rules.
_MATCHING_NOTES = {
    "one_to_one": "greedy by descending score; each prediction takes the best still-unmatched "
    "truth that satisfies the rule (highest IoU / smallest centre distance)",
    "overall": "class-agnostic: a clump found with the wrong class still counts as found",
    "per_class": "class-aware: a prediction only matches truth of its own class",
    "score_cut": "completeness/purity use predictions with score >= score_threshold; "
    "COCO AP/AR use all predictions",
    "empty": "completeness is null without truths, purity is null without predictions, "
    "f1 is null without truths and 0 with truths but no predictions",
}


def _to_numpy(x: Any, dtype: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor, possibly on an accelerator
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


def _found_score(truth_to_pred: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Score of the detection that matched each truth; -inf for truths never matched."""
    out = np.full(truth_to_pred.shape, -np.inf)
    sel = truth_to_pred >= 0
    out[sel] = scores[truth_to_pred[sel]]
    return out


#: Completeness levels of :func:`purity_at_completeness` in the metrics.
COMPLETENESS_TARGETS: tuple[float, ...] = (0.5, 0.8, 0.9)


def purity_at_completeness(
    found_score: np.ndarray,
    matched: np.ndarray,
    scores: np.ndarray,
    targets: Sequence[float] = COMPLETENESS_TARGETS,
) -> dict[str, dict[str, float]]:
    """Best purity over every score threshold that reaches each completeness target.

    Exact (one threshold per distinct prediction score, not a grid), so methods whose scores
    live on different scales (a network's probability, a classical finder's S/N map) compare
    like with like.

    Parameters
    ----------
    found_score : ndarray, shape (N,)
        Per truth, the score of the prediction that found it (``-inf`` never found); with
        score-ordered greedy matching truth ``i`` is found at threshold ``t`` iff
        ``found_score[i] >= t``.
    matched : ndarray of bool, shape (M,)
        Whether each prediction is matched to a truth.
    scores : ndarray, shape (M,)
        Prediction scores.
    targets : sequence of float
        Completeness levels in (0, 1].

    Returns
    -------
    dict
        ``{f"{target:g}": {"purity", "threshold", "completeness"}}``; NaN values where the
        target is never reached (or there are no truths).
    """
    fs = np.asarray(found_score, dtype=np.float64).reshape(-1)
    m = np.asarray(matched, dtype=bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    nan = {"purity": math.nan, "threshold": math.nan, "completeness": math.nan}
    out = {f"{t:g}": dict(nan) for t in targets}
    if fs.size == 0 or s.size == 0:
        return out
    order = np.argsort(-s, kind="stable")
    s_sorted, m_sorted = s[order], m[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    thr = s_sorted[last]
    n_pred = last + 1.0
    purity = np.cumsum(m_sorted)[last] / n_pred
    fs_sorted = np.sort(fs)
    comp = (fs.size - np.searchsorted(fs_sorted, thr, side="left")) / float(fs.size)
    for t in targets:
        ok = np.flatnonzero(comp >= float(t) - 1e-12)
        if ok.size:
            k = ok[int(np.argmax(purity[ok]))]
            out[f"{t:g}"] = {
                "purity": float(purity[k]),
                "threshold": float(thr[k]),
                "completeness": float(comp[k]),
            }
    return out


def wilson_interval(k: np.ndarray, n: np.ndarray, z: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a success fraction.

    Parameters
    ----------
    k, n : ndarray, same shape
        Successes and trials.
    z : float
        Half-width in standard deviations (1: ~68%).

    Returns
    -------
    low, high : ndarray
        Bounds in [0, 1]; NaN where ``n == 0``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        den = 1.0 + z**2 / n
        centre = (p + z**2 / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / den
    # clip: floating-point rounding can push the bounds a hair outside [0, 1] at p = 0 or 1
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def binned_completeness(
    values: np.ndarray, found: np.ndarray, *, n_bins: int = 8, log: bool = True
) -> dict[str, Any] | None:
    """Completeness in bins of a truth property (e.g. flux ratio or S/N).

    Parameters
    ----------
    values : ndarray, shape (N,)
        The property of each truth; NaN where unknown. With ``log`` only positive values count.
    found : ndarray of bool, shape (N,)
        Whether each truth was matched.
    n_bins : int
        Number of bins spanning the range of the valid values.
    log : bool
        Logarithmic (``geomspace``) or linear bins.

    Returns
    -------
    dict or None
        ``bin_edges`` (n_bins + 1), ``bin_centres``, ``n_true``, ``n_found``, ``completeness``
        and its 68% Wilson interval ``completeness_low``/``completeness_high`` (NaN for empty
        bins), ``n_excluded`` (truths without a usable value); None if no truth has one.
    """
    values = np.asarray(values, dtype=np.float64)
    found = np.asarray(found, dtype=bool)
    ok = np.isfinite(values) & ((values > 0) if log else True)
    if not ok.any():
        return None
    v, f = values[ok], found[ok]
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:  # a single value: one bin around it
        lo, hi = (lo / 1.1, hi * 1.1) if log else (lo - 0.5, hi + 0.5)
        n_bins = 1
    edges = np.geomspace(lo, hi, n_bins + 1) if log else np.linspace(lo, hi, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, n_bins - 1)
    n_true = np.bincount(idx, minlength=n_bins).astype(np.float64)
    n_found = np.bincount(idx, weights=f.astype(np.float64), minlength=n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        comp = n_found / n_true
    low, high = wilson_interval(n_found, n_true)
    centres = np.sqrt(edges[:-1] * edges[1:]) if log else 0.5 * (edges[:-1] + edges[1:])
    return {
        "scale": "log" if log else "linear",
        "bin_edges": edges.tolist(),
        "bin_centres": centres.tolist(),
        "n_true": n_true.astype(int).tolist(),
        "n_found": n_found.astype(int).tolist(),
        "completeness": comp.tolist(),
        "completeness_low": low.tolist(),
        "completeness_high": high.tolist(),
        "n_excluded": int(np.count_nonzero(~ok)),
    }


class DetectionEvaluator:
    """Accumulate detections for a truth set and compute clump-detection metrics.

    detectron2-style: :meth:`reset`, :meth:`process` per image (numpy arrays or CPU/GPU
    tensors, no files), :meth:`evaluate`. Images of the evaluated set that were never
    processed count as images with no detections.

    Parameters
    ----------
    truth : str, Path or dict
        COCO truth file (read with :func:`~clumpdet.data.coco.load_coco`) or an in-memory COCO
        dict (validated the same way). Optional annotation fields ``flux_ratio`` and ``snr``
        feed the completeness curves.
    score_threshold : float
        Operating threshold: completeness/purity use predictions with ``score >= threshold``.
    match : {"iou", "centre"}
        Matching rule (see :func:`~clumpdet.evaluation.matching.match_detections`).
    iou_threshold : float
        Minimum IoU for ``match="iou"``.
    centre_radius : float
        Maximum centre distance in pixels for ``match="centre"``.
    image_ids : sequence of int, optional
        Images to evaluate (default: every image in ``truth``), e.g. a validation split.
    n_bins : int
        Number of log bins of the completeness vs flux ratio / S/N curves.
    """

    def __init__(
        self,
        truth: str | Path | Mapping[str, Any],
        *,
        score_threshold: float = 0.3,
        match: Literal["iou", "centre"] = "iou",
        iou_threshold: float = 0.5,
        centre_radius: float = 5.0,
        image_ids: Sequence[int] | None = None,
        n_bins: int = 8,
    ) -> None:
        if match not in ("iou", "centre"):
            raise ConfigError(f"match: {match!r} is not one of ['iou', 'centre']")
        if not (0.0 < iou_threshold <= 1.0):
            raise ConfigError(f"iou_threshold: must be in (0, 1], got {iou_threshold!r}")
        if not (centre_radius > 0 and math.isfinite(centre_radius)):
            raise ConfigError(
                f"centre_radius: must be a positive number of pixels, got {centre_radius!r}"
            )
        if not math.isfinite(score_threshold):
            raise ConfigError(f"score_threshold: must be finite, got {score_threshold!r}")
        if n_bins < 1:
            raise ConfigError(f"n_bins: must be >= 1, got {n_bins!r}")
        if isinstance(truth, (str, Path)):
            self.truth_path: Path | None = Path(truth)
            doc = load_coco(truth)
        else:
            self.truth_path = None
            doc = validate_coco(truth)
        self.truth: Mapping[str, Any] = doc
        self.score_threshold = float(score_threshold)
        self.match = match
        self.iou_threshold = float(iou_threshold)
        self.centre_radius = float(centre_radius)
        self.n_bins = int(n_bins)
        self.categories = {int(c["id"]): str(c["name"]) for c in doc["categories"]}
        all_ids = [int(im["id"]) for im in doc["images"]]
        if image_ids is None:
            self.image_ids = all_ids
        else:
            known = set(all_ids)
            unknown = [int(i) for i in image_ids if int(i) not in known]
            if unknown:
                raise InputError(self.truth_path, f"image_ids not in the truth: {unknown[:5]}")
            self.image_ids = list(dict.fromkeys(int(i) for i in image_ids))
        self._evaluated = set(self.image_ids)
        self._truth = self._index_truth(doc)
        self.reset()

    @staticmethod
    def _index_truth(doc: Mapping[str, Any]) -> dict[int, dict[str, np.ndarray]]:
        rows: dict[int, list[Mapping[str, Any]]] = {int(im["id"]): [] for im in doc["images"]}
        for a in doc["annotations"]:
            rows[int(a["image_id"])].append(a)

        def num(a: Mapping[str, Any], key: str) -> float:
            v = a.get(key)
            return float(v) if v is not None else math.nan

        out = {}
        for iid, anns in rows.items():
            xywh = np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4)
            out[iid] = {
                "boxes": np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
                "labels": np.array([int(a["category_id"]) for a in anns], dtype=np.int64),
                "flux_ratio": np.array([num(a, "flux_ratio") for a in anns], dtype=np.float64),
                "snr": np.array([num(a, "snr") for a in anns], dtype=np.float64),
                "has_flux_ratio": np.array(["flux_ratio" in a for a in anns], dtype=bool),
                "has_snr": np.array(["snr" in a for a in anns], dtype=bool),
            }
        return out

    def reset(self) -> None:
        """Forget all processed predictions (keep the truth and settings)."""
        self._preds: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}

    def process(
        self,
        image_id: int,
        boxes: np.ndarray,
        labels: np.ndarray,
        scores: np.ndarray,
    ) -> None:
        """Add the detections of one image.

        Parameters
        ----------
        image_id : int
            COCO image id in the truth (and in the evaluated set).
        boxes : ndarray or Tensor, shape (M, 4)
            ``xyxy`` pixels, as returned by torchvision detectors (M may be 0).
        labels : ndarray or Tensor, shape (M,)
            Category ids of the truth (1 clump, 2 odd_clump).
        scores : ndarray or Tensor, shape (M,)
            Detection scores (finite).

        Notes
        -----
        Processing the same image again adds to its detections.
        """
        iid = int(image_id)
        if iid not in self._truth:
            raise InputError(self.truth_path, f"image_id {iid} is not in the truth")
        if iid not in self._evaluated:
            raise InputError(self.truth_path, f"image_id {iid} is not in the evaluated image_ids")
        b = _to_numpy(boxes, np.float64)
        b = b.reshape(0, 4) if b.size == 0 else b
        lab = _to_numpy(labels, np.int64).reshape(-1)
        sc = _to_numpy(scores, np.float64).reshape(-1)
        if b.ndim != 2 or b.shape[1] != 4 or len(lab) != len(b) or len(sc) != len(b):
            raise InputError(
                None,
                f"image {iid}: boxes must be (M, 4) with M labels and M scores, got boxes "
                f"{b.shape}, labels {lab.shape}, scores {sc.shape}",
            )
        if not (np.isfinite(b).all() and np.isfinite(sc).all()):
            raise InputError(None, f"image {iid}: boxes and scores must be finite")
        bad = sorted(set(lab.tolist()) - set(self.categories))
        if bad:
            raise InputError(
                None, f"image {iid}: unknown label(s) {bad}; categories {sorted(self.categories)}"
            )
        self._preds.setdefault(iid, []).append((b, lab, sc))

    def process_results(self, predictions: Sequence[Mapping[str, Any]]) -> None:
        """Add COCO results records (``bbox`` ``[x, y, w, h]``), validated against the truth."""
        preds = validate_predictions(list(predictions), coco=self.truth)
        by_image: dict[int, list[dict[str, Any]]] = {}
        for p in preds:
            if p["image_id"] in self._evaluated:
                by_image.setdefault(p["image_id"], []).append(p)
        for iid, ps in by_image.items():
            xywh = np.array([p["bbox"] for p in ps], dtype=np.float64)
            self.process(
                iid,
                np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
                np.array([p["category_id"] for p in ps], dtype=np.int64),
                np.array([p["score"] for p in ps], dtype=np.float64),
            )

    def _predictions(self, iid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        chunks = self._preds.get(iid, [])
        if not chunks:
            return np.zeros((0, 4)), np.zeros(0, dtype=np.int64), np.zeros(0)
        return tuple(np.concatenate(x) for x in zip(*chunks))  # type: ignore[return-value]

    def evaluate(self) -> dict[str, Any]:
        """Compute all metrics for the processed detections.

        Returns
        -------
        dict
            JSON-ready except that undefined values are ``float('nan')`` (``metrics.json``
            writes them as null). Keys: ``completeness``, ``purity``, ``f1``, ``n_matched``
            (class-agnostic matching at ``score_threshold``); COCO ``AP``, ``AP50``, ``AP75``,
            ``AP_small``/``_medium``/``_large``, ``AR1``, ``AR10``, ``AR``, ``AR_*`` with
            ``area_ranges``; ``per_class`` {name: {completeness, purity, f1, AP, AP50, AP75,
            AR, n_true, n_pred, n_matched}} (class-aware matching); ``n_images``, ``n_true``,
            ``n_pred`` (predictions with score >= threshold), ``n_pred_all``,
            ``score_threshold``, ``matching``; ``purity_at_completeness`` (overall and per
            class: ``{"0.5"|"0.8"|"0.9": {purity, threshold, completeness}}``, exact over every
            distinct score, :func:`purity_at_completeness`); ``curves`` (``threshold``:
            completeness, purity, F1 and n_pred on a 0..1 grid; ``completeness_vs_flux_ratio`` and
            ``completeness_vs_snr``: log bins, null without those truth fields;
            ``precision_recall``: COCO IoU-0.5 PR curve); ``best_f1`` {threshold,
            completeness, purity, f1} over the grid.
        """
        kw = {
            "rule": self.match,
            "iou_threshold": self.iou_threshold,
            "centre_radius": self.centre_radius,
        }
        t_labels, t_any, t_cls, t_flux, t_snr = [], [], [], [], []
        has_flux = has_snr = False
        p_labels, p_scores, p_any, p_cls = [], [], [], []
        coco_preds: list[dict[str, Any]] = []
        for iid in self.image_ids:
            tr = self._truth[iid]
            pb, pl, ps = self._predictions(iid)
            m_any = match_detections(tr["boxes"], tr["labels"], pb, pl, ps, class_aware=False, **kw)
            m_cls = match_detections(tr["boxes"], tr["labels"], pb, pl, ps, class_aware=True, **kw)
            # score of the detection that found each truth (-inf: never found); with greedy
            # score-ordered matching, truth i is found at threshold t iff this score >= t.
            t_any.append(_found_score(m_any.truth_to_pred, ps))
            t_cls.append(_found_score(m_cls.truth_to_pred, ps))
            t_labels.append(tr["labels"])
            t_flux.append(tr["flux_ratio"])
            t_snr.append(tr["snr"])
            has_flux |= bool(tr["has_flux_ratio"].any())
            has_snr |= bool(tr["has_snr"].any())
            p_labels.append(pl)
            p_scores.append(ps)
            p_any.append(m_any.pred_to_truth >= 0)
            p_cls.append(m_cls.pred_to_truth >= 0)
            for box, lab, s in zip(pb, pl, ps):
                x1, y1, x2, y2 = (float(v) for v in box)
                coco_preds.append(
                    {
                        "image_id": iid,
                        "category_id": int(lab),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": float(s),
                    }
                )

        def cat(xs: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(xs).astype(dtype) if xs else np.zeros(0, dtype=dtype)

        tl, tf_any, tf_cls = cat(t_labels, np.int64), cat(t_any, float), cat(t_cls, float)
        pl, ps = cat(p_labels, np.int64), cat(p_scores, float)
        pm_any, pm_cls = cat(p_any, bool), cat(p_cls, bool)
        thr = self.score_threshold

        def cp(found_score: np.ndarray, matched: np.ndarray, scores: np.ndarray, t: float):
            keep = scores >= t
            n_t, n_p = len(found_score), int(keep.sum())
            n_m = int(np.count_nonzero(matched & keep))
            c = _ratio(int(np.count_nonzero(found_score >= t)), n_t)
            p = _ratio(n_m, n_p)
            return c, p, f1_score(c, p), n_t, n_p, n_m

        c, p, f1, n_true, n_pred, n_matched = cp(tf_any, pm_any, ps, thr)
        per_class: dict[str, dict[str, Any]] = {}
        for cid, name in self.categories.items():
            tsel, psel = tl == cid, pl == cid
            cc, pc, fc, nt, npred, nm = cp(tf_cls[tsel], pm_cls[psel], ps[psel], thr)
            per_class[name] = {
                "purity_at_completeness": purity_at_completeness(
                    tf_cls[tsel], pm_cls[psel], ps[psel]
                ),
                "completeness": cc,
                "purity": pc,
                "f1": fc,
                "n_true": nt,
                "n_pred": npred,
                "n_matched": nm,
            }

        # completeness / purity / F1 versus score threshold
        curve = {"thresholds": THRESHOLD_GRID.tolist(), "completeness": [], "purity": [],
                 "f1": [], "n_pred": []}  # fmt: skip
        for t in THRESHOLD_GRID:
            ct, pt, ft, _, npt, _ = cp(tf_any, pm_any, ps, float(t))
            curve["completeness"].append(ct)
            curve["purity"].append(pt)
            curve["f1"].append(ft)
            curve["n_pred"].append(npt)
        f1s = np.array(curve["f1"], dtype=float)
        if np.isfinite(f1s).any():
            k = int(np.nanargmax(f1s))
            best = {
                "threshold": float(THRESHOLD_GRID[k]),
                "completeness": curve["completeness"][k],
                "purity": curve["purity"][k],
                "f1": curve["f1"][k],
            }
        else:
            best = {"threshold": math.nan, "completeness": math.nan, "purity": math.nan,
                    "f1": math.nan}  # fmt: skip

        found = tf_any >= thr
        flux_curve = (
            binned_completeness(cat(t_flux, float), found, n_bins=self.n_bins) if has_flux else None
        )
        snr_curve = (
            binned_completeness(cat(t_snr, float), found, n_bins=self.n_bins) if has_snr else None
        )

        coco = coco_metrics(
            images=self.truth["images"],
            categories=self.truth["categories"],
            truth=self.truth["annotations"],
            predictions=coco_preds,
            image_ids=self.image_ids,
        )
        for name, block in coco.pop("per_class").items():
            per_class[name].update(block)
        pr = coco.pop("precision_recall")

        metrics: dict[str, Any] = {
            "completeness": c,
            "purity": p,
            "f1": f1,
            "n_matched": n_matched,
            "purity_at_completeness": purity_at_completeness(tf_any, pm_any, ps),
            **coco,
            "area_ranges": area_ranges_description(),
            "per_class": per_class,
            "n_images": len(self.image_ids),
            "n_images_with_truth": sum(1 for i in self.image_ids if len(self._truth[i]["labels"])),
            "n_true": n_true,
            "n_pred": n_pred,
            "n_pred_all": len(ps),
            "score_threshold": thr,
            "matching": {
                "rule": self.match,
                "iou_threshold": self.iou_threshold,
                "centre_radius": self.centre_radius,
                **_MATCHING_NOTES,
            },
            "curves": {
                "threshold": curve,
                "completeness_vs_flux_ratio": flux_curve,
                "completeness_vs_snr": snr_curve,
                "precision_recall": pr,
            },
            "best_f1": best,
        }
        return metrics


def to_json_safe(obj: Any) -> Any:
    """Recursively convert numpy values to Python and NaN/inf to None (valid JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def evaluate_detections(
    *,
    truth: str | Path | dict,
    predictions: str | Path | list,
    out: str | Path | None = None,
    score_threshold: float = 0.3,
    match: Literal["iou", "centre"] = "iou",
    iou_threshold: float = 0.5,
    centre_radius: float = 5.0,
    plots: bool = True,
) -> dict[str, Any]:
    """Score COCO-results predictions against COCO truth; optionally write metrics and plots.

    Parameters
    ----------
    truth : str, Path or dict
        COCO truth file or dict (see :func:`~clumpdet.data.coco.load_coco`).
    predictions : str, Path or list
        COCO results file or list of ``{image_id, category_id, bbox [x, y, w, h], score}``.
    out : str or Path, optional
        Output directory: ``metrics.json`` (NaN written as null) and, with ``plots``, the PNGs
        ``completeness_purity_vs_threshold.png``, ``precision_recall.png`` and, when the truth
        has ``flux_ratio``/``snr``, ``completeness_vs_flux_ratio.png`` and
        ``completeness_vs_snr.png``. Every file is written atomically, metrics.json last;
        nothing is written if the inputs are invalid.
    score_threshold : float
        Operating threshold for completeness and purity (Popp et al. use 0.3).
    match : {"iou", "centre"}
        Matching rule.
    iou_threshold : float
        Minimum IoU for ``match="iou"``.
    centre_radius : float
        Maximum centre distance in pixels for ``match="centre"``.
    plots : bool
        Write the PNGs when ``out`` is given.

    Returns
    -------
    dict
        The metrics (see :meth:`DetectionEvaluator.evaluate`), with NaN for undefined values.

    Raises
    ------
    InputError
        Invalid truth or predictions (e.g. a prediction referencing an unknown image id).
    """
    truth_doc = load_coco(truth) if isinstance(truth, (str, Path)) else validate_coco(truth)
    if isinstance(predictions, (str, Path)):
        preds = load_predictions(predictions, coco=truth_doc)
    else:
        preds = validate_predictions(predictions, coco=truth_doc)
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise InputError(out, "output path exists and is not a directory")
    ev = DetectionEvaluator(
        truth_doc,
        score_threshold=score_threshold,
        match=match,
        iou_threshold=iou_threshold,
        centre_radius=centre_radius,
    )
    ev.process_results(preds)
    metrics = ev.evaluate()
    metrics["truth_file"] = str(truth) if isinstance(truth, (str, Path)) else None
    metrics["predictions_file"] = str(predictions) if isinstance(predictions, (str, Path)) else None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written: list[str] = []
        if plots:
            from clumpdet.evaluation.plots import write_plots

            written = [p.name for p in write_plots(metrics, out)]
        metrics["plots"] = written
        with atomic_write(out / "metrics.json", "w") as fh:
            json.dump(to_json_safe(metrics), fh, indent=1, allow_nan=False)
    return metrics
