"""Tests of the source detection / deblending metrics on hand-made truth and detections."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from clumpdet.errors import InputError
from clumpdet.evaluation.deblending import (
    binned_fraction,
    comparison_table,
    evaluate_sources,
    pair_deblended,
    precision_recall,
    psf_fwhm_by_image,
)
from clumpdet.evaluation.matching import match_detections, match_points
from clumpdet.evaluation.plots import plot_source_comparison

FWHM = {1: 4.0, 2: 2.0}  # image 1: radius 0.5 * 4 = 2 px; image 2: the 1.5 px floor


def objects(rows: list[dict]) -> pd.DataFrame:
    """Truth table with the objects.csv columns; defaults: labelled star, isolated, no pair."""
    base = {
        "image_id": 1,
        "category_id": 1,
        "mag": 20.0,
        "labelled": True,
        "nn_sep_fwhm": np.nan,
        "pair_id": -1,
        "pair_sep_fwhm": np.nan,
    }
    df = pd.DataFrame([{**base, **r} for r in rows])
    df.insert(1, "object_id", np.arange(len(df)))
    return df


def preds(rows: list[dict]) -> pd.DataFrame:
    base = {"image_id": 1, "label": 1, "mag": np.nan}
    cols = ["image_id", "x", "y", "label", "score", "mag"]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in cols})
    return pd.DataFrame([{**base, **r} for r in rows])[cols]


PAIR = [
    {"x": 10.0, "y": 10.0, "pair_id": 7, "pair_sep_fwhm": 1.0, "nn_sep_fwhm": 1.0},
    {"x": 14.0, "y": 10.0, "pair_id": 7, "pair_sep_fwhm": 1.0, "nn_sep_fwhm": 1.0},
]


def test_pair_found_twice_is_deblended() -> None:
    res = evaluate_sources(
        objects(PAIR),
        preds([{"x": 10.3, "y": 10.1, "score": 5.0}, {"x": 13.8, "y": 10.0, "score": 4.0}]),
        fwhm_px=FWHM,
    )
    pairs = res["pair_deblending"]
    assert pairs["n_pairs"] == 1 and pairs["n_deblended"] == 1
    assert pairs["rate"] == 1.0 and pairs["rate_close"] == 1.0 and pairs["n_pairs_close"] == 1
    assert res["completeness"] == 1.0 and res["purity"] == 1.0 and res["f1"] == 1.0


def test_pair_rule_needs_each_detection_nearer_its_own_member() -> None:
    m = np.array([[10.0, 10.0], [11.5, 10.0]])  # 0.375 FWHM apart (FWHM 4, radius 2)
    assert pair_deblended(m, np.array([[10.1, 10.0], [11.4, 10.0]]), radius=2.0)
    # both detections between the members, within 2 px of both: matched one-to-one, but the
    # one assigned to member 0 sits nearer member 1 -> not deblended
    assert not pair_deblended(m, np.array([[11.1, 10.0], [10.9, 10.0]]), radius=2.0)
    assert not pair_deblended(m, np.array([[10.0, 10.0], [np.nan, np.nan]]), radius=2.0)
    assert not pair_deblended(m, None, radius=2.0)
    assert not pair_deblended(m, np.array([[10.5, 10.0], [10.5, 10.0]]), radius=2.0)
    # own member farther than the radius
    assert not pair_deblended(m, np.array([[7.5, 10.0], [11.5, 10.0]]), radius=2.0)
    # through evaluate_sources: greedy matching gives det 10.9 -> 11.5 and det 11.1 -> 10.0
    close = [{**PAIR[0]}, {**PAIR[1], "x": 11.5}]
    res = evaluate_sources(
        objects(close),
        preds([{"x": 10.9, "y": 10.0, "score": 5.0}, {"x": 11.1, "y": 10.0, "score": 4.0}]),
        fwhm_px=FWHM,
    )
    assert res["completeness"] == 1.0  # both members matched ...
    assert res["pair_deblending"]["n_deblended"] == 0  # ... but the pair is not deblended
    res = evaluate_sources(
        objects(close),
        preds([{"x": 10.2, "y": 10.0, "score": 5.0}, {"x": 11.4, "y": 10.0, "score": 4.0}]),
        fwhm_px=FWHM,
    )
    assert res["pair_deblending"]["n_deblended"] == 1


def test_one_merged_detection_fails_the_pair() -> None:
    # midway: 2 px from both (inclusive radius) -> it takes the first truth only
    res = evaluate_sources(
        objects(PAIR), preds([{"x": 12.0, "y": 10.0, "score": 5.0}]), fwhm_px=FWHM
    )
    pairs = res["pair_deblending"]
    assert pairs["n_pairs"] == 1 and pairs["n_deblended"] == 0 and pairs["rate"] == 0.0
    assert pairs["rate_close"] == 0.0
    assert res["completeness"] == 0.5 and res["purity"] == 1.0
    # a pair with a member below the labelling limit is not a deblending test
    faint = objects([PAIR[0], {**PAIR[1], "labelled": False}])
    pairs = evaluate_sources(faint, preds([]), fwhm_px=FWHM)["pair_deblending"]
    assert pairs["n_pairs"] == 0 and pairs["n_skipped_unlabelled"] == 1
    assert math.isnan(pairs["rate"])


def test_detection_of_an_unlabelled_object_is_ignored() -> None:
    truth = objects(
        [
            {"x": 30.0, "y": 30.0},
            {"x": 50.0, "y": 50.0, "labelled": False, "mag": 25.5},
        ]
    )
    found = [{"x": 30.2, "y": 30.0, "score": 0.9}]
    base = evaluate_sources(truth, preds(found), fwhm_px=FWHM)
    faint = evaluate_sources(
        truth, preds([*found, {"x": 50.5, "y": 50.3, "score": 0.5}]), fwhm_px=FWHM
    )
    for res in (base, faint):
        assert res["completeness"] == 1.0 and res["purity"] == 1.0 and res["n_fp"] == 0
    assert faint["n_ignored"] == 1 and faint["n_pred"] == 2
    # the faint object is matched one-to-one: a second detection on it is a false positive
    twice = evaluate_sources(
        truth,
        preds(
            [
                *found,
                {"x": 50.5, "y": 50.3, "score": 0.5},
                {"x": 49.8, "y": 50.1, "score": 0.4},
            ]
        ),
        fwhm_px=FWHM,
    )
    assert twice["n_ignored"] == 1 and twice["n_fp"] == 1 and twice["purity"] == 0.5
    # the operating threshold cuts both
    cut = evaluate_sources(
        truth,
        preds([*found, {"x": 50.5, "y": 50.3, "score": 0.5}, {"x": 80, "y": 5, "score": 0.1}]),
        fwhm_px=FWHM,
        score_threshold=0.6,
    )
    assert cut["n_pred_used"] == 1 and cut["n_ignored"] == 0 and cut["purity"] == 1.0


def test_class_aware_precision_at_recall_by_hand() -> None:
    # five labelled stars (four on image 1, one on image 2), one galaxy
    stars = [{"x": 10.0 + 20 * k, "y": 10.0} for k in range(4)] + [
        {"image_id": 2, "x": 40.0, "y": 40.0}
    ]
    truth = objects([*stars, {"x": 80.0, "y": 80.0, "category_id": 2}])
    far = [{"x": 5.0, "y": 90.0}, {"image_id": 2, "x": 90.0, "y": 5.0}]  # near nothing
    # by score: TP, FP, TP, TP, FP, TP
    star_preds = [
        {"x": 10.1, "y": 10.0, "score": 0.9},
        {**far[0], "score": 0.8},
        {"x": 30.0, "y": 10.4, "score": 0.7},
        {"image_id": 2, "x": 40.5, "y": 40.5, "score": 0.6},
        {**far[1], "score": 0.5},
        {"x": 50.0, "y": 9.5, "score": 0.4},
    ]
    # a galaxy-labelled detection on a star (score 0.99) and one on the galaxy (0.95)
    gal_preds = [
        {"x": 70.0, "y": 10.0, "score": 0.99, "label": 2},
        {"x": 80.0, "y": 80.3, "score": 0.95, "label": 2},
    ]
    res = evaluate_sources(truth, preds(star_preds + gal_preds), fwhm_px=FWHM)
    star = res["per_class"]["star"]
    # cumulative: P = 1, 1/2, 2/3, 3/4, 3/5, 4/6 at R = .2, .2, .4, .6, .6, .8
    assert star["n_truth"] == 5 and star["n_pred"] == 6
    assert star["precision_at_recall"] == pytest.approx(4 / 6)
    assert star["max_recall"] == pytest.approx(0.8)
    # all-point AP: envelope 1, .75, .75, 2/3 on the recall steps of 0.2
    assert star["ap"] == pytest.approx(0.2 * (1 + 0.75 + 0.75 + 4 / 6))
    np.testing.assert_allclose(star["curve"]["recall"], [0.2, 0.2, 0.4, 0.6, 0.6, 0.8])
    np.testing.assert_allclose(star["curve"]["precision"], [1, 1 / 2, 2 / 3, 3 / 4, 3 / 5, 4 / 6])
    galaxy = res["per_class"]["galaxy"]
    assert galaxy["n_truth"] == 1 and galaxy["precision_at_recall"] == pytest.approx(0.5)
    # class-agnostic, the galaxy-labelled detection finds the fifth star: all six are found
    assert res["n_tp"] == 6 and res["completeness"] == 1.0 and res["n_fp"] == 2
    # a recall never reached
    strict = evaluate_sources(truth, preds(star_preds + gal_preds), fwhm_px=FWHM, target_recall=1.0)
    assert strict["per_class"]["star"]["precision_at_recall"] is None
    assert strict["per_class"]["star"]["max_recall"] == pytest.approx(0.8)


def test_precision_recall_ties_and_empty() -> None:
    pr = precision_recall(np.array([0.5, 0.5, 0.2]), np.array([True, False, True]), n_truth=2)
    np.testing.assert_allclose(pr["curve"]["recall"], [0.5, 1.0])  # one point per score
    np.testing.assert_allclose(pr["curve"]["precision"], [0.5, 2 / 3])
    assert pr["precision_at_recall"] == pytest.approx(2 / 3)
    empty = precision_recall(np.zeros(0), np.zeros(0, bool), n_truth=3)
    assert empty["precision_at_recall"] is None and empty["max_recall"] == 0.0
    none = precision_recall(np.zeros(0), np.zeros(0, bool), n_truth=0)
    assert none["precision_at_recall"] is None and math.isnan(none["ap"])


def test_binned_curves_counts() -> None:
    mags = [18.2, 18.7, 19.1, 19.4, 19.9, 25.0]
    seps = [0.7, 1.2, np.nan, 2.2, 0.4, 3.0]
    truth = objects(
        [
            {"x": 10.0 + 15 * k, "y": 20.0, "mag": m, "nn_sep_fwhm": s}
            for k, (m, s) in enumerate(zip(mags, seps))
        ]
    )
    truth.loc[5, "labelled"] = False
    found = [0, 2, 3]  # objects 0, 2 and 3 are found
    rows = [{"x": 10.0 + 15 * k, "y": 20.3, "score": 1.0 + k, "mag": np.nan} for k in found]
    rows[0]["mag"] = 19.6  # measured magnitude differs from the truth's 18.2
    rows.append({"x": 100.0, "y": 70.0, "score": 0.5, "mag": 18.5})  # a false positive
    res = evaluate_sources(
        truth, preds(rows), fwhm_px=FWHM, mag_bins=[18, 19, 20], sep_bins=[0, 1, 2, math.inf]
    )
    comp = res["completeness_vs_mag"]
    assert comp["n"] == [2, 3] and comp["k"] == [1, 2] and comp["n_excluded"] == 0
    assert comp["fraction"] == pytest.approx([0.5, 2 / 3])
    assert all(lo <= f <= hi for lo, f, hi in zip(comp["low"], comp["fraction"], comp["high"]))
    pur = res["purity_vs_mag"]  # TPs at 19.6 (measured), 19.1, 19.4 (truth); FP at 18.5
    assert pur["n"] == [1, 3] and pur["k"] == [0, 3]
    csep = res["completeness_vs_sep"]  # NaN separation = isolated, last bin
    assert csep["n"] == [2, 1, 2] and csep["k"] == [1, 0, 2]
    assert csep["bin_centres"][-1] == pytest.approx(2.5)  # open bin drawn half a width past 2
    psep = res["purity_vs_sep"]  # the FP's nearest object is object 5 (separation 3.0)
    assert psep["n"] == [1, 0, 3] and psep["k"] == [1, 0, 2]
    direct = binned_fraction(
        np.array([0.5, 1.5, np.nan, 9.0]), np.array([1, 0, 1, 1]), edges=[0, 1, 2]
    )
    assert direct["n"] == [1, 1] and direct["n_excluded"] == 2
    assert math.isnan(binned_fraction([], [], edges=[0, 1])["fraction"][0])


def test_match_points_equals_match_detections() -> None:
    rng = np.random.default_rng(4)
    for trial in range(5):
        t = rng.uniform(0, 30, (40, 2))
        p = np.vstack([t[:25] + rng.normal(0, 1.0, (25, 2)), rng.uniform(0, 30, (15, 2))])
        s = rng.integers(0, 8, p.shape[0]).astype(float)  # many ties
        if trial == 0:
            p[0] = t[3] + [1.5, 0.0]  # exactly on the radius
        fast = match_points(t, p, s, radius=1.5)
        ref = match_detections(
            np.hstack([t, t]), np.ones(len(t)), np.hstack([p, p]), np.ones(len(p)), s,
            rule="centre", centre_radius=1.5, class_aware=False,
        )  # fmt: skip
        np.testing.assert_array_equal(fast.pred_to_truth, ref.pred_to_truth)
        np.testing.assert_array_equal(fast.truth_to_pred, ref.truth_to_pred)
        np.testing.assert_allclose(fast.quality, ref.quality)


def test_inputs_are_checked_and_empty_predictions_work() -> None:
    truth = objects(PAIR)
    with pytest.raises(InputError, match="missing column"):
        evaluate_sources(truth.drop(columns="labelled"), preds([]), fwhm_px=FWHM)
    with pytest.raises(InputError, match="fwhm_px does not list"):
        evaluate_sources(truth, preds([{"image_id": 9, "x": 1, "y": 1, "score": 1}]), fwhm_px=FWHM)
    with pytest.raises(InputError, match="positive"):
        evaluate_sources(truth, preds([]), fwhm_px={1: 0.0})
    res = evaluate_sources(truth, preds([]), fwhm_px=FWHM)
    assert res["completeness"] == 0.0 and math.isnan(res["purity"]) and res["f1"] == 0.0
    assert res["per_class"]["star"]["precision_at_recall"] is None
    assert psf_fwhm_by_image(
        {"images": [{"id": 1, "psf_fwhm_px": 4.0}, {"id": 2, "psf_fwhm": 0.5, "pixel_scale": 0.25}]}
    ) == {1: 4.0, 2: 2.0}


def test_plots_and_table(tmp_path) -> None:
    truth = objects([*PAIR, {"x": 40.0, "y": 40.0, "category_id": 2, "mag": 21.0}])
    good = preds(
        [
            {"x": 10.3, "y": 10.1, "score": 5.0, "mag": 20.1},
            {"x": 13.8, "y": 10.0, "score": 4.0, "mag": 19.9},
            {"x": 40.0, "y": 40.0, "score": 3.0, "label": 2, "mag": 21.2},
        ]
    )
    merged = preds(
        [
            {"x": 12.0, "y": 10.0, "score": 5.0},
            {"x": 60.0, "y": 60.0, "score": 1.0, "label": 2, "mag": 22.0},
        ]
    )
    results = {
        "detector": evaluate_sources(truth, good, fwhm_px=FWHM),
        "sep": evaluate_sources(truth, merged, fwhm_px=FWHM),
    }
    paths = plot_source_comparison(results, tmp_path / "plots")
    names = sorted(p.name for p in paths)
    assert names == [
        "completeness_purity_vs_mag.png",
        "completeness_purity_vs_separation.png",
        "pair_deblending_vs_separation.png",
        "precision_recall.png",
    ]
    for p in paths:
        assert p.is_file() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = comparison_table(results)
    lines = table.strip().splitlines()
    assert len(lines) == 2 + len(results)
    assert lines[0].startswith("| method | star P@R0.8 | galaxy P@R0.8 | completeness")
    assert "pair-deblend rate (<2 FWHM)" in lines[0] and "pair-deblend rate (all)" in lines[0]
    assert lines[2].startswith("| detector | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 |")
    assert lines[3].startswith("| sep | n/a | n/a | 0.333 | 0.500 |")


def test_image_with_detections_but_no_labelled_object_of_a_class():
    """Regression: an image whose labelled objects are all of one class, with detections of
    the other class, used to index an empty truth array."""
    import pandas as pd

    from clumpdet.evaluation.deblending import evaluate_sources

    objects = pd.DataFrame(
        {"image_id": [0, 0], "category_id": [2, 1], "x": [10.0, 30.0], "y": [10.0, 30.0],
         "labelled": [True, False]}
    )  # fmt: skip
    preds = pd.DataFrame(
        {"image_id": [0, 0], "x": [10.2, 30.1], "y": [10.0, 30.0], "label": [1, 1],
         "score": [0.9, 0.8]}
    )  # fmt: skip
    m = evaluate_sources(objects, preds, fwhm_px={0: 4.0})
    assert m["n_tp"] == 1 and m["n_ignored"] == 1 and m["n_fp"] == 0
    assert m["per_class"]["star"]["n_truth"] == 0


def test_predictions_as_an_astropy_table_give_the_same_metrics() -> None:
    from astropy.table import Table

    truth = objects([*PAIR, {"x": 40.0, "y": 40.0, "category_id": 2, "mag": 21.0}])
    frame = preds(
        [
            {"x": 10.3, "y": 10.1, "score": 5.0, "mag": 20.1},
            {"x": 40.0, "y": 40.0, "score": 3.0, "label": 2, "mag": 21.2},
        ]
    )
    from_frame = evaluate_sources(truth, frame, fwhm_px=FWHM)
    from_table = evaluate_sources(truth, Table.from_pandas(frame), fwhm_px=FWHM)
    assert from_table["n_tp"] == from_frame["n_tp"] == 2
    assert from_table["per_class"] == from_frame["per_class"]


def test_format_number() -> None:
    from clumpdet.utils import format_number

    assert format_number(0.12345) == "0.123" and format_number(2, digits=1) == "2.0"
    assert format_number(None) == format_number(float("nan")) == "n/a"
    assert format_number(np.float32(np.inf), missing="-") == "-"
    assert format_number("sep (tuned)") == "sep (tuned)"
