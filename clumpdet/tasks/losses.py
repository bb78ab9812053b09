"""Losses for galaxy-classification heads: vote-fraction MSE and the Dirichlet-multinomial loss.

Both take an optional per-sample ``mask`` so that samples without labels for a task can share a
batch with labelled ones (multi-task pretraining); a batch with nothing to learn from returns a
zero that is still connected to the graph.

The Dirichlet-multinomial loss follows Zoobot (Walmsley et al. 2022): for each question the
network predicts Dirichlet concentrations ``alpha`` over that question's answers and the loss is
the negative log-likelihood of the observed vote *counts* ``k`` (``n = sum k`` votes):

.. math::

    \\log p(k \\mid \\alpha) = \\log\\Gamma(n + 1) - \\sum_i \\log\\Gamma(k_i + 1)
        + \\log\\Gamma(A) - \\log\\Gamma(n + A) + \\sum_i [\\log\\Gamma(k_i + \\alpha_i)
        - \\log\\Gamma(\\alpha_i)], \\qquad A = \\sum_i \\alpha_i .

Questions that nobody answered (``n = 0``, e.g. "spiral?" for a smooth galaxy) contribute
exactly 0. The per-question terms are summed and the result averaged over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from clumpdet.tasks.gz_tree import question_slices


def _sample_mask(mask: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor | None:
    if mask is None:
        return None
    m = torch.as_tensor(mask, device=device)
    if m.ndim != 1 or m.shape[0] != n:
        raise ValueError(f"mask must have shape ({n},), got {tuple(m.shape)}")
    return m.to(torch.float32)


def _masked_mean(per_sample: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``per_sample`` (N,) over samples with mask 1; 0 (graph-connected) if none."""
    if mask is None:
        return per_sample.mean() if per_sample.numel() else per_sample.sum()
    weighted = torch.where(mask > 0, per_sample, torch.zeros_like(per_sample)) * mask
    return weighted.sum() / mask.sum().clamp(min=1.0)


def vote_fraction_mse(
    pred: torch.Tensor, target: torch.Tensor, *, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error between predicted and true vote fractions.

    Parameters
    ----------
    pred, target : Tensor, shape (N, K)
        Vote fractions (e.g. the output of :func:`clumpdet.tasks.gz_tree.normalise`).
    mask : Tensor, shape (N,) or (N, K), optional
        1/True where the label is known. Masked-out entries (which may hold NaN) are ignored.

    Returns
    -------
    Tensor, scalar
        Mean over the known entries; its square root is the Kaggle RMSE when nothing is masked.
    """
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(
            f"pred and target must both be (N, K); got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    if mask is None:
        return torch.mean((pred - target) ** 2) if pred.numel() else pred.sum()
    m = torch.as_tensor(mask, device=pred.device)
    if m.shape == pred.shape[:1]:
        m = m[:, None].expand_as(pred)
    if m.shape != pred.shape:
        raise ValueError(
            f"mask must have shape ({pred.shape[0]},) or {tuple(pred.shape)}, got {tuple(m.shape)}"
        )
    keep = m > 0
    diff = torch.where(keep, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return (diff**2).sum() / keep.sum().clamp(min=1)


def dirichlet_multinomial_nll(
    concentrations: torch.Tensor,
    counts: torch.Tensor,
    *,
    questions: Sequence[slice] | None = None,
) -> torch.Tensor:
    """Per-sample, per-question negative log Dirichlet-multinomial likelihood.

    Parameters
    ----------
    concentrations : Tensor, shape (N, K), > 0
        Predicted Dirichlet concentrations, one per answer.
    counts : Tensor, shape (N, K), >= 0
        Observed vote counts (integers, as floats). NaN counts are treated as 0 (no votes).
    questions : sequence of slice, optional
        Answer columns of each question. Default: the 11 Galaxy Zoo 2 questions (K = 37).

    Returns
    -------
    Tensor, shape (N, Q)
        ``-log p(counts | concentrations)`` per question; exactly 0 where a question has no votes.
    """
    if concentrations.shape != counts.shape or concentrations.ndim != 2:
        raise ValueError(
            "concentrations and counts must both be (N, K); got "
            f"{tuple(concentrations.shape)}, {tuple(counts.shape)}"
        )
    qs = list(question_slices().values()) if questions is None else list(questions)
    if qs[-1].stop != concentrations.shape[1] and questions is None:
        raise ValueError(
            f"the Galaxy Zoo tree has {qs[-1].stop} answers, got {concentrations.shape[1]} columns"
        )
    alpha = concentrations
    k = torch.nan_to_num(counts.to(alpha.dtype), nan=0.0).clamp(min=0)
    out = []
    for sl in qs:
        a, c = alpha[:, sl], k[:, sl]
        n = c.sum(dim=1)
        big_a = a.sum(dim=1)
        log_p = (
            torch.lgamma(n + 1)
            - torch.lgamma(c + 1).sum(dim=1)
            + torch.lgamma(big_a)
            - torch.lgamma(n + big_a)
            + (torch.lgamma(c + a) - torch.lgamma(a)).sum(dim=1)
        )
        out.append(torch.where(n > 0, -log_p, torch.zeros_like(log_p)))
    return torch.stack(out, dim=1)


def dirichlet_multinomial_loss(
    concentrations: torch.Tensor,
    counts: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    questions: Sequence[slice] | None = None,
) -> torch.Tensor:
    """Zoobot-style loss: Dirichlet-multinomial NLL summed over questions, mean over the batch.

    Parameters
    ----------
    concentrations : Tensor, shape (N, K), > 0
        Predicted concentrations (e.g. ``1 + 99 * sigmoid(x)`` as in Zoobot).
    counts : Tensor, shape (N, K)
        Vote counts per answer; questions with zero total votes are skipped (masked).
    mask : Tensor, shape (N,), optional
        1/True for samples that have counts; others are ignored (their counts may be NaN).
    questions : sequence of slice, optional
        Answer columns per question; default the 11 Galaxy Zoo 2 questions.

    Returns
    -------
    Tensor, scalar
        Mean over (unmasked) samples of the summed per-question NLL; finite for finite
        positive concentrations.
    """
    m = _sample_mask(mask, concentrations.shape[0], concentrations.device)
    per_q = dirichlet_multinomial_nll(concentrations, counts, questions=questions)
    return _masked_mean(per_q.sum(dim=1), m)
