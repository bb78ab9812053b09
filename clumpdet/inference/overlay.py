"""Detection overlays: a stretched colour image with boxes and scores, as PNG.

Orientation
-----------
Arrays and boxes share the row order of the file they come from
(:mod:`clumpdet.data.images`): boxes are never flipped. The overlays take the image's
``origin`` (:attr:`clumpdet.data.images.ImageData.origin`) and show it the way it is meant to be
seen: ``"lower"`` (FITS) puts row 0 at the bottom, as ds9 does; ``"upper"`` (PNG/JPEG) puts row
0 at the top, as any image viewer does. A box drawn in the top-left of a JPEG therefore appears
top-left in its overlay.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from clumpdet.data.images import ImageData
from clumpdet.detections import Detections
from clumpdet.utils import atomic_path

#: Box colours per label (1 clump, 2 odd clump, ...), colour-blind safe.
LABEL_COLOURS = ("#00e5ff", "#ffb000", "#ff4dd2", "#7cff4d")

Origin = Literal["lower", "upper"]


def _show(ax, rgb: np.ndarray, origin: Origin) -> None:
    """``imshow`` an (H, W, 3) image in pixel-corner coordinates, row 0 at ``origin``."""
    if origin not in ("lower", "upper"):
        raise ValueError(f"origin {origin!r} is not 'lower' or 'upper'")
    h, w = rgb.shape[:2]
    bottom_top = (0, h) if origin == "lower" else (h, 0)
    ax.imshow(rgb, origin=origin, extent=(0, w, *bottom_top), interpolation="nearest")
    ax.set_xlim(0, w)
    ax.set_ylim(*bottom_top)
    ax.set_xticks([])
    ax.set_yticks([])


def colour_image(data: np.ndarray, *, stretch: bool = True) -> np.ndarray:
    """An (H, W, 3) display image in [0, 1] from a (C, H, W) cube in wavelength order.

    Three or more bands: the last three (bluest to reddest) are shown as blue, green and red,
    so the reddest band is red (SDSS gri: i red, r green, g blue), the way survey colour
    composites and :func:`clumpdet.data.images.read_image`'s PNG/JPEG planes order them;
    fewer bands: a grey image. Rows are returned in the array's order.

    Parameters
    ----------
    data : ndarray, shape (C, H, W) or (H, W)
        Pixels in physical units (FITS), or display values in [0, 1] (PNG/JPEG).
    stretch : bool
        True: Lupton asinh RGB (grey: asinh) whose softening follows the image noise, so faint
        clumps stay visible. False: ``data`` is already a display image (a PNG/JPEG cutout) and
        is shown as it is, clipped to [0, 1].
    """
    from astropy.stats import mad_std
    from astropy.visualization import make_lupton_rgb

    x = np.nan_to_num(np.asarray(data, dtype=np.float64))
    if x.ndim == 2:
        x = x[None]
    if not stretch:
        planes = x[-3:][::-1] if x.shape[0] >= 3 else np.repeat(x.mean(axis=0)[None], 3, axis=0)
        return np.clip(planes.transpose(1, 2, 0), 0.0, 1.0)
    noise = float(np.median([mad_std(p) for p in x])) or 1.0
    if x.shape[0] >= 3:
        b, g, r = x[-3], x[-2], x[-1]
        # the 99th percentile sits on the host disk rather than on the brightest knot, so faint
        # disks stay visible while asinh (Q) keeps bright clumps from saturating into blobs
        level = float(np.percentile(x[-3:], 99.0))
        stretch_level = max(level, 10 * noise)
        return make_lupton_rgb(r, g, b, minimum=-noise, stretch=stretch_level, Q=10) / 255.0
    grey = np.arcsinh(x.mean(axis=0) / (3 * noise))
    lo, hi = np.percentile(grey, [1, 99.8])
    grey = np.clip((grey - lo) / max(hi - lo, 1e-12), 0, 1)
    return np.repeat(grey[..., None], 3, axis=2)


def _save(fig, path: str | Path, *, dpi: int) -> Path:
    """Write ``fig`` to ``path`` atomically and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    return Path(path)


def _draw_boxes(
    ax,
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None,
    *,
    origin: Origin,
    truth_boxes: np.ndarray | None = None,
    fontsize: float = 7,
) -> None:
    """Draw xyxy boxes coloured by label, scores above their upper edge on screen."""
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
            y = b[3] + 1 if origin == "lower" else b[1] - 1
            ax.text(b[0], y, f"{scores[i]:.2f}", color=c, fontsize=fontsize, va="bottom")


def _legend_handles(class_names: Sequence[str]) -> list[Rectangle]:
    return [
        Rectangle((0, 0), 1, 1, fill=False, ec=LABEL_COLOURS[i], lw=1.5, label=n)
        for i, n in enumerate(class_names)
    ]


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
    origin: Origin = "lower",
    stretch: bool = True,
) -> Path:
    """Save a PNG of the image with detected (and optionally true) boxes.

    Parameters
    ----------
    data : ndarray, shape (C, H, W)
        Image in physical units (or display values in [0, 1] for PNG/JPEG), bands in
        wavelength order (the reddest is shown red, :func:`colour_image`).
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
    title : str
        Figure title.
    origin : {"lower", "upper"}
        Where row 0 of ``data`` (and ``y = 0`` of the boxes) is shown: ``"lower"`` at the bottom
        (FITS), ``"upper"`` at the top (PNG/JPEG); pass ``ImageData.origin``.
    stretch : bool
        Lupton/asinh stretch (physical units); False shows display values as they are
        (PNG/JPEG, ``ImageData.is_raster``).
    """
    rgb = colour_image(data, stretch=stretch)
    h, w = rgb.shape[:2]
    size = min(8.0, max(4.0, w / 60))
    fig, ax = plt.subplots(figsize=(size, size * h / w))
    _show(ax, rgb, origin)
    _draw_boxes(ax, boxes, labels, scores, origin=origin, truth_boxes=truth_boxes)
    handles = _legend_handles(class_names)
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
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path, dpi=100)


