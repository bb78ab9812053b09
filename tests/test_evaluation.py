"""Detection evaluation (clumpdet.evaluation): hand-computed matching, metrics, files and CLI."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clumpdet.cli import main
from clumpdet.data.coco import CLUMP_CATEGORIES, write_coco, write_predictions
from clumpdet.errors import InputError
from clumpdet.evaluation import (
    DetectionEvaluator,
    binned_completeness,
    box_iou,
    centre_distance,
    evaluate_detections,
    match_detections,
)

# Five 10x10 truth clumps (xywh) on two 100x100 images, plus image 3 without clumps.
TRUTH = {
    1: [((10, 10), 1), ((40, 10), 1), ((70, 10), 2)],
    2: [((10, 50), 1), ((50, 50), 2)],
    3: [],
}


def _truth_doc(*, extras: bool = True) -> dict[str, Any]:
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.fits"} for i in TRUTH]
    anns = []
    for iid, clumps in TRUTH.items():
        for (x, y), cat in clumps:
            a = {"id": len(anns) + 1, "image_id": iid, "category_id": cat, "bbox": [x, y, 10, 10]}
            if extras:
                a.update(flux_ratio=0.01 * 3 ** len(anns), snr=5.0 * 2 ** len(anns))
            anns.append(a)
    return {"images": images, "annotations": anns, "categories": copy.deepcopy(CLUMP_CATEGORIES)}


def _exact(dx: float = 0.0) -> list[dict[str, Any]]:
    """The truth as COCO results with score 1, shifted by ``dx`` pixels in x."""
    return [
        {"image_id": iid, "category_id": cat, "bbox": [x + dx, y, 10, 10], "score": 1.0}
        for iid, clumps in TRUTH.items()
        for (x, y), cat in clumps
    ]


def _run(preds: list[dict[str, Any]], truth: dict | None = None, **kw: Any) -> dict[str, Any]:
    return evaluate_detections(truth=truth or _truth_doc(), predictions=preds, **kw)


# ----------------------------------------------------------------------------- geometry


def test_box_iou_and_centre_distance_hand_values() -> None:
    a = np.array([[0, 0, 10, 10]], dtype=float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 5, 5]], dtype=float)
    np.testing.assert_allclose(box_iou(a, b), [[1 / 3, 1.0, 0.0, 0.25]])
    np.testing.assert_allclose(centre_distance(a, b), [[5.0, 0.0, 20 * math.sqrt(2), 2.5 * 2**0.5]])
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def test_box_iou_matches_torchvision() -> None:
    import torch
    from torchvision.ops import box_iou as tv_iou

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 50, (2, 30, 2))
    wh = rng.uniform(1, 20, (2, 30, 2))
    a, b = (np.concatenate([xy[k], xy[k] + wh[k]], axis=1) for k in range(2))
    expected = tv_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(box_iou(a, b), expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- matching


def test_greedy_one_to_one_higher_score_wins() -> None:
    truth = np.array([[0, 0, 10, 10]], dtype=float)
    # prediction 0 overlaps perfectly but scores lower; prediction 1 (IoU 0.6) scores higher
    preds = np.array([[0, 0, 10, 10], [0, 0, 6, 10]], dtype=float)
    m = match_detections(truth, [1], preds, [1, 1], [0.6, 0.9], rule="iou", iou_threshold=0.5)
    assert m.pred_to_truth.tolist() == [-1, 0]
    assert m.truth_to_pred.tolist() == [1]
    assert m.quality[1] == pytest.approx(0.6)
    assert (m.completeness, m.purity) == (1.0, 0.5)


def test_greedy_takes_best_unmatched_truth() -> None:
    truths = np.array([[0, 0, 10, 10], [4, 0, 14, 10]], dtype=float)
    pred = np.array([[3, 0, 13, 10], [0, 0, 10, 10]], dtype=float)
    # pred 0 (score .9): IoU 7/13 with truth 0 and 9/11 with truth 1 -> takes truth 1;
    # pred 1 (score .8): truth 1 is gone, truth 0 (IoU 1) is free -> takes truth 0
    m = match_detections(truths, [1, 1], pred, [1, 1], [0.9, 0.8], rule="iou")
    assert m.pred_to_truth.tolist() == [1, 0]
    # centre rule: distance 1 to truth 1, 3 to truth 0
    m = match_detections(truths, [1, 1], pred[:1], [1], [0.9], rule="centre", centre_radius=3.5)
    assert m.pred_to_truth.tolist() == [1]
    assert m.quality[0] == pytest.approx(1.0)


def test_class_aware_and_empty_inputs() -> None:
    t = np.array([[0, 0, 10, 10]], dtype=float)
    m = match_detections(t, [1], t, [2], [0.9], class_aware=True)
    assert m.n_matched == 0
    m = match_detections(t, [1], t, [2], [0.9], class_aware=False)
    assert m.n_matched == 1
    m = match_detections(np.zeros((0, 4)), [], t, [1], [0.5])
    assert math.isnan(m.completeness) and m.purity == 0.0
    m = match_detections(t, [1], np.zeros((0, 4)), [], [])
    assert m.completeness == 0.0 and math.isnan(m.purity)
    with pytest.raises(ValueError, match="inconsistent lengths"):
        match_detections(t, [1, 2], t, [1], [0.5])


def test_score_prefix_of_full_matching_equals_rematching() -> None:
    """The threshold curve relies on: matching(score >= t) == prefix of matching(all)."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 60, (12, 2))
    truth = np.concatenate([xy, xy + 10], axis=1)
    pxy = np.repeat(xy, 3, axis=0) + rng.normal(0, 3, (36, 2))
    preds = np.concatenate([pxy, pxy + rng.uniform(8, 12, (36, 1))], axis=1)
    scores = np.round(rng.uniform(0, 1, 36), 1)  # ties on purpose
    tl, pl = rng.integers(1, 3, 12), rng.integers(1, 3, 36)
    for rule in ("iou", "centre"):
        full = match_detections(truth, tl, preds, pl, scores, rule=rule, centre_radius=3.0)
        for t in (0.0, 0.3, 0.55, 0.8, 1.0):
            keep = scores >= t
            sub = match_detections(truth, tl, preds[keep], pl[keep], scores[keep], rule=rule,
                                   centre_radius=3.0)  # fmt: skip
            prefix = np.where(keep & (full.pred_to_truth >= 0), full.pred_to_truth, -1)[keep]
            assert sub.pred_to_truth.tolist() == prefix.tolist()


