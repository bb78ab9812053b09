"""Classification metrics and plots: binary (mergers), multi-class (four-class) and vote fractions.

Every function takes plain numpy arrays and returns JSON-ready dicts of floats; plots are PNGs.
ROC AUC is computed exactly from ranks (Mann-Whitney U with tie correction), so no scikit-learn
dependency is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from clumpdet.utils import atomic_path


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present.

    Parameters
    ----------
    y_true : ndarray of {0, 1}, shape (N,)
    score : ndarray, shape (N,)
        Higher means more likely positive.
    """
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-positive rate, true-positive rate and thresholds (descending score)."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(1, y.sum())]
    fpr = np.r_[0.0, fps / max(1, (~y).sum())]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


def binary_metrics(
    y_true: np.ndarray, prob: np.ndarray, *, threshold: float = 0.5
) -> dict[str, Any]:
    """Accuracy, precision, recall, F1, ROC AUC and Brier score of P(positive).

    Parameters
    ----------
    y_true : ndarray of {0, 1}, shape (N,)
    prob : ndarray in [0, 1], shape (N,)
    threshold : float
        Decision threshold for the counts.
    """
    y = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(prob, dtype=np.float64).ravel()
    pred = (p >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return {
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": roc_auc(y, p),
        "brier": float(np.mean((p - y) ** 2)) if len(y) else float("nan"),
        "threshold": threshold,
        "n": len(y),
        "confusion": confusion_matrix(y, pred, n_classes=2).tolist(),
    }


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, *, n_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` of true class i predicted as j."""
    c = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(c, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return c


def multiclass_metrics(
    y_true: np.ndarray, probs: np.ndarray, *, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, one-vs-rest AUC, Brier and confusion matrices.

    Parameters
    ----------
    y_true : ndarray of int, shape (N,)
        True class indices.
    probs : ndarray, shape (N, K)
        Class probabilities (rows sum to 1).
    class_names : sequence of str
        K names.
    """
    y = np.asarray(y_true, int).ravel()
    p = np.asarray(probs, dtype=np.float64)
    k = p.shape[1]
    pred = p.argmax(axis=1)
    cm = confusion_matrix(y, pred, n_classes=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = np.diag(cm) / cm.sum(axis=0)
        rec = np.diag(cm) / cm.sum(axis=1)
        f1 = 2 * prec * rec / (prec + rec)
        cm_norm = cm / cm.sum(axis=1, keepdims=True)
    aucs = [roc_auc(y == i, p[:, i]) for i in range(k)]
    onehot = np.eye(k)[y]
    per_class = {
        name: {
            "precision": float(prec[i]),
            "recall": float(rec[i]),
            "f1": float(f1[i]),
            "auc": aucs[i],
            "n": int(cm[i].sum()),
        }
        for i, name in enumerate(class_names)
    }
    return {
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "precision": float(np.nanmean(prec)),
        "recall": float(np.nanmean(rec)),
        "f1": float(np.nanmean(np.nan_to_num(f1))),
        "auc": float(np.nanmean(aucs)),
        "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))) if len(y) else float("nan"),
        "per_class": per_class,
        "confusion": cm.tolist(),
        "confusion_normalised": np.nan_to_num(cm_norm).tolist(),
        "n": len(y),
    }


def vote_fraction_metrics(
    target: np.ndarray,
    pred: np.ndarray,
    *,
    names: Sequence[str],
    groups: Sequence[tuple[str, slice]] | None = None,
) -> dict[str, Any]:
    """RMSE and R^2 of vote fractions, overall and per question (or per output).

    The overall RMSE is the Galaxy Zoo Kaggle score: the root of the mean squared error over
    all N x K values.

    Parameters
    ----------
    target, pred : ndarray, shape (N, K)
    names : sequence of str
        K output names.
    groups : sequence of (name, slice), optional
        Output groups (Galaxy Zoo questions); default one group per output.
    """
    t = np.asarray(target, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    err = (p - t) ** 2

    def r2(sl: slice) -> float:
        ss_res = err[:, sl].sum()
        ss_tot = ((t[:, sl] - t[:, sl].mean(axis=0)) ** 2).sum()
        return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")

    groups = (
        list(groups) if groups is not None else [(n, slice(i, i + 1)) for i, n in enumerate(names)]
    )
    return {
        "rmse": float(np.sqrt(err.mean())) if err.size else float("nan"),
        "r2": r2(slice(None)),
        "per_group": {
            name: {"rmse": float(np.sqrt(err[:, sl].mean())), "r2": r2(sl)} for name, sl in groups
        },
        "per_output_rmse": {n: float(np.sqrt(err[:, i].mean())) for i, n in enumerate(names)},
        "n": int(t.shape[0]),
    }


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)


def plot_confusion(
    cm_normalised: np.ndarray, class_names: Sequence[str], path: str | Path, *, title: str = ""
) -> Path:
    """Row-normalised confusion matrix as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm_normalised, dtype=float)
    fig, ax = plt.subplots(
        figsize=(1.2 * len(class_names) + 2, 1.1 * len(class_names) + 1.5), constrained_layout=True
    )
    im = ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{cm[i, j]:.2f}",
                ha="center",
                va="center",
                color="white" if cm[i, j] > 0.6 else "black",
            )
    ax.set(
        xticks=range(len(class_names)),
        yticks=range(len(class_names)),
        xticklabels=class_names,
        yticklabels=class_names,
        xlabel="predicted",
        ylabel="true",
        title=title or "Normalised confusion matrix",
    )
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], path: str | Path) -> Path:
    """ROC curves: ``{label: (fpr, tpr, auc)}``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), constrained_layout=True)
    for name, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(
        xlabel="false-positive rate",
        ylabel="true-positive rate",
        title="ROC",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_group_rmse(per_group: dict[str, dict[str, float]], path: str | Path) -> Path:
    """Bar chart of RMSE per question / output."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_group)
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(names) + 2), 3.5), constrained_layout=True)
    ax.bar(names, [per_group[n]["rmse"] for n in names], color="#377eb8")
    ax.set(ylabel="RMSE", title="Vote-fraction RMSE per question")
    ax.tick_params(axis="x", rotation=45)
    return _save(fig, path)


def feature_maps(model, images, *, max_channels: int = 6) -> list[tuple[str, np.ndarray]]:
    """Activations of each convolutional stage for a batch, via forward hooks.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier (trunk-based or a small CNN).
    images : torch.Tensor, shape (B, C, H, W)
    max_channels : int
        Channels kept per stage (those with the largest mean activation).

    Returns
    -------
    list of (name, ndarray (B, max_channels, h, w))
    """
    import torch

    stages: list[tuple[str, torch.nn.Module]] = []
    trunk = getattr(model, "trunk", None)
    if trunk is not None:
        names = trunk.body.feature_info.module_name()
        mods = dict(trunk.body.named_modules())
        stages = [
            (n, mods[n.replace(".", "_")] if n.replace(".", "_") in mods else mods[n])
            for n in names
        ]
    else:
        stages = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.MaxPool2d)]
    grabbed: list[tuple[str, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o, n=n: grabbed.append((n, o.detach())))
        for n, m in stages
    ]
    try:
        with torch.no_grad():
            model.eval()(images)
    finally:
        for h in hooks:
            h.remove()
    out = []
    for name, act in grabbed:
        top = act.mean(dim=(0, 2, 3)).argsort(descending=True)[:max_channels]
        out.append((name, act[:, top].cpu().numpy()))
    return out


def plot_feature_maps(model, images, path: str | Path, *, max_channels: int = 6) -> Path:
    """PNG grid: each input (first band) and the strongest channels of every stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    maps = feature_maps(model, images, max_channels=max_channels)
    b = images.shape[0]
    rows = b * len(maps)
    fig, axes = plt.subplots(
        rows,
        max_channels + 1,
        figsize=(1.4 * (max_channels + 1), 1.4 * rows),
        squeeze=False,
        constrained_layout=True,
    )
    for i in range(b):
        for s, (name, act) in enumerate(maps):
            r = i * len(maps) + s
            axes[r, 0].imshow(images[i, 0].cpu().numpy(), origin="lower", cmap="gray")
            axes[r, 0].set_ylabel(f"#{i} {name}", fontsize=6)
            for c in range(max_channels):
                ax = axes[r, c + 1]
                if c < act.shape[1]:
                    ax.imshow(act[i, c], origin="lower", cmap="magma")
            for ax in axes[r]:
                ax.set_xticks([])
                ax.set_yticks([])
    fig.suptitle("Feature maps (strongest channels per stage)", fontsize=9)
    return _save(fig, path)
