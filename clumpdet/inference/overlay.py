"""Detection overlays: a stretched colour image with boxes and scores, as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from clumpdet.utils import atomic_path

#: Box colours per label (1 clump, 2 odd clump, ...), colour-blind safe.
LABEL_COLOURS = ("#00e5ff", "#ffb000", "#ff4dd2", "#7cff4d")


def colour_image(data: np.ndarray) -> np.ndarray:
    """An (H, W, 3) display image in [0, 1] from a (C, H, W) cube.

    Three or more bands: Lupton asinh RGB of the last three (reddest as red); fewer: an asinh
    grey image. The softening follows the image noise, so faint clumps stay visible.
    """
    from astropy.stats import mad_std
    from astropy.visualization import make_lupton_rgb

    x = np.nan_to_num(np.asarray(data, dtype=np.float64))
    if x.ndim == 2:
        x = x[None]
    noise = float(np.median([mad_std(p) for p in x])) or 1.0
    if x.shape[0] >= 3:
        b, g, r = x[-3], x[-2], x[-1]
        # the 99th percentile sits on the host disk rather than on the brightest knot, so faint
        # disks stay visible while asinh (Q) keeps bright clumps from saturating into blobs
        level = float(np.percentile(x[-3:], 99.0))
        stretch = max(level, 10 * noise)
        return make_lupton_rgb(r, g, b, minimum=-noise, stretch=stretch, Q=10) / 255.0
    grey = np.arcsinh(x.mean(axis=0) / (3 * noise))
    lo, hi = np.percentile(grey, [1, 99.8])
    grey = np.clip((grey - lo) / max(hi - lo, 1e-12), 0, 1)
    return np.repeat(grey[..., None], 3, axis=2)


def plot_overlay(
    data: np.ndarray,
    path: str | Path,
    *,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None = None,
    class_names: Sequence[str] = ("clump", "odd_clump"),
    truth_boxes: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Save a PNG of the image with detected (and optionally true) boxes.

    Parameters
    ----------
    data : ndarray, shape (C, H, W)
        Image in physical units.
    path : path
        Output PNG (written atomically).
    boxes : ndarray, shape (N, 4)
        Detections, xyxy pixels.
    labels : ndarray, shape (N,)
        1-based labels (colour).
    scores : ndarray, shape (N,), optional
        Printed next to each box.
    truth_boxes : ndarray, shape (M, 4), optional
        Drawn dashed white for comparison.
    """
    rgb = colour_image(data)
    h, w = rgb.shape[:2]
    size = min(8.0, max(4.0, w / 60))
    fig, ax = plt.subplots(figsize=(size, size * h / w))
    ax.imshow(rgb, origin="lower", extent=(0, w, 0, h), interpolation="nearest")
    if truth_boxes is not None:
        for b in np.asarray(truth_boxes).reshape(-1, 4):
            ax.add_patch(
                Rectangle(
                    (b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, ec="white", ls="--", lw=1.0
                )
            )
    for i, (b, lab) in enumerate(zip(np.asarray(boxes).reshape(-1, 4), labels)):
        c = LABEL_COLOURS[(int(lab) - 1) % len(LABEL_COLOURS)]
        ax.add_patch(Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, ec=c, lw=1.5))
        if scores is not None:
            ax.text(b[0], b[3] + 1, f"{scores[i]:.2f}", color=c, fontsize=7, va="bottom")
    handles = [
        Rectangle((0, 0), 1, 1, fill=False, ec=LABEL_COLOURS[i], lw=1.5, label=n)
        for i, n in enumerate(class_names)
    ]
    if truth_boxes is not None:
        handles.append(
            Rectangle((0, 0), 1, 1, fill=False, ec="0.3", ls="--", label="truth (white, dashed)")
        )
    # below the image, so it never hides a detection
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.01),
        ncol=len(handles),
        fontsize=7,
        frameon=False,
    )
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return Path(path)