def plot_overlay_grid(
    images: Sequence[ImageData],
    detections: Sequence[Detections],
    path: str | Path,
    *,
    titles: Sequence[str] | None = None,
    class_names: Sequence[str] = ("clump", "odd_clump"),
    ncols: int = 6,
    title: str = "",
) -> Path:
    """Save one PNG with a panel per image: the image (right way up) and its boxes.

    Each panel is drawn as :func:`plot_overlay` draws one image: PNG/JPEG inputs as they are
    with row 0 at the top, FITS stretched with row 0 at the bottom (``ImageData.origin``).

    Parameters
    ----------
    images : sequence of ImageData
        The images, ``(C, H, W)`` each, bands in wavelength order.
    detections : sequence of Detections
        One per image (already cut at the score to show); scores are printed.
    path : path
        Output PNG (written atomically).
    titles : sequence of str, optional
        One per panel.
    class_names : sequence of str
        Names of labels 1, 2, ... for the legend.
    ncols : int
        Panels per row.
    title : str
        Figure title.
    """
    if len(images) != len(detections):
        raise ValueError(f"{len(images)} images but {len(detections)} detection sets")
    n = max(1, len(images))
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.2 * ncols, 2.3 * nrows + 0.5), squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(images):
            ax.axis("off")
            continue
        image, d = images[k], detections[k]
        _show(ax, colour_image(image.data, stretch=not image.is_raster), image.origin)
        _draw_boxes(ax, d.boxes, d.labels, d.scores, origin=image.origin, fontsize=5)
        if titles is not None:
            ax.set_title(titles[k], fontsize=7)
    fig.legend(
        handles=_legend_handles(class_names),
        loc="lower center",
        ncol=len(class_names),
        fontsize=8,
        frameon=False,
    )
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(fig, path, dpi=100)


def plot_point_overlays(
    data: np.ndarray,
    path: str | Path,
    *,
    reference_xy: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],
    class_names: Sequence[str] = ("star", "galaxy"),
    reference_label: str = "truth",
    title: str = "",
    origin: Origin = "lower",
) -> Path:
    """Side-by-side panels of one image, each with a reference catalogue and one method's
    detections as markers (for crowded fields where boxes would hide the sources).

    Parameters
    ----------
    data : ndarray, shape (C, H, W) or (H, W)
        Image in physical units (a single band is shown in grey).
    path : path
        Output PNG (written atomically).
    reference_xy : ndarray, shape (M, 2)
        Reference positions (truth or a reference catalogue), corner-origin pixels: circles.
    panels : sequence of (name, xy (N, 2), labels (N,))
        One panel per method: detections as ``+`` coloured by 1-based label.
    class_names : sequence of str
        Names of labels 1, 2, ... for the legend.
    reference_label : str
        Legend name of the circles.
    title : str
        Figure title.
    origin : {"lower", "upper"}
        Where row 0 is shown (see :func:`plot_overlay`).
    """
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 2 or data.shape[0] == 1:
        from astropy.visualization import AsinhStretch, ImageNormalize, ZScaleInterval

        plane = data.reshape(-1, *data.shape[-2:])[0]
        norm = ImageNormalize(plane, interval=ZScaleInterval(), stretch=AsinhStretch(0.3))
        rgb = plt.get_cmap("gray")(norm(plane))[..., :3]
    else:
        rgb = colour_image(data)
    h, w = rgb.shape[:2]
    n = max(1, len(panels))
    side = min(6.0, max(3.5, w / 50))
    fig, axes = plt.subplots(1, n, figsize=(side * n, side * h / w + 0.6), squeeze=False)
    ref = np.asarray(reference_xy, dtype=float).reshape(-1, 2)
    for ax, (name, xy, labels) in zip(axes[0], panels):
        _show(ax, rgb, origin)
        ax.scatter(ref[:, 0], ref[:, 1], s=60, facecolors="none", edgecolors="white", lw=0.8)
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        for lab in np.unique(labels):
            sel = np.asarray(labels) == lab
            ax.scatter(
                xy[sel, 0],
                xy[sel, 1],
                marker="+",
                s=40,
                lw=1.2,
                color=LABEL_COLOURS[(int(lab) - 1) % len(LABEL_COLOURS)],
            )
        ax.set_title(f"{name}: {len(xy)} detections", fontsize=9)
    handles = [
        plt.Line2D([], [], ls="", marker="o", mfc="none", mec="0.3", label=reference_label),
        *[
            plt.Line2D([], [], ls="", marker="+", color=LABEL_COLOURS[i], label=c)
            for i, c in enumerate(class_names)
        ],
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, path, dpi=110)
