"""``gz_votes``: the 37 Galaxy Zoo 2 vote fractions (Willett et al. 2013; Dieleman et al. 2015).

Raw outputs pass through the decision tree (:func:`clumpdet.tasks.gz_tree.normalise`): each
question's answers are normalised and multiplied by the parent answer, as in Dieleman et al.
(2015), and trained with the MSE of the fractions. With ``model.dirichlet`` the head outputs
positive Dirichlet concentrations instead and is trained with the Dirichlet-multinomial
likelihood of the vote counts (Zoobot, Walmsley et al. 2022); their per-question means are the
fractions.
"""

from __future__ import annotations

import numpy as np

from clumpdet.errors import ConfigError, InputError
from clumpdet.tasks import gz_tree
from clumpdet.tasks.base import TASKS, VoteFractionTask, array_row


@TASKS.register("gz_votes", help="37 Galaxy Zoo vote fractions through the decision tree")
class GzVotesTask(VoteFractionTask):
    """37 decision-tree-normalised fractions. Simulated by ``clumpdet simulate morphology``."""

    name = "gz_votes"
    simulator = "morphology"
    default_label_names = gz_tree.ANSWER_NAMES
    fixed_outputs = gz_tree.N_ANSWERS
    supports_dirichlet = True

    def count_columns(self) -> tuple[str, ...]:
        return tuple(f"count_{c}" for c in self.label_names)

    def check_labels(self, labels, *, source, row=array_row, tol=0.05) -> None:
        super().check_labels(labels, source=source, row=row, tol=tol)
        if tol is None:
            return
        issues = gz_tree.check_tree_consistency(labels, tol)
        if issues:
            r, q, expected, actual = issues[0]
            parent = gz_tree.QUESTIONS[q - 1].parent or "1 (root question)"
            n_rows = len({i[0] for i in issues})
            raise InputError(
                source,
                f"{row(r)}: vote fractions inconsistent with the Galaxy Zoo tree: question {q} "
                f"({gz_tree.QUESTIONS[q - 1].text}) answers sum to {actual:.3f} but parent "
                f"{parent} is {expected:.3f} (tolerance {tol}; {n_rows} row(s) affected)",
            )

    def class_index(self, labels):
        """The Q1 answer (smooth / features / star) with the largest fraction."""
        q1 = gz_tree.question_slices()[1]
        return np.asarray(labels)[:, q1].argmax(axis=1).astype(np.int64)

    def predict(self, outputs, *, dirichlet=False):
        # concentrations are positive: normalise by their sum; logits: a softmax per question
        return gz_tree.normalise(outputs, method="sum" if dirichlet else "softmax")

    def loss(self, outputs, target, *, dirichlet=False, counts=None):
        if not dirichlet:
            return super().loss(outputs, target)
        from clumpdet.tasks.losses import dirichlet_multinomial_loss

        if counts is None:
            raise ConfigError("model.dirichlet: the Dirichlet loss needs vote counts in the data")
        return dirichlet_multinomial_loss(outputs, counts)

    def groups(self):
        return [(f"Q{q}", sl) for q, sl in gz_tree.question_slices().items()]
