"""The :class:`Task` interface, the ``TASKS`` registry and the shared vote-fraction task kind.

A task is everything a classifier needs to know about *what* it predicts: the number and names
of its outputs, how labels are checked, the training loss, how raw network outputs become
probabilities or fractions, the headline metrics and plots, and which galaxy simulator
(``clumpdet simulate mergers|four_class|morphology``) makes data for it.

Adding a task is one module with one class registered in :data:`TASKS`::

    @TASKS.register("ring", help="ringed or not (one 0/1 column)")
    class RingTask(BinaryTask):
        name = "ring"
        default_label_names = ("ring",)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from clumpdet.errors import ConfigError, InputError
from clumpdet.registry import Registry

#: The classification tasks: name -> :class:`Task` subclass (called with ``label_names=``).
TASKS: Registry = Registry("task")

#: ``row(i)`` names row ``i`` of a label block in error messages (``"line 3 (id 17)"``).
RowName = Callable[[int], str]


def array_row(i: int) -> str:
    """Name of row ``i`` of an array (0-based)."""
    return f"row {i}"


class Task:
    """One classification task (subclass it and register the subclass in :data:`TASKS`).

    Parameters
    ----------
    label_names : sequence of str, optional
        Output names. Default :attr:`default_label_names`; generic tasks (``binary``,
        ``multiclass``) take them from the data (the label column names or class values).

    Attributes
    ----------
    name : str
        Registered name.
    simulator : str or None
        The galaxy simulator that makes labelled data for this task (``mergers``,
        ``four_class``, ``morphology``), or ``None`` when there is none.
    fixed_outputs : int or None
        Number of outputs K, or ``None`` when it is the number of label names.
    names_from_data : bool
        The label names come from the data (stored as ``model.label_names``).
    supports_dirichlet : bool
        The task has a Dirichlet-concentration head (``model.dirichlet``).
    stratify : bool
        Train/validation/test splits keep the class mix (:meth:`class_index`).
    one_column_classes : bool
        One integer/string label column may be given instead of K one-hot columns.
    """

    name: ClassVar[str] = ""
    simulator: ClassVar[str | None] = None
    default_label_names: ClassVar[tuple[str, ...]] = ()
    fixed_outputs: ClassVar[int | None] = None
    names_from_data: ClassVar[bool] = False
    supports_dirichlet: ClassVar[bool] = False
    stratify: ClassVar[bool] = True
    one_column_classes: ClassVar[bool] = False

    def __init__(self, *, label_names: Sequence[str] = ()) -> None:
        names = tuple(str(n) for n in label_names) or self.default_label_names
        k = self.fixed_outputs
        if k is not None and names and len(names) != k:
            raise ConfigError(
                f"task {self.name!r} needs {k} label column(s), got {len(names)}: {list(names)}"
            )
        self.label_names: tuple[str, ...] = names

    def __repr__(self) -> str:
        return f"{type(self).__name__}(label_names={self.label_names!r})"

    @property
    def n_outputs(self) -> int:
        """K, the number of network outputs."""
        if self.fixed_outputs is not None:
            return self.fixed_outputs
        if not self.label_names:
            raise ConfigError(
                f"task {self.name!r}: its outputs are named by the data; give the label "
                "columns (data.label_columns) or model.label_names"
            )
        return len(self.label_names)

    def with_label_names(self, names: Sequence[str]) -> Task:
        """The same task with outputs ``names`` (checked against :attr:`fixed_outputs`)."""
        return type(self)(label_names=names)

    def sim_columns(self) -> tuple[str, ...]:
        """Label columns of the task in a simulated ``labels.csv``."""
        return self.label_names

    def count_columns(self) -> tuple[str, ...]:
        """Vote-count columns of a simulated ``labels.csv`` (empty: the task has none)."""
        return ()

    # ---------------------------------------------------------------- labels

    def check_labels(
        self,
        labels: np.ndarray,
        *,
        source: str | Path | None,
        row: RowName = array_row,
        tol: float | None = 0.05,
    ) -> None:
        """Raise :class:`~clumpdet.errors.InputError` on labels ``(N, K)`` the task cannot use.

        Every task rejects NaN/inf; subclasses add their own checks (0/1, one-hot, fractions).
        """
        bad = ~np.isfinite(labels)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            n = int(bad.any(axis=1).sum())
            raise InputError(
                source,
                f"{row(int(r))}: label {self.label_names[c]} is {labels[r, c]} "
                f"({n} row(s) with NaN/inf)",
            )

    def class_index(self, labels: np.ndarray) -> np.ndarray:
        """int64 ``(N,)`` class of each row of ``labels`` ``(N, K)``: the largest output."""
        return np.asarray(labels).argmax(axis=1).astype(np.int64)

    # ---------------------------------------------------------------- learning

    def predict(self, outputs: torch.Tensor, *, dirichlet: bool = False) -> torch.Tensor:
        """Probabilities or vote fractions ``(B, K)`` from raw outputs ``(B, K)``."""
        raise NotImplementedError

    def loss(
        self,
        outputs: torch.Tensor,
        target: torch.Tensor,
        *,
        dirichlet: bool = False,
        counts: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scalar training loss of raw outputs ``(B, K)`` against targets ``(B, K)``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- scoring

    def headline_metrics(self, y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        """The few numbers logged every epoch, for targets ``y`` and predictions ``p`` (N, K)."""
        raise NotImplementedError

    def evaluate(self, y: np.ndarray, p: np.ndarray, *, out: Path | None) -> dict[str, Any]:
        """Full test metrics of ``y`` and ``p`` (N, K), with PNG plots written into ``out``."""
        raise NotImplementedError


def finite(v: float | None) -> float:
    """``v`` as a float, 0.0 when it is missing or not finite (for logging)."""
    return 0.0 if v is None or not np.isfinite(v) else float(v)


class VoteFractionTask(Task):
    """Vote fractions in [0, 1]: softmax outputs, MSE loss, scored by RMSE per output."""

    stratify = False

    def check_labels(self, labels, *, source, row=array_row, tol=0.05) -> None:
        super().check_labels(labels, source=source, row=row, tol=tol)
        outside = (labels < 0) | (labels > 1 + 1e-6)
        if outside.any():
            r, c = np.argwhere(outside)[0]
            raise InputError(
                source,
                f"{row(int(r))}: vote fraction {self.label_names[c]} = {labels[r, c]:g} is "
                "outside [0, 1]",
            )

    def predict(self, outputs, *, dirichlet=False):
        return torch.softmax(outputs, dim=1)

    def loss(self, outputs, target, *, dirichlet=False, counts=None):
        return torch.nn.functional.mse_loss(self.predict(outputs), target)

    def groups(self) -> list[tuple[str, slice]] | None:
        """Output groups scored together (``None``: one group per output)."""
        return None

    def headline_metrics(self, y, p):
        return {"rmse": float(np.sqrt(np.mean((p - y) ** 2)))}

    def evaluate(self, y, p, *, out):
        from clumpdet.evaluation import classification as C

        m = C.vote_fraction_metrics(y, p, names=list(self.label_names), groups=self.groups())
        if out is not None:
            C.plot_group_rmse(m["per_group"], out / "rmse_per_question.png")
        return m