# ----------------------------------------------------------------------------- metrics


def test_truth_as_predictions_is_perfect() -> None:
    m = _run(_exact())
    assert m["AP"] == pytest.approx(1.0, abs=1e-6)
    assert m["AP50"] == pytest.approx(1.0, abs=1e-6)
    assert m["AR"] == pytest.approx(1.0)
    assert (m["completeness"], m["purity"], m["f1"]) == (1.0, 1.0, 1.0)
    for name, n in (("clump", 3), ("odd_clump", 2)):
        pc = m["per_class"][name]
        assert (pc["completeness"], pc["purity"], pc["n_true"], pc["n_pred"]) == (1.0, 1.0, n, n)
        assert pc["AP"] == pytest.approx(1.0, abs=1e-6)
        assert pc["AP50"] == pytest.approx(1.0, abs=1e-6)
    assert (m["n_images"], m["n_images_with_truth"], m["n_true"], m["n_pred"]) == (3, 2, 5, 5)


def test_shifted_predictions_iou_vs_centre() -> None:
    shifted = _exact(dx=5.0)  # IoU = 50 / 150 = 1/3, centre distance 5 px
    m = _run(shifted, match="iou", iou_threshold=0.5)
    assert (m["completeness"], m["purity"], m["f1"]) == (0.0, 0.0, 0.0)
    assert m["AP50"] == pytest.approx(0.0)
    m = _run(shifted, match="iou", iou_threshold=0.3)
    assert (m["completeness"], m["purity"]) == (1.0, 1.0)
    m = _run(shifted, match="centre", centre_radius=6.0)
    assert (m["completeness"], m["purity"]) == (1.0, 1.0)
    assert m["matching"]["rule"] == "centre" and m["matching"]["centre_radius"] == 6.0
    m = _run(shifted, match="centre", centre_radius=4.9)
    assert m["completeness"] == 0.0


