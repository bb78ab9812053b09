"""Realism of simulated colour galaxy images, measured against real ones.

Both sets are read as 8-bit colour composites (red = i, green = r, blue = g, as SDSS / Galaxy Zoo
cutouts), reduced the same way and compared by distribution:

1. resize to ``size x size`` pixels (the whole frame: size in the frame is kept);
2. luminance = mean of the three channels; sky level and noise from the frame border
   (median, MAD sigma);
3. photutils segmentation (``detect_sources`` on a lightly smoothed image); the central galaxy is
   the segment under the frame centre (or the one nearest to it); all other segments count as
   "other sources" and are masked;
4. ``statmorph.source_morphology`` on the central galaxy: concentration C, asymmetry A,
   smoothness S, Gini, M20, and r50 / frame size;
5. colour proxies inside the galaxy segment: ``-2.5 log10(blue / green)`` (a g-r proxy) and
   ``-2.5 log10(green / red)`` (an r-i proxy), from the sky-subtracted channel sums.

:func:`compare_realism` gives the two-sample KS distance per statistic plus medians.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clumpdet.errors import InputError
from clumpdet.noise import mad_sigma
from clumpdet.utils import atomic_path, atomic_write

__all__ = [
    "STATISTICS",
    "RealismSet",
    "compare_realism",
    "galaxy_statistics",
    "list_colour_images",
    "load_cache",
    "load_colour_image",
    "realism_grid",
    "render_fits_colour",
    "run_realism",
    "save_cache",
]

#: The statistics compared, in report order.
STATISTICS: tuple[str, ...] = (
    "concentration",
    "asymmetry",
    "smoothness",
    "gini",
    "m20",
    "r50_frac",
    "colour_gr",
    "colour_ri",
    "n_other",
)

_SUFFIXES = (".jpg", ".jpeg", ".png")
_FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fts")

#: Lupton asinh parameters for rendering FITS-only sets (the sim's colour defaults).
FITS_RENDER: dict[str, Any] = {
    "scales": {"g": 2.2, "r": 1.45, "i": 1.0},
    "stretch": 0.5,
    "q": 8.0,
    "minimum": -0.02,
}


def list_colour_images(path: str | Path) -> list[Path]:
    """The colour images of a set, sorted.

    Parameters
    ----------
    path : path
        A simulated set (``DIR/colour/images/*.jpg``), a folder with ``images/``, or any folder of
        JPEG/PNG files (searched recursively).

    Returns
    -------
    list of Path
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(root, "not a folder")
    for cand in (root / "colour" / "images", root / "images"):
        if cand.is_dir():
            files = sorted(p for p in cand.iterdir() if p.name.lower().endswith(_SUFFIXES))
            if files:
                return files
    files = sorted(p for p in root.rglob("*") if p.name.lower().endswith(_SUFFIXES))
    if not files:  # a FITS-only set: rendered as gri colour on load (render_fits_colour)
        files = sorted(p for p in root.rglob("*") if p.name.lower().endswith(_FITS_SUFFIXES))
    if not files:
        raise InputError(root, "no colour images (*.jpg, *.png) or FITS cubes found")
    return files


def render_fits_colour(path: str | Path) -> np.ndarray:
    """Render a ``g, r, i`` FITS cube (nanomaggies) as an 8-bit colour picture.

    Uses ``clumpdet.sim.colour.lupton_rgb`` when that module exists, else astropy's
    ``make_lupton_rgb`` with the same :data:`FITS_RENDER` parameters; red = i, green = r,
    blue = g. The whole FITS frame is rendered (no re-framing) and flipped to picture
    orientation (row 0 on top).

    Returns
    -------
    ndarray, shape (H, W, 3), uint8
    """
    from clumpdet.data.images import read_image

    img = read_image(path, bands=["g", "r", "i"], nan_policy="zero")
    planes = {b: img.data[k][::-1] for k, b in enumerate(("g", "r", "i"))}
    try:
        from clumpdet.sim.colour import lupton_rgb
    except ImportError:
        from astropy.visualization import make_lupton_rgb

        sc = FITS_RENDER["scales"]
        return make_lupton_rgb(
            planes["i"] * sc["i"],
            planes["r"] * sc["r"],
            planes["g"] * sc["g"],
            minimum=FITS_RENDER["minimum"],
            stretch=FITS_RENDER["stretch"],
            Q=FITS_RENDER["q"],
        )
    return lupton_rgb(
        planes,
        scales=FITS_RENDER["scales"],
        stretch=FITS_RENDER["stretch"],
        q=FITS_RENDER["q"],
        minimum=FITS_RENDER["minimum"],
    )


def load_colour_image(path: str | Path, *, size: int | None = 128) -> np.ndarray:
    """One 8-bit colour image as float RGB.

    Parameters
    ----------
    path : path
        JPEG or PNG (or a FITS cube, rendered by :func:`render_fits_colour`).
    size : int, optional
        Resize (bilinear, whole frame) to ``size x size``; ``None`` keeps the pixels.

    Returns
    -------
    ndarray, shape (H, W, 3), float32
        Channels R, G, B (i, r, g for SDSS composites), values 0..255.
    """
    from PIL import Image, UnidentifiedImageError

    if Path(path).name.lower().endswith(_FITS_SUFFIXES):
        im = Image.fromarray(render_fits_colour(path), mode="RGB")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.float32)
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.float32)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"not a valid PNG/JPEG image ({exc})") from None


def _border(a: np.ndarray, width: int) -> np.ndarray:
    return np.concatenate(
        [
            a[:width].ravel(),
            a[-width:].ravel(),
            a[width:-width, :width].ravel(),
            a[width:-width, -width:].ravel(),
        ]
    )


_MORPH_QUANTITIES = ("concentration", "asymmetry", "smoothness", "gini", "m20", "r50", "sky_mean")
_LEAN: list[type] = []


def _lean_morphology_class() -> type:
    """``statmorph.SourceMorphology`` that evaluates only CAS, Gini, M20 and r50.

    statmorph's properties are lazy but its constructor evaluates all of them (MID statistics
    and a Sersic fit take ~90 % of the time); this subclass evaluates the ones used here, with
    statmorph's own code, and skips the Gini-vs-MID segmap comparison (MID is not computed).
    """
    if not _LEAN:
        import statmorph

        class _Lean(statmorph.SourceMorphology):
            def _calculate_morphology(self) -> None:
                for q in _MORPH_QUANTITIES:
                    _ = self[q]

            def _check_segmaps(self) -> None:
                return None

        _LEAN.append(_Lean)
    return _LEAN[0]


def galaxy_statistics(
    rgb: np.ndarray, *, nsigma: float = 2.0, npixels: int = 8
) -> dict[str, float]:
    """Non-parametric morphology, size, colour and neighbour count of the central galaxy.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3)
        Colour image, channels R, G, B (i, r, g), any linear scale (0..255 for 8-bit input).
    nsigma : float
        Segmentation threshold above the sky, in border-noise sigma.
    npixels : int
        Minimum connected pixels of a segment.

    Returns
    -------
    dict
        One value per name in :data:`STATISTICS` (NaN where not measurable) plus ``flag``
        (statmorph's flag: 0 good, 1 suspect, 2 bad; 3 = no central segment, 4 = statmorph
        raised).
    """
    from astropy.convolution import Gaussian2DKernel, convolve
    from photutils.segmentation import detect_sources

    out = {k: math.nan for k in STATISTICS}
    out["flag"] = 3.0
    rgb = np.asarray(rgb, dtype=np.float64)
    h, w = rgb.shape[:2]
    width = max(2, round(0.06 * min(h, w)))
    sky = np.array([np.median(_border(rgb[..., c], width)) for c in range(3)])
    sub = rgb - sky
    lum = sub.mean(axis=2)
    sigma = float(mad_sigma(_border(lum, width)))
    if not np.isfinite(sigma) or sigma <= 0:
        sigma = 0.5  # 8-bit quantisation floor: a noiseless border
    smooth = convolve(lum, Gaussian2DKernel(1.0))
    segm = detect_sources(smooth, nsigma * sigma, n_pixels=npixels)
    if segm is None:
        out["n_other"] = 0.0
        return out
    labels = segm.data
    cy, cx = h // 2, w // 2
    central = int(labels[cy, cx])
    if central == 0:
        yy, xx = np.nonzero(labels)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        j = int(np.argmin(d2))
        if d2[j] > (0.1 * min(h, w)) ** 2:
            out["n_other"] = float(segm.n_labels)
            return out
        central = int(labels[yy[j], xx[j]])
    out["n_other"] = float(segm.n_labels - 1)
    gal = labels == central
    others = (labels > 0) & ~gal
    bsum = sub[..., 2][gal].sum()
    gsum = sub[..., 1][gal].sum()
    rsum = sub[..., 0][gal].sum()
    if bsum > 0 and gsum > 0:
        out["colour_gr"] = float(-2.5 * np.log10(bsum / gsum))
    if gsum > 0 and rsum > 0:
        out["colour_ri"] = float(-2.5 * np.log10(gsum / rsum))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            morph = _lean_morphology_class()(
                lum,
                gal.astype(np.int32),
                1,
                mask=others,
                weightmap=np.full_like(lum, sigma),
                psf=None,
                verbose=False,
            )
    except Exception:
        out["flag"] = 4.0
        return out
    out["flag"] = float(morph.flag)
    out["concentration"] = float(morph.concentration)
    out["asymmetry"] = float(morph.asymmetry)
    out["smoothness"] = float(morph.smoothness)
    out["gini"] = float(morph.gini)
    out["m20"] = float(morph.m20)
    out["r50_frac"] = float(morph.r50) / float(min(h, w))
    for k in ("concentration", "asymmetry", "smoothness", "gini", "m20", "r50_frac"):
        if not np.isfinite(out[k]):
            out[k] = math.nan
    return out


@dataclass
class RealismSet:
    """Per-galaxy statistics of one set."""

    name: str
    files: list[Path]
    rows: list[dict[str, float]] = field(default_factory=list)

    @property
    def n_used(self) -> int:
        """Galaxies with a usable measurement (statmorph flag <= 1)."""
        return sum(1 for r in self.rows if r["flag"] <= 1)

    def values(self, stat: str) -> np.ndarray:
        """Finite values of one statistic over the usable galaxies (``n_other``: all)."""
        rows = self.rows if stat == "n_other" else [r for r in self.rows if r["flag"] <= 1]
        v = np.array([r[stat] for r in rows], dtype=np.float64)
        return v[np.isfinite(v)]


#: Version of the per-galaxy measurement; bump when :func:`galaxy_statistics` changes, so that
#: cached rows from an older measurement are not reused.
MEASUREMENT_VERSION = 1


def _cache_key(path: Path, size: int | None) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{size}|v{MEASUREMENT_VERSION}"


def load_cache(path: str | Path | None) -> dict[str, dict[str, float]]:
    """Per-image statistics cached by an earlier run (``{}`` if ``path`` is None or absent).

    Raises
    ------
    InputError
        The file exists but is not a realism cache.
    """
    if path is None or not Path(path).is_file():
        return {}
    try:
        rec = json.loads(Path(path).read_text())
        rows = rec["rows"]
        if not isinstance(rows, dict):
            raise TypeError("rows is not a mapping")
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a realism statistics cache ({exc})") from None
    return rows


def save_cache(path: str | Path, rows: dict[str, dict[str, float]]) -> None:
    """Write the per-image statistics cache (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as fh:
        json.dump({"version": MEASUREMENT_VERSION, "rows": rows}, fh, allow_nan=True)


def measure_set(
    name: str,
    files: Sequence[Path],
    *,
    size: int | None = 128,
    progress: bool = False,
    cache: dict[str, dict[str, float]] | None = None,
) -> RealismSet:
    """Measure :func:`galaxy_statistics` on every file of a set.

    Parameters
    ----------
    cache : dict, optional
        Per-image rows keyed by file path, size, modification time and working size
        (:func:`load_cache`); rows found there are reused, new ones are added to it.
    """
    s = RealismSet(name=name, files=list(files))
    for i, f in enumerate(s.files):
        key = _cache_key(Path(f), size) if cache is not None else ""
        if cache is not None and key in cache:
            row = dict(cache[key])
        else:
            row = galaxy_statistics(load_colour_image(f, size=size))
            if cache is not None:
                cache[key] = dict(row)
        row["file"] = str(f)  # type: ignore[assignment]
        s.rows.append(row)
        if progress and (i + 1) % 50 == 0:
            print(f"  {name}: {i + 1}/{len(s.files)}", flush=True)
    return s


def compare_realism(sim: RealismSet, real: RealismSet) -> dict[str, Any]:
    """KS distance and medians per statistic.

    Returns
    -------
    dict
        ``ks`` {stat: KS distance (0 identical .. 1 disjoint), NaN if a side has no value},
        ``median`` {"sim"|"real": {stat: median}}, ``n`` {"sim"|"real": {"used", "failed",
        "total"}}, ``max_ks``.
    """
    from scipy.stats import ks_2samp

    ks: dict[str, float] = {}
    med: dict[str, dict[str, float]] = {"sim": {}, "real": {}}
    for stat in STATISTICS:
        a, b = sim.values(stat), real.values(stat)
        ks[stat] = float(ks_2samp(a, b).statistic) if a.size and b.size else math.nan
        med["sim"][stat] = float(np.median(a)) if a.size else math.nan
        med["real"][stat] = float(np.median(b)) if b.size else math.nan
    finite = [v for v in ks.values() if np.isfinite(v)]
    n = {
        key: {"used": s.n_used, "failed": len(s.rows) - s.n_used, "total": len(s.rows)}
        for key, s in (("sim", sim), ("real", real))
    }
    return {"ks": ks, "max_ks": max(finite) if finite else math.nan, "median": med, "n": n}


def realism_grid(
    sim_files: Sequence[Path],
    real_files: Sequence[Path],
    path: str | Path,
    *,
    n: int = 24,
    seed: int = 0,
) -> Path:
    """PNG grid: ``n`` random simulated (left) next to ``n`` random real (right) galaxies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    pick = [
        [files[i] for i in rng.choice(len(files), size=min(n, len(files)), replace=False)]
        for files in (sim_files, real_files)
    ]
    rows = 4
    cols = math.ceil(n / rows)
    fig, axes = plt.subplots(
        rows,
        2 * cols + 1,
        figsize=(1.6 * (2 * cols + 1), 1.6 * rows + 0.4),
        gridspec_kw={"width_ratios": [1] * cols + [0.15] + [1] * cols},
    )
    for ax in axes.ravel():
        ax.axis("off")
    for side, files in enumerate(pick):
        for k, f in enumerate(files):
            r, c = divmod(k, cols)
            ax = axes[r, c + side * (cols + 1)]
            ax.imshow(load_colour_image(f, size=None).astype(np.uint8), origin="upper")
    fig.text(0.25, 0.98, "simulated", ha="center", va="top", fontsize=12)
    fig.text(0.75, 0.98, "real", ha="center", va="top", fontsize=12)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.93, wspace=0.04, hspace=0.04)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path


def _sample(files: list[Path], n: int | None, rng: np.random.Generator) -> list[Path]:
    if n is None or n >= len(files):
        return files
    return sorted(files[i] for i in rng.choice(len(files), size=n, replace=False))


def run_realism(
    *,
    sim: str | Path,
    real: str | Path,
    out: str | Path,
    n: int | None = 300,
    seed: int = 0,
    size: int | None = 128,
    progress: bool = False,
    command: str | None = None,
    cache: str | Path | None = None,
) -> dict[str, Any]:
    """Measure both sets, write ``OUT/realism.json``, ``OUT/realism_galaxies.csv`` and
    ``OUT/sim_vs_real.png``.

    Parameters
    ----------
    sim, real : path
        Simulated set (``DIR/colour/images``) and real set (e.g. ``gz2_sdss_galaxies``), or any
        folders of JPEG/PNG images.
    out : path
        Output folder (created).
    n : int, optional
        Random sample per set (``None``: all).
    seed : int
        Sampling seed.
    size : int, optional
        Common working size in pixels (both sets are resized to it); ``None`` keeps pixels.
    cache : path, optional
        JSON cache of the per-image statistics of the **real** set (:func:`load_cache`), read
        if present and updated; the real side (1,500 statmorph runs) then costs nothing on a
        rerun. The simulated side is always measured.

    Returns
    -------
    dict
        The realism record (also written as JSON).
    """
    rng = np.random.default_rng(seed)
    sim_files = _sample(list_colour_images(sim), n, rng)
    real_files = _sample(list_colour_images(real), n, rng)
    s = measure_set("sim", sim_files, size=size, progress=progress)
    rows = load_cache(cache) if cache is not None else None
    r = measure_set("real", real_files, size=size, progress=progress, cache=rows)
    if cache is not None and rows is not None:
        save_cache(cache, rows)
    res = compare_realism(s, r)
    res.update(
        sim=str(sim),
        real=str(real),
        size=size,
        seed=seed,
        statistics=list(STATISTICS),
        command=command,
    )
    outd = Path(out)
    outd.mkdir(parents=True, exist_ok=True)
    import csv

    with atomic_write(outd / "realism_galaxies.csv", "w", newline="") as fh:
        cols = ["set", "file", *STATISTICS, "flag"]
        wr = csv.DictWriter(fh, fieldnames=cols)
        wr.writeheader()
        for st in (s, r):
            for row in st.rows:
                wr.writerow({"set": st.name, **{k: row[k] for k in cols[1:]}})
    realism_grid(sim_files, real_files, outd / "sim_vs_real.png", seed=seed)
    with atomic_write(outd / "realism.json", "w") as fh:
        json.dump(res, fh, indent=2, allow_nan=True)
    return res
