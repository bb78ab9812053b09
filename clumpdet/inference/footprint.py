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
        return np.ones((h, w), dtype=bool)
    # threshold from the noise of the *smoothed* border: JPEG and resampled frames have
    # correlated noise, well above the white-noise prediction after smoothing, and a threshold
    # set from the latter merges the galaxy with every star of the frame
    s = smooth_fwhm / 2.3548
    smoothed = np.nan_to_num(img - float(np.median(sky)))
    if s > 0:
        smoothed = gaussian_filter(smoothed, s, mode="nearest")
    sigma = float(mad_sigma(smoothed[edge])) or float(np.std(smoothed[edge]))
    if not sigma > 0:
        return np.ones((h, w), dtype=bool)
    with warnings.catch_warnings():  # an empty frame is an answer here (all True), not a warning
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segm = detect_sources(smoothed, nsigma * sigma, npixels)
    if segm is None:
        return np.ones((h, w), dtype=bool)
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
    return mask


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


def keep_central(det: Detections, planes: np.ndarray, **kwargs) -> Detections:
    """The detections of ``det`` that lie on the central galaxy of ``planes``.

    Parameters
    ----------
    det : Detections
        Boxes in the pixels of ``planes``.
    planes : ndarray, shape (C, H, W)
        The cutout the boxes were found on.
    **kwargs
        Passed to :func:`central_footprint`.

    Returns
    -------
    Detections
    """
    if len(det) == 0:
        return det
    return det.select(inside(det, central_footprint(planes, **kwargs)))