def test_mixed_hand_made_set() -> None:
    p = _exact()
    p[1]["bbox"][0] += 5  # 1 shifted (IoU 1/3, distance 5)
    del p[4]  # 1 missing
    p += [  # 2 false positives, one on the empty image
        {"image_id": 1, "category_id": 1, "bbox": [80, 80, 10, 10], "score": 0.5},
        {"image_id": 3, "category_id": 2, "bbox": [30, 30, 10, 10], "score": 0.5},
    ]
    m = _run(p)  # 3 of 5 found, 3 of 6 detections right
    assert (m["completeness"], m["purity"]) == (pytest.approx(3 / 5), pytest.approx(3 / 6))
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.5 / 1.1)
    assert (m["n_true"], m["n_pred"], m["n_matched"]) == (5, 6, 3)
    m = _run(p, match="centre", centre_radius=6)  # the shifted one now counts
    assert (m["completeness"], m["purity"]) == (pytest.approx(4 / 5), pytest.approx(4 / 6))


def test_dropped_and_extra_predictions() -> None:
    m = _run(_exact()[:3])  # 2 of 5 missing
    assert (m["completeness"], m["purity"]) == (pytest.approx(3 / 5), 1.0)
    assert m["per_class"]["odd_clump"]["completeness"] == 0.5
    extra = [
        {"image_id": 2, "category_id": 1, "bbox": [80, 80, 10, 10], "score": 0.9},
        {"image_id": 3, "category_id": 2, "bbox": [5, 5, 12, 12], "score": 0.9},
    ]
    m = _run(_exact() + extra)  # 2 false positives, one on the image without clumps
    assert (m["completeness"], m["purity"]) == (1.0, pytest.approx(5 / 7))
    assert m["per_class"]["clump"]["purity"] == pytest.approx(3 / 4)
    assert m["per_class"]["odd_clump"]["purity"] == pytest.approx(2 / 3)
    assert m["AP50"] == pytest.approx(1.0, abs=1e-6)  # the false positives rank last
    for e in extra:
        e["score"] = 2.0  # now they outrank every true detection
    m = _run(_exact() + extra)
    # clump: FP, TP, TP, TP -> interpolated precision 3/4 at every recall; odd_clump: 2/3
    assert m["per_class"]["clump"]["AP50"] == pytest.approx(3 / 4, abs=1e-6)
    assert m["per_class"]["odd_clump"]["AP50"] == pytest.approx(2 / 3, abs=1e-6)
    assert m["AP50"] == pytest.approx((3 / 4 + 2 / 3) / 2, abs=1e-6)


def test_wrong_class_counts_overall_not_per_class() -> None:
    p = _exact()
    p[0]["category_id"] = 2  # a clump reported as odd_clump
    m = _run(p)
    assert (m["completeness"], m["purity"]) == (1.0, 1.0)  # class-agnostic overall
    clump, odd = m["per_class"]["clump"], m["per_class"]["odd_clump"]
    assert (clump["completeness"], clump["purity"]) == (pytest.approx(2 / 3), 1.0)
    assert (odd["completeness"], odd["purity"]) == (1.0, pytest.approx(2 / 3))
    assert (clump["n_pred"], odd["n_pred"]) == (2, 3)
    assert "class-agnostic" in m["matching"]["overall"]


