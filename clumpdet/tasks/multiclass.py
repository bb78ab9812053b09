"""``multiclass``: K exclusive classes, as K one-hot columns or one integer/string column."""

from __future__ import annotations

import numpy as np
import torch

from clumpdet.errors import InputError
from clumpdet.tasks.base import TASKS, Task, array_row, finite


@TASKS.register("multiclass", help="K exclusive classes named by the data; softmax + CE")
class MulticlassTask(Task):
    """K logits; ``softmax`` gives class probabilities. Trained with cross-entropy.

    Labels are one-hot ``(N, K)``; readers also accept one column of class values (integers
    ``0..K-1`` or strings), which they one-hot encode. Scored by accuracy, one-vs-rest ROC AUC and
    a confusion matrix.
    """

    name = "multiclass"
    names_from_data = True
    one_column_classes = True

    def check_labels(self, labels, *, source, row=array_row, tol=0.05) -> None:
        super().check_labels(labels, source=source, row=row, tol=tol)
        ok = np.isin(labels, (0.0, 1.0)).all(axis=1) & (labels.sum(axis=1) == 1)
        if not ok.all():
            r = int(np.argmin(ok))
            raise InputError(
                source,
                f"{row(r)}: label {labels[r].tolist()} is not one-hot over "
                f"{tuple(self.label_names)} ({int((~ok).sum())} such row(s))",
            )

    def predict(self, outputs, *, dirichlet=False):
        return torch.softmax(outputs, dim=1)

    def loss(self, outputs, target, *, dirichlet=False, counts=None):
        return torch.nn.functional.cross_entropy(outputs, target.argmax(dim=1))

    def _names(self, k: int) -> list[str]:
        return list(self.label_names) or [str(i) for i in range(k)]

    def headline_metrics(self, y, p):
        from clumpdet.evaluation.classification import multiclass_metrics

        m = multiclass_metrics(y.argmax(1), p, class_names=self._names(p.shape[1]))
        return {"accuracy": m["accuracy"], "auc": finite(m["auc"])}

    def evaluate(self, y, p, *, out):
        from clumpdet.evaluation import classification as C

        names = self._names(p.shape[1])
        m = C.multiclass_metrics(y.argmax(1), p, class_names=names)
        if out is not None:
            curves = {}
            for i, n in enumerate(names):
                fpr, tpr, _ = C.roc_curve(y.argmax(1) == i, p[:, i])
                curves[n] = (fpr, tpr, m["per_class"][n]["auc"])
            C.plot_roc(curves, out / "roc.png")
            C.plot_confusion(np.asarray(m["confusion_normalised"]), names, out / "confusion.png")
        return m
