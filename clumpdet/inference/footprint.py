"""The central galaxy's footprint in a per-galaxy cutout, and the rule that clumps lie inside it.

Clump Scout and Galaxy Zoo subjects are framed on one galaxy; the volunteers mark star-forming
clumps *of that galaxy*. A detector that fires on a field star or a compact background galaxy
elsewhere in the frame is wrong by definition, however clump-like the object looks. The rule
here: segment the frame (photutils, on the mean of its planes with a border-estimated sky),
take the segment under the frame centre (or the one nearest to it), grow it by a few pixels,
and keep only detections whose box centre lies inside (``model.central_host``; applied by
:class:`clumpdet.inference.predictor.Predictor` for per-galaxy cutouts).

Objects that overlap the central galaxy's isophote stay in its segment (no deblending: a clumpy
disk deblends into fragments of itself), so a star superposed on the disk is still the
classifier's job (class 2, odd clump).

The galaxy's own nucleus is not a clump either: Clump Scout volunteers marked bulges separately
and those marks are not clumps (Popp et al. 2024 drop them), and the simulator places no
labelled clump in the bulge region. With ``model.nucleus_exclusion`` = f > 0, a detection whose
box centre lies within f x its box side of the central galaxy's nucleus (:func:`central_nucleus`)
is the bulge and is dropped. Truth boxes are 3.4 x the object's effective FWHM, so f = 0.15 is
about half a FWHM: a box centred on the nucleus to within the accuracy of a centroid.
"""

from __future__ import annotations

import warnings

import numpy as np

from clumpdet.detections import Detections
from clumpdet.noise import mad_sigma

#: Detection threshold (sigma of the smoothed frame), minimum pixels, smoothing FWHM (pixels)
#: and growth (pixels) of the central footprint. The 3-sigma isophote of a 4 px smoothed SDSS
#: frame reaches about the galaxy's Petrosian R90, where Clump Scout clumps end.
FOOTPRINT_NSIGMA = 3.0
FOOTPRINT_NPIXELS = 20
FOOTPRINT_SMOOTH_FWHM = 3.0
FOOTPRINT_GROW = 3
#: Search radius for the central galaxy's nucleus around the frame centre (fraction of the
#: frame's shorter side).
NUCLEUS_SEARCH = 0.15


def central_footprint(
    planes: np.ndarray,
    *,
    nsigma: float = FOOTPRINT_NSIGMA,
    npixels: int = FOOTPRINT_NPIXELS,
    smooth_fwhm: float = FOOTPRINT_SMOOTH_FWHM,
    grow: int = FOOTPRINT_GROW,
    border: float = 0.1,
) -> np.ndarray:
    """Boolean mask of the galaxy at the centre of a cutout.

    Parameters
    ----------
    planes : ndarray, shape (C, H, W) or (H, W)
        The cutout in any monotonic unit (stretched network input, 8-bit / 255, or flux).
    nsigma : float
        Threshold above the sky, in units of the smoothed frame's noise.
    npixels : int
        Minimum connected pixels of a segment.
    smooth_fwhm : float
        Gaussian smoothing FWHM before segmenting, in pixels.
    grow : int
        Pixels by which the footprint is dilated (box centres of clumps on the edge).
    border : float
        Width of the frame border, as a fraction of each side, from which the sky level and
        noise are measured (the galaxy sits in the middle of a per-galaxy cutout).

    Returns
    -------
    ndarray, bool, shape (H, W)
        True on the central galaxy. All True when nothing rises above the threshold (an empty
        or flat frame: no footprint to restrict to).
    """
    return _segment_central(
        planes, nsigma=nsigma, npixels=npixels, smooth_fwhm=smooth_fwhm, grow=grow, border=border
    )[0]


def _segment_central(planes, *, nsigma, npixels, smooth_fwhm, grow, border):
    """:func:`central_footprint`'s mask and the sky-subtracted smoothed frame it was cut from
    (``None`` when the frame is flat or empty)."""
    from photutils.segmentation import detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning
    from scipy.ndimage import binary_dilation, gaussian_filter

    img = np.asarray(planes, dtype=np.float64)
    if img.ndim == 3:
        img = np.nanmean(img, axis=0)
    h, w = img.shape
    by, bx = max(1, int(border * h)), max(1, int(border * w))
    edge = np.ones((h, w), dtype=bool)
    edge[by : h - by, bx : w - bx] = False
    sky = img[edge]
    sky = sky[np.isfinite(sky)]
    if sky.size == 0:
        return np.ones((h, w), dtype=bool), None
    # threshold from the noise of the *smoothed* border: JPEG and resampled frames have
    # correlated noise, well above the white-noise prediction after smoothing, and a threshold
    # set from the latter merges the galaxy with every star of the frame
    s = smooth_fwhm / 2.3548
    smoothed = np.nan_to_num(img - float(np.median(sky)))
    if s > 0:
        smoothed = gaussian_filter(smoothed, s, mode="nearest")
    sigma = float(mad_sigma(smoothed[edge])) or float(np.std(smoothed[edge]))
    if not sigma > 0:
        return np.ones((h, w), dtype=bool), None
    with warnings.catch_warnings():  # an empty frame is an answer here (all True), not a warning
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segm = detect_sources(smoothed, nsigma * sigma, npixels)
    if segm is None:
        return np.ones((h, w), dtype=bool), None
    data = segm.data
    cy, cx = h // 2, w // 2
    lab = int(data[cy, cx])
    if lab == 0:
        yy, xx = np.nonzero(data)
        k = int(np.argmin((xx - cx) ** 2 + (yy - cy) ** 2))
        lab = int(data[yy[k], xx[k]])
    mask = data == lab
    if grow > 0:
        mask = binary_dilation(mask, iterations=int(grow))
    return mask, smoothed


