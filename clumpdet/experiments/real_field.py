"""Check a trained source detector on a real frame against its SExtractor catalogue.

The frame is background-subtracted with ``sep.Background``; its PSF FWHM is measured from its
bright compact sources; it is resampled (``zoom``) so the PSF spans as many pixels as in the
training simulations; a single band is copied into every band the model expects (the colours
the model saw in training are then absent, so its star/galaxy labels are not trusted here, only
its detections). Detections are mapped back to the frame's pixels and matched to the SExtractor
sources within ``match_radius_px``. Resampling adds independent noise so that the resampled
frame has the white noise of a frame of that pixel size at the same depth.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clumpdet.data.images import read_image
from clumpdet.data.sextractor import read_sextractor_catalogue
from clumpdet.evaluation.detection import to_json_safe
from clumpdet.evaluation.matching import match_points
from clumpdet.noise import mad_sigma
from clumpdet.utils import atomic_write

#: Median reference-band PSF FWHM of the default field simulations, px (1.0" at 0.263"/px): the
#: training PSF assumed for checkpoints that do not record theirs.
TRAINING_FWHM_PX = 1.0 / 0.263

#: PSF ratios within this fraction of 1 are not resampled (the training PSFs scatter by ~10 %).
ZOOM_TOLERANCE = 0.15


def auto_zoom(*, training_fwhm_px: float | None, frame_fwhm_px: float) -> float:
    """Resampling factor that gives the frame's PSF the training PSF's width in pixels.

    ``training_fwhm_px`` is the checkpoint's ``psf_fwhm_px`` (None: :data:`TRAINING_FWHM_PX`);
    ratios within :data:`ZOOM_TOLERANCE` of 1 and ratios below 1 (the frame's PSF is broader
    than the training one: the frame is never binned) give 1.
    """
    train = TRAINING_FWHM_PX if training_fwhm_px is None else float(training_fwhm_px)
    if not (math.isfinite(frame_fwhm_px) and frame_fwhm_px > 0):
        return 1.0
    ratio = train / float(frame_fwhm_px)
    return 1.0 if ratio < 1.0 + ZOOM_TOLERANCE else float(ratio)


_SNR_BINS = (3.0, 5.0, 10.0, 20.0, 50.0, 100.0, np.inf)


def _background(plane: np.ndarray) -> tuple[np.ndarray, float]:
    import sep

    data = np.ascontiguousarray(plane, dtype=np.float64)
    bkg = sep.Background(data, bw=64, bh=64, fw=3, fh=3)
    return data - bkg.back(), float(bkg.globalrms)


def measure_fwhm(plane: np.ndarray, *, rms: float, guess_px: float = 3.0) -> float:
    """PSF FWHM (px) of a sky-subtracted frame from the r50 of its bright compact sources.

    Runs sep, keeps sources with S/N > 30, takes the median r50 of the most compact third and
    converts with the Moffat(beta 3.5) ratio ``r50 / FWHM`` of
    :func:`clumpdet.baselines.sources.psf_r50`.
    """
    from clumpdet.baselines.sources import SourceFinderConfig, find_sources, psf_r50

    src = find_sources(
        plane[None].astype(np.float32),
        noise_sigma=rms,
        psf_fwhm_px=guess_px,
        bands=None,
        config=SourceFinderConfig(thresh=5.0, thresh_units="filtered"),
    ).to_pandas()
    bright = src[src["score"] > 30]["r50"].dropna().sort_values()
    if len(bright) < 3:
        return float(guess_px)
    r50 = float(np.median(bright.iloc[: max(3, len(bright) // 3)]))
    fwhm = r50 / 0.62
    for _ in range(2):  # the pixelised ratio depends mildly on the FWHM itself
        fwhm = r50 / (psf_r50(fwhm, profile="moffat", moffat_beta=3.5, rmax_fwhm=3.0) / fwhm)
    return float(fwhm)


def check_against_sextractor(
    *,
    checkpoint: str | Path,
    image: str | Path,
    catalogue: str | Path,
    out: str | Path,
    snr_min: float = 10.0,
    match_radius_px: float = 2.0,
    zoom: float | None = None,
    score_threshold: float | None = None,
) -> dict[str, Any]:
    """Fraction of SExtractor sources the detector recovers, and what its extra detections are.

    Parameters
    ----------
    checkpoint : path
        A trained source detector (``model.pt``).
    image : path
        Single-band FITS frame (the first plane is used).
    catalogue : path
        SExtractor ``ASCII_HEAD`` catalogue of that frame.
    out : path
        Output directory: ``real_field.json``, ``overlay.png``, ``detections.csv``.
    snr_min : float
        SExtractor sources with ``FLUX_AUTO / FLUXERR_AUTO >= snr_min`` define the headline
        recovery fraction.
    match_radius_px : float
        Match radius in the frame's pixels.
    zoom : float, optional
        Resampling factor; default :func:`auto_zoom` of the checkpoint's training PSF
        (``psf_fwhm_px``, else :data:`TRAINING_FWHM_PX`) and the frame's PSF measured the way
        survey profiles measure it (:func:`clumpdet.sim.profile.measure_psf`, an elliptical
        Moffat fit to isolated stars; :func:`measure_fwhm` when that finds none).
    score_threshold : float, optional
        Default: the checkpoint's operating threshold.

    Returns
    -------
    dict
        ``fwhm_px`` (r50-based), ``psf_fwhm_px_fit``, ``training_psf_fwhm_px``, ``zoom``,
        ``n_sextractor``, recovery fractions (overall, by S/N bin),
        ``n_detections``, ``extras`` (unmatched detections with their aperture S/N), the same
        recovery for sep run with SExtractor's settings, and the paths written.
    """
    from scipy.ndimage import zoom as ndzoom

    from clumpdet.baselines.sources import SourceFinderConfig, find_sources
    from clumpdet.inference.overlay import plot_point_overlays
    from clumpdet.inference.predictor import Predictor
    from clumpdet.sim.profile import measure_psf

    out = Path(out)
    img = read_image(image, nan_policy="median")
    plane = img.data[0].astype(np.float64)
    sub, rms = _background(plane)
    cat = read_sextractor_catalogue(catalogue)
    fwhm = measure_fwhm(sub, rms=rms)
    fit = measure_psf(sub, noise_sigma=rms)["psf_fwhm_px"]
    fwhm_fit = float(fit) if math.isfinite(fit) else fwhm

    pred = Predictor.from_checkpoint(checkpoint)
    train_fwhm = pred.bundle.psf_fwhm_px
    z = (
        float(zoom)
        if zoom is not None
        else auto_zoom(training_fwhm_px=train_fwhm, frame_fwhm_px=fwhm_fit)
    )
    thr = pred.bundle.model_config.score_threshold if score_threshold is None else score_threshold
    big = sub
    if z != 1.0:
        # Resampling by z makes each pixel 1/z^2 of the area: at the same depth its white noise
        # would be rms * z (surface-brightness units). Linear interpolation instead leaves
        # weaker, correlated noise that the model reads as faint sources, so independent noise
        # is added to reach rms * z (seeded; sources keep their matched-filter S/N).
        big = ndzoom(sub, z, order=1)
        have = float(mad_sigma(big))
        want = rms * z
        if want > have:
            rng = np.random.default_rng(0)
            big = big + rng.normal(0.0, np.sqrt(want**2 - have**2), size=big.shape)
    cube = np.repeat(big[None].astype(np.float32), len(pred.bands), axis=0)
    (det_all,) = pred.predict([cube])
    det = det_all.above(thr)
    boxes = det.boxes.astype(np.float64) / z
    b_all = det_all.boxes.astype(np.float64) / z
    xy_all = np.stack([(b_all[:, 0] + b_all[:, 2]) / 2, (b_all[:, 1] + b_all[:, 3]) / 2], axis=1)
    ours = pd.DataFrame(
        {
            "x": 0.5 * (boxes[:, 0] + boxes[:, 2]),
            "y": 0.5 * (boxes[:, 1] + boxes[:, 3]),
            "x1": boxes[:, 0],
            "y1": boxes[:, 1],
            "x2": boxes[:, 2],
            "y2": boxes[:, 3],
            "label": det.labels,
            "score": det.scores,
        }
    )
    sep_cfg = SourceFinderConfig(thresh=1.5, thresh_units="pixel", background="none")
    sep_src = find_sources(
        sub[None].astype(np.float32), noise_sigma=rms, psf_fwhm_px=fwhm, bands=None, config=sep_cfg
    ).to_pandas()

    ref_xy = cat[["x", "y"]].to_numpy()
    ref_snr = cat["snr"].to_numpy(float)
    result: dict[str, Any] = {
        "image": str(image),
        "catalogue": str(catalogue),
        "checkpoint": str(checkpoint),
        "background_rms": rms,
        "fwhm_px": fwhm,
        "psf_fwhm_px_fit": fwhm_fit,
        "training_psf_fwhm_px": train_fwhm,
        "zoom": z,
        "score_threshold": float(thr),
        "match_radius_px": match_radius_px,
        "snr_min": snr_min,
        "n_sextractor": len(cat),
        "n_sextractor_above_snr_min": int(np.sum(ref_snr >= snr_min)),
    }
    for name, frame in (("clumpdet", ours), ("sep_sextractor_settings", sep_src)):
        m = match_points(
            ref_xy, frame[["x", "y"]].to_numpy(), frame["score"].to_numpy(), radius=match_radius_px
        )
        found = m.truth_to_pred >= 0
        sel = ref_snr >= snr_min
        bins = []
        for lo, hi in itertools.pairwise(_SNR_BINS):
            b = (ref_snr >= lo) & (ref_snr < hi)
            bins.append(
                {"snr_lo": lo, "snr_hi": hi, "n": int(b.sum()), "found": int(found[b].sum())}
            )
        result[name] = {
            "n_detections": len(frame),
            "recovered_above_snr_min": float(found[sel].mean()) if sel.any() else float("nan"),
            "n_recovered_above_snr_min": int(found[sel].sum()),
            "recovered_all": float(found.mean()) if len(found) else float("nan"),
            "by_snr": bins,
            "missed_above_snr_min": _describe_missed(
                cat[sel & ~found],
                ref_xy,
                frame[["x", "y"]].to_numpy(),
                xy_all if name == "clumpdet" else None,
                det_all.scores if name == "clumpdet" else None,
                shape=sub.shape,
                fwhm=fwhm,
            ),
            "n_unmatched_detections": int((m.pred_to_truth < 0).sum()),
        }
        if name == "clumpdet":
            unmatched = ours[m.pred_to_truth < 0].copy()
    # what the extra detections are: aperture S/N and the distance to the nearest SExtractor source
    extras = []
    if len(unmatched):
        import sep

        f, _e, _ = sep.sum_circle(
            np.ascontiguousarray(sub), unmatched["x"] - 0.5, unmatched["y"] - 0.5, fwhm
        )
        snr = f / (rms * np.sqrt(np.pi) * fwhm)
        d = np.hypot(
            unmatched["x"].to_numpy()[:, None] - ref_xy[None, :, 0],
            unmatched["y"].to_numpy()[:, None] - ref_xy[None, :, 1],
        )
        for k, (_, r) in enumerate(unmatched.iterrows()):
            j = int(np.argmin(d[k])) if d.shape[1] else -1
            extras.append(
                {
                    "x": round(float(r.x), 2),
                    "y": round(float(r.y), 2),
                    "score": round(float(r.score), 3),
                    "box_side_px": round(float(max(r.x2 - r.x1, r.y2 - r.y1)), 1),
                    "aperture_snr": round(float(snr[k]), 1),
                    "nearest_sextractor": int(cat["NUMBER"].iloc[j]) if j >= 0 else None,
                    "nearest_sextractor_dist_px": round(float(d[k, j]), 2) if j >= 0 else None,
                    "nearest_sextractor_snr": round(float(ref_snr[j]), 1) if j >= 0 else None,
                }
            )
    result["clumpdet"]["extras"] = extras
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "detections.csv", "w") as fh:
        ours.to_csv(fh, index=False, float_format="%.3f")
    extra_xy = np.array([[e["x"], e["y"]] for e in extras]).reshape(-1, 2)
    plot_point_overlays(
        sub,
        out / "overlay.png",
        reference_xy=ref_xy,
        panels=[
            ("clumpdet", ours[["x", "y"]].to_numpy(), ours["label"].to_numpy()),
            ("clumpdet extras (no SExtractor match)", extra_xy, np.full(len(extra_xy), 3)),
            (
                "sep, SExtractor settings",
                sep_src[["x", "y"]].to_numpy(),
                sep_src["label"].to_numpy(),
            ),
        ],
        reference_label=f"SExtractor ({len(cat)})",
        title=f"{Path(image).name}: zoom {z:.2f}, FWHM {fwhm:.2f} px, score >= {thr:.2f}",
    )
    result["overlay"] = str(out / "overlay.png")
    missed = result["clumpdet"]["missed_above_snr_min"]
    if missed:
        plot_missed_cutouts(
            sub,
            out / "missed.png",
            missed=missed,
            reference_xy=ref_xy,
            detections_xy=ours[["x", "y"]].to_numpy(),
            rms=rms,
        )
        result["missed_png"] = str(out / "missed.png")
    with atomic_write(out / "real_field.json", "w") as fh:
        json.dump(to_json_safe(result), fh, indent=1)
    return result


def _describe_missed(
    missed: pd.DataFrame,
    ref_xy: np.ndarray,
    det_xy: np.ndarray,
    all_xy: np.ndarray | None,
    all_scores: np.ndarray | None,
    *,
    shape: tuple[int, int],
    fwhm: float,
) -> list[dict[str, Any]]:
    """Why each missed reference source was missed: its edge distance, nearest reference
    neighbour, nearest kept detection, and the best-scoring detection of any score near it.

    ``nearest_any_score`` / ``nearest_any_dist_px``: the highest-scoring detection (before the
    operating threshold) within 2 FWHM, i.e. whether the threshold or the localisation lost it.
    """
    rows = []
    h, w = shape
    for _, r in missed.iterrows():
        x, y = float(r["x"]), float(r["y"])
        d_ref = np.hypot(ref_xy[:, 0] - x, ref_xy[:, 1] - y)
        d_ref = d_ref[d_ref > 1e-6]
        d_det = np.hypot(det_xy[:, 0] - x, det_xy[:, 1] - y) if len(det_xy) else np.array([])
        row = {
            "NUMBER": int(r["NUMBER"]),
            "x": round(x, 2),
            "y": round(y, 2),
            "snr": round(float(r["snr"]), 2),
            "FLAGS": int(r["FLAGS"]),
            "edge_dist_px": round(min(x, y, w - x, h - y), 2),
            "nearest_source_px": round(float(d_ref.min()), 2) if d_ref.size else None,
            "nearest_detection_px": round(float(d_det.min()), 2) if d_det.size else None,
        }
        if all_xy is not None and all_scores is not None:
            d = np.hypot(all_xy[:, 0] - x, all_xy[:, 1] - y)
            near = np.flatnonzero(d <= 2.0 * fwhm)
            if near.size:
                k = near[np.argmax(all_scores[near])]
                row["nearest_any_score"] = round(float(all_scores[k]), 3)
                row["nearest_any_dist_px"] = round(float(d[k]), 2)
            else:
                row["nearest_any_score"] = None
                row["nearest_any_dist_px"] = None
        rows.append(row)
    return rows


def plot_missed_cutouts(
    plane: np.ndarray,
    path: str | Path,
    *,
    missed: list[dict[str, Any]],
    reference_xy: np.ndarray,
    detections_xy: np.ndarray,
    rms: float,
    half: int = 12,
) -> Path:
    """PNG of ``(2 half) x (2 half)`` px cutouts around missed reference sources.

    Parameters
    ----------
    plane : ndarray, shape (H, W)
        Sky-subtracted frame (image units).
    path : path
        Output PNG (written atomically).
    missed : list of dict
        ``x, y`` (corner-origin px), ``NUMBER``, ``snr`` and the fields of
        :func:`_describe_missed` for the panel titles.
    reference_xy, detections_xy : ndarray, shape (M, 2), (N, 2)
        All reference sources (circles) and the kept detections (crosses).
    rms : float
        Sky noise; the stretch is asinh from -2 to 30 sigma.
    half : int
        Half-side of a cutout, px.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clumpdet.utils import atomic_path

    n = len(missed)
    ncol = min(n, 5)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.9 * nrow), squeeze=False)
    h, w = plane.shape
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, m in zip(axes.ravel(), missed):
        cx, cy = m["x"], m["y"]
        x0, y0 = int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half)))
        x1, y1 = int(min(w, np.ceil(cx + half))), int(min(h, np.ceil(cy + half)))
        cut = np.arcsinh(np.clip(plane[y0:y1, x0:x1] / rms, -2, 300) / 3.0)
        ax.imshow(cut, origin="lower", cmap="gray", extent=(x0, x1, y0, y1), vmin=-0.6, vmax=3.0)
        ax.plot(*reference_xy.T, "o", mfc="none", mec="#00e5ff", ms=9)
        if len(detections_xy):
            ax.plot(*detections_xy.T, "+", color="#ffb000", ms=9, mew=1.5)
        ax.plot([cx], [cy], "o", mfc="none", mec="red", ms=13, mew=1.5)
        ax.set_xlim(cx - half, cx + half)
        ax.set_ylim(cy - half, cy + half)
        ax.set_axis_on()
        ax.tick_params(labelsize=6)
        best = m.get("nearest_any_score")
        extra = f"\nbest det {best:.2f} at {m['nearest_any_dist_px']:.1f}px" if best else ""
        ax.set_title(
            f"#{m['NUMBER']} S/N {m['snr']:.1f} edge {m['edge_dist_px']:.0f}px"
            f"\nnn {m['nearest_source_px']}px flags {m['FLAGS']}{extra}",
            fontsize=7,
        )
    fig.suptitle(
        "missed SExtractor sources (red); cyan: SExtractor, orange: detections", fontsize=8
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return Path(path)


def operating_threshold(
    *,
    checkpoint: str | Path,
    coco: str | Path,
    match_radius_px: float = 2.0,
    grid: np.ndarray | None = None,
) -> dict[str, Any]:
    """Choose a detector's operating score threshold on a (simulated or injected) validation set.

    Every detection is matched one-to-one (best score first) to a labelled truth centre within
    ``match_radius_px``; the threshold is the one of ``grid`` (default 0.05 ... 0.95) with the
    best F1 of completeness and purity (the higher threshold on ties). Nothing of the real
    frame the detector is later checked on is used.

    Returns
    -------
    dict
        ``threshold``, and ``curve``: ``threshold, completeness, purity, f1`` per grid value.
    """
    from clumpdet.data.coco import load_coco
    from clumpdet.inference.predictor import Predictor

    doc = load_coco(coco)
    pred = Predictor.from_checkpoint(checkpoint)
    res = pred.predict_coco(doc)
    truth: dict[int, list[list[float]]] = {int(im["id"]): [] for im in doc["images"]}
    for a in doc["annotations"]:
        x, y, w, h = a["bbox"]
        c = a.get("centre") or [x + w / 2, y + h / 2]
        truth[int(a["image_id"])].append([float(c[0]), float(c[1])])
    grid = np.round(np.arange(0.05, 0.96, 0.05), 2) if grid is None else np.asarray(grid)
    curve = []
    for t in grid:
        tp = n_det = n_true = 0
        for iid, det in zip(res.image_ids, res.detections):
            d = det.above(float(t))
            b = d.boxes.astype(np.float64)
            xy = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2], axis=1)
            ref = np.asarray(truth[iid], dtype=np.float64).reshape(-1, 2)
            m = match_points(ref, xy.reshape(-1, 2), d.scores, radius=match_radius_px)
            tp += int(np.sum(m.truth_to_pred >= 0))
            n_det += len(xy)
            n_true += len(ref)
        comp = tp / n_true if n_true else 0.0
        pur = tp / n_det if n_det else 1.0
        f1 = 2 * comp * pur / (comp + pur) if comp + pur > 0 else 0.0
        curve.append({"threshold": float(t), "completeness": comp, "purity": pur, "f1": f1})
    best = max(curve, key=lambda r: (round(r["f1"], 4), r["threshold"]))
    return {"threshold": best["threshold"], "coco": str(coco), "curve": curve}
