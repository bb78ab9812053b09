"""Galaxy Zoo decision tree (clumpdet.tasks.gz_tree) and classification losses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clumpdet.tasks import gz_tree
from clumpdet.tasks.losses import (
    dirichlet_multinomial_loss,
    dirichlet_multinomial_nll,
    vote_fraction_mse,
)


def col(name: str) -> int:
    return gz_tree.ANSWER_NAMES.index(name)


def test_tree_structure_matches_facts():
    assert len(gz_tree.QUESTIONS) == 11
    assert gz_tree.N_ANSWERS == 37 == len(gz_tree.ANSWER_NAMES) == len(gz_tree.GZ2_COLUMNS)
    assert gz_tree.ANSWER_NAMES[:4] == ("Class1.1", "Class1.2", "Class1.3", "Class2.1")
    assert gz_tree.ANSWER_NAMES[-1] == "Class11.6"
    sizes = [len(q.answers) for q in gz_tree.QUESTIONS]
    assert sizes == [3, 2, 2, 2, 4, 2, 3, 7, 3, 3, 6]
    parents = {q.number: q.parent for q in gz_tree.QUESTIONS}
    assert parents == {
        1: None,
        2: "Class1.2",
        3: "Class2.2",
        4: "Class2.2",
        5: "Class2.2",
        6: None,
        7: "Class1.1",
        8: "Class6.1",
        9: "Class2.1",
        10: "Class4.1",
        11: "Class4.1",
    }
    sl = gz_tree.question_slices()
    assert sl[1] == slice(0, 3) and sl[8] == slice(18, 25) and sl[11] == slice(31, 37)
    # GZ2 task tNN <-> Kaggle ClassNN, answers in the same order
    for stem, name in zip(gz_tree.GZ2_COLUMNS, gz_tree.ANSWER_NAMES):
        assert int(stem[1:3]) == int(name[5:].split(".")[0])
    assert gz_tree.GZ2_COLUMNS[col("Class8.7")] == "t08_odd_feature_a38_dust_lane"
    assert gz_tree.GZ2_COLUMNS[col("Class11.5")] == "t11_arms_number_a36_more_than_4"


def _hand_row() -> tuple[np.ndarray, dict[str, float]]:
    """Raw outputs and the hand-computed normalised values."""
    raw = np.zeros(37)
    sl = gz_tree.question_slices()
    raw[sl[1]] = (0.2, 0.7, 0.1)
    raw[sl[2]] = (1, 3)  # -> (0.25, 0.75) x Q1.2 = 0.7
    raw[sl[3]] = (1, 1)
    raw[sl[4]] = (3, 1)
    raw[sl[5]] = (0, 1, 1, 2)
    raw[sl[6]] = (2, 2)
    raw[sl[7]] = (1, 1, 2)
    raw[sl[8]] = (1, 1, 1, 1, 1, 1, 1)
    raw[sl[9]] = (0, 0, 5)
    raw[sl[10]] = (1, 0, 1)
    raw[sl[11]] = (0, 2, 0, 0, 0, 0)
    expected = {
        "Class1.1": 0.2,
        "Class1.2": 0.7,
        "Class1.3": 0.1,
        "Class2.1": 0.175,
        "Class2.2": 0.525,
        "Class3.1": 0.2625,
        "Class3.2": 0.2625,
        "Class4.1": 0.39375,
        "Class4.2": 0.13125,
        "Class5.1": 0.0,
        "Class5.2": 0.13125,
        "Class5.4": 0.2625,
        "Class6.1": 0.5,
        "Class6.2": 0.5,
        "Class7.1": 0.05,
        "Class7.3": 0.1,
        "Class8.7": 0.5 / 7,
        "Class9.2": 0.0,
        "Class9.3": 0.175,
        "Class10.1": 0.196875,
        "Class10.2": 0.0,
        "Class10.3": 0.196875,
        "Class11.2": 0.39375,
        "Class11.6": 0.0,
    }
    return raw, expected


def test_normalise_matches_hand_computed_values_numpy_and_torch():
    raw, expected = _hand_row()
    out_np = gz_tree.normalise(raw[None])
    assert isinstance(out_np, np.ndarray) and out_np.shape == (1, 37)
    for name, value in expected.items():
        assert out_np[0, col(name)] == pytest.approx(value, abs=1e-9), name
    t = torch.tensor(raw[None], dtype=torch.float64, requires_grad=True)
    out_t = gz_tree.normalise(t)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.detach().numpy(), out_np, atol=1e-12)
    out_t[0, col("Class10.1")].backward()  # differentiable through the parents
    assert t.grad is not None and t.grad[0, col("Class1.2")] != 0
    assert gz_tree.check_tree_consistency(out_np, 1e-9) == []


def test_normalise_softmax_and_negative_inputs_are_consistent():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(5, 37))
    for method, x in (("sum", np.abs(raw)), ("softmax", raw)):
        out = gz_tree.normalise(x, method=method)
        assert (out >= 0).all() and (out <= 1).all()
        assert gz_tree.check_tree_consistency(out, 1e-6) == []
    clipped = gz_tree.normalise(-np.abs(raw[:1]))  # "sum" clips negatives (ReLU) -> all 0
    assert np.all(clipped == 0)
    out = gz_tree.normalise(np.zeros((1, 37)), method="softmax")  # softmax never gives all 0
    assert gz_tree.check_tree_consistency(out, 1e-6) == []
    with pytest.raises(ValueError, match="37"):
        gz_tree.normalise(np.ones((2, 36)))


def test_check_tree_consistency_reports_row_question_and_sums():
    good = gz_tree.normalise(np.random.default_rng(1).uniform(size=(4, 37)))
    bad = good.copy()
    bad[2, col("Class3.1")] += 0.2  # Q3 no longer sums to Class2.2
    issues = gz_tree.check_tree_consistency(bad, 0.05)
    assert len(issues) == 1
    row, question, expected, actual = issues[0]
    assert (row, question) == (2, 3)
    assert expected == pytest.approx(good[2, col("Class2.2")])
    assert actual == pytest.approx(expected + 0.2)
    bad[0, 0] = np.nan
    assert (0, 1) in [(r, q) for r, q, *_ in gz_tree.check_tree_consistency(bad, 0.05)]


def test_per_question_fractions_inverts_normalise():
    per_q = gz_tree.per_question_fractions(gz_tree.normalise(np.arange(1.0, 38.0)[None]))
    for sl in gz_tree.question_slices().values():
        assert per_q[0, sl].sum() == pytest.approx(1.0)


# ------------------------------------------------------------------------------ losses


def _counts_from(fractions: np.ndarray, votes: int = 40) -> torch.Tensor:
    per_q = gz_tree.per_question_fractions(fractions)
    counts = np.zeros_like(per_q)
    for q, sl in gz_tree.question_slices().items():
        n = votes if q in (1, 6) else votes // 2
        counts[:, sl] = np.round(per_q[:, sl] * n)
    return torch.tensor(counts, dtype=torch.float32)


def test_dirichlet_loss_is_finite_and_lower_for_true_fractions():
    rng = np.random.default_rng(3)
    true = gz_tree.normalise(rng.uniform(0.05, 1, size=(6, 37)))
    counts = _counts_from(true)
    per_q = torch.tensor(gz_tree.per_question_fractions(true), dtype=torch.float32)
    good = 1.0 + 50.0 * per_q  # concentrations proportional to the true fractions
    wrong = 1.0 + 50.0 * per_q.flip(0)  # another galaxy's fractions
    flat = torch.full_like(good, 5.0)
    loss_good = dirichlet_multinomial_loss(good, counts)
    assert torch.isfinite(loss_good) and loss_good.ndim == 0
    assert loss_good < dirichlet_multinomial_loss(wrong, counts)
    assert loss_good < dirichlet_multinomial_loss(flat, counts)
    # gradients flow
    conc = good.clone().requires_grad_(True)
    dirichlet_multinomial_loss(conc, counts).backward()
    assert conc.grad is not None and torch.isfinite(conc.grad).all()


def test_dirichlet_loss_hand_value_and_zero_count_questions():
    # one question of 2 answers, alpha = (1, 1), counts (1, 0): DM(1 vote) = alpha_1 / A = 1/2
    conc = torch.ones(1, 37)
    counts = torch.zeros(1, 37)
    counts[0, 0] = 1.0
    nll = dirichlet_multinomial_nll(conc, counts)
    assert nll.shape == (1, 11)
    assert nll[0, 0].item() == pytest.approx(-np.log(1 / 3), abs=1e-5)  # 3 answers in Q1
    assert torch.all(nll[0, 1:] == 0)  # unanswered questions are skipped
    # Beta-binomial with alpha=(2, 3), counts (2, 1): p = C(3,2) B(4,4)/B(2,3)
    conc2 = torch.tensor([[2.0, 3.0]])
    nll2 = dirichlet_multinomial_nll(conc2, torch.tensor([[2.0, 1.0]]), questions=[slice(0, 2)])
    from math import comb, lgamma

    def log_beta(a, b):
        return lgamma(a) + lgamma(b) - lgamma(a + b)

    expected = -(np.log(comb(3, 2)) + log_beta(4, 4) - log_beta(2, 3))
    assert nll2.item() == pytest.approx(expected, abs=1e-5)


def test_losses_respect_sample_mask():
    torch.manual_seed(0)
    conc = torch.rand(4, 37) * 5 + 0.5
    counts = torch.randint(0, 5, (4, 37)).float()
    nan_counts = counts.clone()
    nan_counts[2:] = float("nan")  # unlabelled samples
    mask = torch.tensor([1, 1, 0, 0], dtype=torch.bool)
    masked = dirichlet_multinomial_loss(conc, nan_counts, mask=mask)
    assert masked.item() == pytest.approx(dirichlet_multinomial_loss(conc[:2], counts[:2]).item())
    none = dirichlet_multinomial_loss(conc, counts, mask=torch.zeros(4, dtype=torch.bool))
    assert none.item() == 0.0

    pred = torch.rand(4, 37)
    target = torch.rand(4, 37)
    assert vote_fraction_mse(pred, target).item() == pytest.approx(
        float(((pred - target) ** 2).mean())
    )
    t_nan = target.clone()
    t_nan[3] = float("nan")
    got = vote_fraction_mse(pred, t_nan, mask=torch.tensor([1, 1, 1, 0]))
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(float(((pred[:3] - target[:3]) ** 2).mean()))
    with pytest.raises(ValueError, match="same|both"):
        vote_fraction_mse(pred, target[:, :5])