def test_score_threshold_and_threshold_curve() -> None:
    p = _exact()
    for k in (3, 4):
        p[k]["score"] = 0.2  # two correct but unconfident detections
    p.append({"image_id": 3, "category_id": 1, "bbox": [30, 30, 10, 10], "score": 0.5})
    p.append({"image_id": 1, "category_id": 2, "bbox": [80, 80, 10, 10], "score": 0.5})
    m = _run(p, score_threshold=0.3)
    assert (m["completeness"], m["purity"]) == (pytest.approx(3 / 5), pytest.approx(3 / 5))
    assert (m["n_pred"], m["n_pred_all"]) == (5, 7)
    cur = m["curves"]["threshold"]
    assert len(cur["thresholds"]) == 101
    at = {round(t, 2): i for i, t in enumerate(cur["thresholds"])}
    assert cur["completeness"][at[0.0]] == 1.0
    assert cur["purity"][at[0.0]] == pytest.approx(5 / 7)
    assert cur["purity"][at[0.3]] == pytest.approx(3 / 5)
    assert (cur["completeness"][at[0.6]], cur["purity"][at[0.6]]) == (pytest.approx(0.6), 1.0)
    assert cur["n_pred"][at[0.6]] == 3
    assert math.isnan(cur["purity"][at[1.0]]) is False  # score 1.0 >= 1.0 still counts
    # best F1: 10/12 for t <= 0.2 (C=1, P=5/7); first grid point wins ties
    best = m["best_f1"]
    assert best["f1"] == pytest.approx(10 / 12)
    assert best["threshold"] == 0.0
    assert (best["completeness"], best["purity"]) == (1.0, pytest.approx(5 / 7))


def test_empty_predictions() -> None:
    m = _run([])
    assert (m["AP"], m["AP50"], m["AR"]) == (0.0, 0.0, 0.0)
    assert m["completeness"] == 0.0
    assert math.isnan(m["purity"]) and m["f1"] == 0.0  # truths, nothing found
    assert m["n_pred"] == 0
    assert m["best_f1"]["f1"] == 0.0


def test_no_truth_at_all_only_false_positives() -> None:
    truth = _truth_doc()
    truth["annotations"] = []
    m = _run(_exact(), truth=truth)
    assert math.isnan(m["completeness"]) and m["purity"] == 0.0
    assert math.isnan(m["AP"])  # nothing to score AP against


def test_area_ranges_by_box_side() -> None:
    truth = _truth_doc(extras=False)
    sides = [10, 20, 30, 10, 10]  # small (<12 px), medium, large (>24 px)
    for a, s in zip(truth["annotations"], sides):
        a["bbox"][2:] = [s, s]
    perfect = [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
         "score": 1.0}
        for a in truth["annotations"]
    ]  # fmt: skip
    m = _run(perfect, truth=truth)
    for k in ("AP_small", "AP_medium", "AP_large"):
        assert m[k] == pytest.approx(1.0, abs=1e-6), k
    assert m["area_ranges"]["small"]["max_side_px"] == 12.0
    assert m["area_ranges"]["large"]["min_side_px"] == 24.0
    m = _run([p for p in perfect if p["bbox"][2] != 30], truth=truth)  # miss the large one
    assert m["AP_large"] == 0.0
    assert m["AP_small"] == pytest.approx(1.0, abs=1e-6)
    m = _run(perfect[:1], truth=_truth_doc())  # all boxes 10 px: no medium/large truth
    assert math.isnan(m["AP_large"]) and math.isnan(m["AP_medium"])


def test_binned_completeness_hand_values() -> None:
    v = np.array([0.01, 0.03, 0.3, 0.5, 1.0, np.nan, -1.0])
    f = np.array([True, False, True, True, False, True, True])
    c = binned_completeness(v, f, n_bins=2)
    np.testing.assert_allclose(c["bin_edges"], [0.01, 0.1, 1.0])
    assert c["n_true"] == [2, 3] and c["n_found"] == [1, 2]
    np.testing.assert_allclose(c["completeness"], [0.5, 2 / 3])
    assert c["n_excluded"] == 2
    for lo, p, hi in zip(c["completeness_low"], c["completeness"], c["completeness_high"]):
        assert 0 <= lo < p < hi <= 1
    c = binned_completeness(np.array([0.01, 1.0]), np.array([True, True]), n_bins=3)
    assert c["n_true"] == [1, 0, 1] and math.isnan(c["completeness"][1])
    assert binned_completeness(np.array([np.nan]), np.array([True])) is None


