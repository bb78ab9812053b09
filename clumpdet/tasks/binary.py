"""``binary``: any one 0/1 label column (ringed or not, barred or not ...), named by the data."""

from __future__ import annotations

import numpy as np
import torch

from clumpdet.errors import InputError
from clumpdet.tasks.base import TASKS, Task, array_row, finite


@TASKS.register("binary", help="one 0/1 label column of any name; sigmoid + cross-entropy")
class BinaryTask(Task):
    """One logit; ``sigmoid`` gives P(positive). Trained with binary cross-entropy.

    The output is named after the label column (e.g. ``is_ring``); scored by accuracy and ROC
    AUC, with a ROC curve and a confusion matrix.
    """

    name = "binary"
    fixed_outputs = 1
    names_from_data = True

    @property
    def negative_name(self) -> str:
        """Name of the 0 class in plots."""
        return f"not {self.positive_name}"

    @property
    def positive_name(self) -> str:
        """Name of the 1 class in plots."""
        return self.label_names[0] if self.label_names else "positive"

    def check_labels(self, labels, *, source, row=array_row, tol=0.05) -> None:
        super().check_labels(labels, source=source, row=row, tol=tol)
        wrong = ~np.isin(labels[:, 0], (0.0, 1.0))
        if wrong.any():
            r = int(np.argmax(wrong))
            raise InputError(
                source,
                f"{row(r)}: {self.name} label is {labels[r, 0]:g}, expected 0 or 1 "
                f"({int(wrong.sum())} such row(s))",
            )

    def class_index(self, labels):
        return (np.asarray(labels)[:, 0] > 0.5).astype(np.int64)

    def predict(self, outputs, *, dirichlet=False):
        return torch.sigmoid(outputs)

    def loss(self, outputs, target, *, dirichlet=False, counts=None):
        return torch.nn.functional.binary_cross_entropy_with_logits(outputs, target)

    def headline_metrics(self, y, p):
        from clumpdet.evaluation.classification import binary_metrics

        m = binary_metrics(y[:, 0], p[:, 0])
        return {"accuracy": m["accuracy"], "auc": finite(m["auc"])}

    def evaluate(self, y, p, *, out):
        from clumpdet.evaluation import classification as C

        m = C.binary_metrics(y[:, 0], p[:, 0])
        if out is not None:
            fpr, tpr, _ = C.roc_curve(y[:, 0], p[:, 0])
            C.plot_roc({self.positive_name: (fpr, tpr, m["auc"])}, out / "roc.png")
            cm = np.asarray(m["confusion"], float)
            cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
            names = [self.negative_name, self.positive_name]
            C.plot_confusion(cm, names, out / "confusion.png")
        return m