def central_nucleus(
    planes: np.ndarray, *, radius: float = NUCLEUS_SEARCH, **kwargs
) -> tuple[float, float] | None:
    """The nucleus of the galaxy at the centre of a cutout.

    The brightest pixel of the smoothed, sky-subtracted frame on the central footprint within
    ``radius`` x the frame's shorter side of the frame centre, refined by a Gaussian-windowed
    centroid (:func:`clumpdet.inference.photometry.recentre`).

    Parameters
    ----------
    planes : ndarray, shape (C, H, W) or (H, W)
        The cutout, as for :func:`central_footprint`.
    radius : float
        Search radius around the frame centre, as a fraction of the shorter side (per-galaxy
        cutouts are centred on the galaxy's catalogue position to within a few pixels).
    **kwargs
        Passed to :func:`central_footprint`.

    Returns
    -------
    (x, y) : tuple of float, or None
        0-based pixel position; ``None`` for a flat or empty frame (no galaxy).
    """
    mask, smoothed = _segment_central(planes, **_footprint_kwargs(kwargs))
    return _nucleus(mask, smoothed, radius)


def _footprint_kwargs(kwargs: dict) -> dict:
    out = {
        "nsigma": FOOTPRINT_NSIGMA,
        "npixels": FOOTPRINT_NPIXELS,
        "smooth_fwhm": FOOTPRINT_SMOOTH_FWHM,
        "grow": FOOTPRINT_GROW,
        "border": 0.1,
    }
    unknown = set(kwargs) - set(out)
    if unknown:
        raise TypeError(f"unknown footprint arguments: {sorted(unknown)}")
    out.update(kwargs)
    return out


def _nucleus(mask, smoothed, radius):
    from clumpdet.inference.photometry import recentre

    if smoothed is None:
        return None
    h, w = mask.shape
    x, y = recentre(np.where(mask, smoothed, 0.0), 0.5 * (w - 1), 0.5 * (h - 1), radius * min(h, w))
    return float(x), float(y)


def inside(det: Detections, mask: np.ndarray) -> np.ndarray:
    """Which detections have their box centre on ``mask``.

    Parameters
    ----------
    det : Detections
        Boxes in the pixels of ``mask``.
    mask : ndarray, bool, shape (H, W)

    Returns
    -------
    ndarray, bool, shape (N,)
    """
    if len(det) == 0:
        return np.zeros(0, dtype=bool)
    h, w = mask.shape
    cx = np.clip(np.floor(0.5 * (det.boxes[:, 0] + det.boxes[:, 2])).astype(int), 0, w - 1)
    cy = np.clip(np.floor(0.5 * (det.boxes[:, 1] + det.boxes[:, 3])).astype(int), 0, h - 1)
    return mask[cy, cx]


def nucleus_distance(det: Detections, nucleus: tuple[float, float] | None) -> np.ndarray:
    """Distance of each box centre from ``nucleus``, in units of the box's mean side.

    Parameters
    ----------
    det : Detections
    nucleus : (x, y) or None
        0-based pixel position, in the pixels of ``det``; ``None``: no nucleus (every distance
        is ``inf``).

    Returns
    -------
    ndarray, float64, shape (N,)
    """
    if len(det) == 0 or nucleus is None:
        return np.full(len(det), np.inf)
    b = det.boxes.astype(np.float64)
    cx, cy = 0.5 * (b[:, 0] + b[:, 2]), 0.5 * (b[:, 1] + b[:, 3])
    side = 0.5 * ((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1]))
    # box corners are pixel edges: the centre of pixel (i, j) is (i + 0.5, j + 0.5)
    return np.hypot(cx - 0.5 - nucleus[0], cy - 0.5 - nucleus[1]) / side


def on_nucleus(det: Detections, nucleus: tuple[float, float] | None, fraction: float) -> np.ndarray:
    """Which detections are centred on ``nucleus``: box centre within ``fraction`` x the box's
    mean side of it (:func:`nucleus_distance`).

    Parameters
    ----------
    det : Detections
    nucleus : (x, y) or None
        0-based pixel position, in the pixels of ``det``; ``None``: nothing is on it.
    fraction : float
        Distance limit in units of each box's mean side.

    Returns
    -------
    ndarray, bool, shape (N,)
    """
    if not fraction > 0:
        return np.zeros(len(det), dtype=bool)
    return nucleus_distance(det, nucleus) < fraction


def keep_central(
    det: Detections, planes: np.ndarray, *, nucleus_exclusion: float = 0.0, **kwargs
) -> Detections:
    """The detections of ``det`` that lie on the central galaxy of ``planes``, off its nucleus.

    Parameters
    ----------
    det : Detections
        Boxes in the pixels of ``planes``.
    planes : ndarray, shape (C, H, W)
        The cutout the boxes were found on.
    nucleus_exclusion : float
        Also drop detections centred within this fraction of their box side of the central
        galaxy's nucleus (:func:`on_nucleus`); 0 keeps them.
    **kwargs
        Passed to :func:`central_footprint`.

    Returns
    -------
    Detections
    """
    if len(det) == 0:
        return det
    mask, smoothed = _segment_central(planes, **_footprint_kwargs(kwargs))
    keep = inside(det, mask)
    if nucleus_exclusion > 0:
        keep &= ~on_nucleus(det, _nucleus(mask, smoothed, NUCLEUS_SEARCH), nucleus_exclusion)
    return det.select(keep)