def test_flux_and_snr_curves_present_or_skipped() -> None:
    m = _run(_exact()[:3])  # the first three truths (lowest flux ratio and S/N) are found
    cur = m["curves"]["completeness_vs_flux_ratio"]
    assert sum(cur["n_true"]) == 5 and sum(cur["n_found"]) == 3
    assert cur["completeness"][0] == 1.0 and cur["completeness"][-1] == 0.0
    assert sum(m["curves"]["completeness_vs_snr"]["n_found"]) == 3
    m = _run(_exact(), truth=_truth_doc(extras=False))
    assert m["curves"]["completeness_vs_flux_ratio"] is None
    assert m["curves"]["completeness_vs_snr"] is None


# ----------------------------------------------------------------------------- evaluator


def test_evaluator_in_memory_process_reset_and_subsets() -> None:
    import torch

    ev = DetectionEvaluator(_truth_doc())
    ev.process(1, torch.tensor([[10.0, 10, 20, 20], [40, 10, 50, 20], [70, 10, 80, 20]]),
               torch.tensor([1, 1, 2]), torch.tensor([0.9, 0.8, 0.7]))  # fmt: skip
    ev.process(3, np.zeros((0, 4)), np.zeros(0, dtype=int), np.zeros(0))
    m = ev.evaluate()  # image 2 never processed: its two clumps count as missed
    assert (m["completeness"], m["purity"]) == (pytest.approx(3 / 5), 1.0)
    ev.process(2, np.array([[10.0, 50, 20, 60]]), np.array([1]), np.array([0.9]))
    assert ev.evaluate()["completeness"] == pytest.approx(4 / 5)
    ev.reset()
    assert ev.evaluate()["n_pred_all"] == 0

    sub = DetectionEvaluator(_truth_doc(), image_ids=[1])
    sub.process(1, np.array([[10.0, 10, 20, 20]]), np.array([1]), np.array([0.9]))
    m = sub.evaluate()
    assert (m["n_images"], m["n_true"], m["completeness"]) == (1, 3, pytest.approx(1 / 3))
    with pytest.raises(InputError, match="not in the evaluated image_ids"):
        sub.process(2, np.zeros((0, 4)), [], [])


def test_evaluator_rejects_bad_process_input() -> None:
    ev = DetectionEvaluator(_truth_doc())
    box = np.array([[0.0, 0, 10, 10]])
    with pytest.raises(InputError, match="image_id 99 is not in the truth"):
        ev.process(99, box, [1], [0.5])
    with pytest.raises(InputError, match="unknown label"):
        ev.process(1, box, [3], [0.5])
    with pytest.raises(InputError, match="boxes must be"):
        ev.process(1, box, [1, 1], [0.5])
    with pytest.raises(InputError, match="finite"):
        ev.process(1, box, [1], [np.nan])


# ----------------------------------------------------------------------------- files and CLI


def _files(tmp_path: Path, preds: list[dict[str, Any]]) -> tuple[Path, Path]:
    d = _truth_doc()
    truth = write_coco(tmp_path / "sim" / "annotations.json", images=d["images"],
                       annotations=d["annotations"])  # fmt: skip
    return truth, write_predictions(tmp_path / "pred.json", preds)


REQUIRED_KEYS = {
    "completeness", "purity", "f1", "AP", "AP50", "AP75", "AR", "per_class", "n_images",
    "n_true", "n_pred", "score_threshold", "matching", "curves", "best_f1",
}  # fmt: skip


def _strict_json(path: Path) -> dict[str, Any]:
    def no_nan(token: str) -> None:
        raise AssertionError(f"{path} holds {token}")

    return json.loads(path.read_text(), parse_constant=no_nan)


