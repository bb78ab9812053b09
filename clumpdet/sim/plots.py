"""Pictures of simulated scenes: Lupton asinh RGB composites with truth boxes."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clumpdet.errors import InputError
from clumpdet.noise import mad_sigma
from clumpdet.sim.clumps.scene import ClumpScene

#: Box colours per label (class 1 clump, class 2 odd clump).
LABEL_COLOURS: dict[int, str] = {1: "#00e5ff", 2: "#ff4fa0"}
LABEL_NAMES: dict[int, str] = {1: "clump (class 1)", 2: "odd clump (class 2)"}


def lupton_rgb(
    image: np.ndarray,
    bands: Sequence[str],
    *,
    stretch: float = 0.3,
    q: float = 8.0,
    minimum: float = -0.02,
) -> np.ndarray:
    """Lupton et al. (2004) asinh colour composite of a g, r, i cube.

    Parameters
    ----------
    image : ndarray, shape (C, H, W)
        Image in nanomaggies; must contain bands ``g``, ``r`` and ``i``.
    bands : sequence of str
        Band of each plane.
    stretch, q, minimum : float
        ``astropy.visualization.make_lupton_rgb`` parameters (nanomaggies for stretch/minimum).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
        RGB image (R = i, G = r, B = g).
    """
    from astropy.visualization import make_lupton_rgb

    idx = {b: k for k, b in enumerate(bands)}
    missing = [b for b in ("g", "r", "i") if b not in idx]
    if missing:
        raise InputError(None, f"RGB composite needs bands g, r, i; missing {missing}")
    # Roughly equalise the bands' sky levels so the background looks neutral grey.
    i, r, g = (np.asarray(image[idx[b]], dtype=np.float64) for b in ("i", "r", "g"))
    return make_lupton_rgb(0.7 * i, r, 1.6 * g, minimum=minimum, stretch=stretch, Q=q)


def plot_scene_grid(
    scenes: Sequence[ClumpScene],
    path: str | Path,
    *,
    ncols: int = 3,
    panel_size: float = 3.2,
    dpi: int = 100,
    title: str | None = None,
) -> Path:
    """Grid of simulated scenes (Lupton RGB) with their truth boxes and a legend, as a PNG.

    Parameters
    ----------
    scenes : sequence of ClumpScene
        Scenes with ``g, r, i`` bands.
    path : str or Path
        Output PNG (written atomically).
    ncols : int
        Panels per row.
    panel_size : float
        Inches per panel.
    dpi : int
        Resolution.
    title : str, optional
        Figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    from clumpdet.utils import atomic_path

    if not scenes:
        raise InputError(path, "no scenes to plot")
    nrows = int(np.ceil(len(scenes) / ncols))
    head = 0.45 if title else 0.1
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(ncols * panel_size, nrows * (panel_size + 0.3) + head + 0.4),
        squeeze=False,
    )
    for ax, sc in zip(axes.ravel(), scenes):
        ax.imshow(lupton_rgb(sc.image, sc.bands), origin="upper", interpolation="nearest")
        for (x1, y1, x2, y2), lab in zip(sc.boxes.tolist(), sc.labels.tolist()):
            # imshow puts pixel [j, i] at (i, j); box coordinates have pixel centres at +0.5.
            ax.add_patch(
                Rectangle(
                    (x1 - 0.5, y1 - 0.5),
                    x2 - x1,
                    y2 - y1,
                    fill=False,
                    lw=1.3,
                    ec=LABEL_COLOURS.get(int(lab), "white"),
                )
            )
        n1 = int(np.sum(sc.labels == 1))
        n2 = int(np.sum(sc.labels == 2))
        ax.set_title(
            f'r = {sc.host.mag_r:.1f}, PSF {sc.psf_fwhm:.2f}"  |  {n1} clump, {n2} odd',
            fontsize=8.5,
        )
    for ax in axes.ravel():
        ax.set_axis_off()
    handles = [
        Line2D([], [], color=c, lw=2, label=LABEL_NAMES[k]) for k, c in LABEL_COLOURS.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=11)
    height = fig.get_figheight()
    fig.subplots_adjust(
        left=0.01,
        right=0.99,
        bottom=0.4 / height,
        top=1 - head / height,
        wspace=0.04,
        hspace=0.3 / panel_size,
    )
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    plt.close(fig)
    # Noisy images compress badly: a 256-colour palette keeps the README PNG small (~4x).
    from PIL import Image

    buf.seek(0)
    with Image.open(buf) as img:
        pal = img.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
        with atomic_path(path) as tmp:
            pal.save(tmp, format="PNG", optimize=True)
    return path


def galaxy_rgb(image: np.ndarray, *, q: float = 6.0, headroom: float = 4.0) -> np.ndarray:
    """Lupton et al. (2004) asinh colour composite of a 3-band cube, bluest band as blue.

    Each band's black level is its robust sky sigma (median absolute deviation), so noise stays
    dark; the stretch is ``(99.9th percentile - black) / headroom``.

    Parameters
    ----------
    image : ndarray, shape (3, H, W)
        Bands ordered bluest first (as in every galaxy-simulation config), any unit.
    q : float
        Asinh softening (larger shows fainter light).
    headroom : float
        Divides the stretch (larger saturates the cores more).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    from astropy.visualization import make_lupton_rgb

    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got shape {a.shape}")
    flat = a.reshape(3, -1)
    med = np.median(flat, axis=1)
    sigma = mad_sigma(flat, axis=1)
    minimum = med + sigma
    stretch = max(float(np.percentile(a, 99.9) - minimum.mean()) / headroom, 1e-12)
    return make_lupton_rgb(a[2], a[1], a[0], minimum=minimum[::-1], stretch=stretch, Q=q)