def test_evaluate_detections_writes_metrics_and_plots(tmp_path: Path) -> None:
    p = _exact()[:4]
    truth, pred = _files(tmp_path, p)
    out = tmp_path / "eval"
    m = evaluate_detections(truth=truth, predictions=pred, out=out)
    doc = _strict_json(out / "metrics.json")
    assert REQUIRED_KEYS <= set(doc)
    assert doc["completeness"] == pytest.approx(0.8) and doc["purity"] == 1.0
    assert set(doc["per_class"]) == {"clump", "odd_clump"}
    assert {"completeness", "purity", "f1", "AP", "AP50", "n_true", "n_pred"} <= set(
        doc["per_class"]["clump"]
    )
    assert doc["matching"] == {**doc["matching"], "rule": "iou", "iou_threshold": 0.5}
    assert set(doc["best_f1"]) == {"threshold", "completeness", "purity", "f1"}
    assert doc["AP"] == pytest.approx(m["AP"])
    pngs = {
        "completeness_purity_vs_threshold.png", "completeness_vs_flux_ratio.png",
        "completeness_vs_snr.png", "precision_recall.png",
    }  # fmt: skip
    assert set(doc["plots"]) == pngs
    for name in pngs:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(x.name for x in out.iterdir()) == sorted([*pngs, "metrics.json"])


def test_evaluate_detections_null_for_nan(tmp_path: Path) -> None:
    truth, pred = _files(tmp_path, [])
    evaluate_detections(truth=truth, predictions=pred, out=tmp_path / "e", plots=False)
    doc = json.loads((tmp_path / "e" / "metrics.json").read_text())
    # truths but no predictions: nothing found, so F1 = 2 TP / (2 TP + FP + FN) = 0
    assert doc["purity"] is None and doc["f1"] == 0.0 and doc["completeness"] == 0.0
    assert doc["plots"] == []


def test_f1_score_conventions() -> None:
    from clumpdet.evaluation import f1_score

    assert f1_score(0.5, 0.5) == pytest.approx(0.5)
    assert f1_score(0.0, math.nan) == 0.0  # truths, no predictions
    assert math.isnan(f1_score(math.nan, math.nan))  # no truths
    assert f1_score(0.0, 0.0) == 0.0


def test_cli_evaluate_ok_and_centre(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth, pred = _files(tmp_path, _exact(dx=5.0))
    out = tmp_path / "cli"
    argv = ["evaluate", "--truth", str(truth), "--pred", str(pred), "--out", str(out)]
    assert main(argv) == 0
    assert "completeness=0.000 purity=0.000" in capsys.readouterr().out
    assert main([*argv, "--match", "centre", "--radius", "6"]) == 0
    assert "completeness=1.000 purity=1.000" in capsys.readouterr().out
    assert _strict_json(out / "metrics.json")["matching"]["rule"] == "centre"


def test_cli_evaluate_unknown_image_id(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = _exact()
    p[2]["image_id"] = 999
    truth, pred = _files(tmp_path, p)
    out = tmp_path / "cli"
    rc = main(["evaluate", "--truth", str(truth), "--pred", str(pred), "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err == f"clumpdet: error: {pred}: prediction 2 references unknown image_id 999"
    assert not (out / "metrics.json").exists()


def test_purity_at_completeness_is_exact_over_scores() -> None:
    from clumpdet.evaluation.detection import purity_at_completeness

    # 5 truths; predictions by score: TP .9, FP .8, TP .7, TP .6, FP .5, TP .4, (truth 5 missed)
    fs = np.array([0.9, 0.7, 0.6, 0.4, -np.inf])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    matched = np.array([True, False, True, True, False, True])
    got = purity_at_completeness(fs, matched, scores, targets=(0.6, 0.8, 0.9))
    assert got["0.6"] == {"purity": 0.75, "threshold": 0.6, "completeness": 0.6}
    assert got["0.8"] == {"purity": 4 / 6, "threshold": 0.4, "completeness": 0.8}
    assert math.isnan(got["0.9"]["purity"])  # never reached
    # through the evaluator: the exact truth reaches completeness 1 at purity 1
    m = _run(_exact())
    assert m["purity_at_completeness"]["0.9"]["purity"] == 1.0
    assert m["per_class"]["clump"]["purity_at_completeness"]["0.9"]["purity"] == 1.0
