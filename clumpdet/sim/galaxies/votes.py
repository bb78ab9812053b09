"""Synthetic labels of the morphology task: Galaxy-Zoo-like votes and CANDELS-like fractions.

All labels are made from the simulated parameters; none comes from people. For each galaxy the
answer probabilities of each Galaxy Zoo question are an explicit function of the true parameters
and of the feature visibility ``v = snr / (snr + votes.snr_half)`` (``snr``: matched-filter S/N of
the noiseless galaxy in the middle band against the configured noise, so labels do not depend on
the ``noise.enabled`` switch), mixed with a floor ``votes.floor`` for careless clicks:

* Q1 smooth / features / star: stars ``(0.05, 0.05, 0.9)``; galaxies
  ``featured = (1 - B/T) (0.35 + 0.65 v)``, +0.2 for disturbed, irregular and merging galaxies.
* Q2 edge-on: ``1 / (1 + exp((q - edge_on_axis_ratio) / edge_on_width))`` of the axis ratio q.
* Q3 bar: ``bar * v * min(1, bar_flux / 0.08) * clip((q - 0.3) / 0.4, 0, 1)``.
* Q4 spiral: ``arms * v * min(1, A / 0.5) * clip((q - 0.2) / 0.4, 0, 1)``.
* Q5 bulge none / noticeable / obvious / dominant, Q9 edge-on bulge rounded / boxy / none and
  Q7 round / in-between / cigar: Gaussian kernels on B/T (centres 0, 0.12, 0.3, 0.6 and
  0.35, 0.15, 0) or on q (0.9, 0.6, 0.3) whose width grows as ``v`` falls.
* Q6 odd: ``odd * (0.3 + 0.6 v)``; Q8 odd feature: ``c * onehot(kind) + (1 - c) * base`` with
  ``c = 0.3 + 0.5 v`` (``base`` favours disturbed / irregular / other).
* Q10 winding: Gaussian kernels on the pitch angle (10, 20, 30 deg); Q11 arm count: kernel on the
  true count, "can't tell" ``0.1 + 0.5 (1 - v)``; galaxies without arms get flat answers.

Each question's probabilities are then perturbed per galaxy by a Dirichlet draw with
concentration ``votes.concentration`` (over-dispersion, as in Zoobot's Dirichlet-multinomial
model) and ``N ~ U{volunteers_min..volunteers_max}`` volunteers walk the tree: all N answer Q1 and
Q6 (the Kaggle normalisation), and only the volunteers who gave a question's parent answer
answer it (multinomial counts). Fractions are counts / N, so every question's answers sum to its
parent answer's fraction exactly (Dieleman / Kaggle convention).

CANDELS-like fractions ``(spheroid, disk, irregular, point_source, unclassifiable)`` come from the
same parameters: probabilities proportional to ``(B/T, 1 - B/T, irr, ps, u)`` with ``irr`` 0.8 for
disturbed / irregular / merging galaxies (0.05 otherwise), ``ps = exp(-(hlr / FWHM_psf)^2)``
(1 for stars), ``u = 0.6 (1 - v)^2``, the same floor and Dirichlet perturbation, and
``votes.candels_classifiers`` single-choice classifiers; the five fractions sum to 1. The images
are g, r, i, not H band: the CANDELS labels only mimic the label format and its relation to
bulge fraction, irregularity, compactness and S/N.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Galaxy Zoo Q8 odd features, in answer order.
ODD_FEATURES: tuple[str, ...] = (
    "ring",
    "lens",
    "disturbed",
    "irregular",
    "other",
    "merger",
    "dust_lane",
)
#: CANDELS-like fraction columns.
CANDELS_NAMES: tuple[str, ...] = (
    "spheroid",
    "disk",
    "irregular",
    "point_source",
    "unclassifiable",
)


def _kernel_probs(value: float, centres: tuple[float, ...], sigma: float) -> np.ndarray:
    c = np.asarray(centres, dtype=float)
    p = np.exp(-0.5 * ((value - c) / sigma) ** 2) + 1e-12
    return p / p.sum()


def answer_probabilities(params: dict[str, Any], votes: Any) -> dict[int, np.ndarray]:
    """Ideal answer probabilities of the 11 Galaxy Zoo questions for a galaxy's true parameters.

    The explicit mapping of the module docstring ("Synthetic labels"), before the floor and the
    Dirichlet perturbation.

    Parameters
    ----------
    params : dict
        A morphology scene's ``params`` (``kind``, ``bt``, ``q``, ``bar``, ``bar_flux``, ``arms``,
        ``arm_count``, ``arm_pitch``, ``arm_amplitude``, ``odd``, ``odd_feature``, ``snr``).
    votes : VotesConfig
        Visibility and edge-on parameters.

    Returns
    -------
    dict of int to ndarray
        Question number -> probabilities of its answers (each sums to 1).
    """
    v = params["snr"] / (params["snr"] + votes.snr_half)
    kind, bt, q = params["kind"], params["bt"], params["q"]
    odd_kind = params["odd_feature"]
    p: dict[int, np.ndarray] = {}
    if kind == "star":
        p[1] = np.array([0.05, 0.05, 0.9])
    else:
        feat = (1.0 - bt) * (0.35 + 0.65 * v)
        if odd_kind in ("disturbed", "irregular", "merger"):
            feat = min(1.0, feat + 0.2)
        p[1] = np.array([1.0 - feat, feat, 0.0])
    edge = 1.0 / (1.0 + math.exp((q - votes.edge_on_axis_ratio) / votes.edge_on_width))
    p[2] = np.array([edge, 1.0 - edge])
    face_bar = min(max((q - 0.3) / 0.4, 0.0), 1.0)
    bar = params["bar"] * v * min(1.0, params["bar_flux"] / 0.08) * face_bar
    p[3] = np.array([bar, 1.0 - bar])
    face_arm = min(max((q - 0.2) / 0.4, 0.0), 1.0)
    spiral = params["arms"] * v * min(1.0, params["arm_amplitude"] / 0.5) * face_arm
    p[4] = np.array([spiral, 1.0 - spiral])
    p[5] = _kernel_probs(bt, (0.0, 0.12, 0.3, 0.6), 0.07 + 0.1 * (1.0 - v))
    odd = params["odd"] * (0.3 + 0.6 * v)
    p[6] = np.array([odd, 1.0 - odd])
    p[7] = _kernel_probs(q, (0.9, 0.6, 0.3), 0.1 + 0.1 * (1.0 - v))
    base = np.array([0.1, 0.1, 0.2, 0.2, 0.2, 0.1, 0.1])
    if params["odd"]:
        c = 0.3 + 0.5 * v
        onehot = np.zeros(7)
        onehot[ODD_FEATURES.index(odd_kind)] = 1.0
        p[8] = c * onehot + (1.0 - c) * base
    else:
        p[8] = base
    p[9] = _kernel_probs(bt, (0.35, 0.15, 0.0), 0.08 + 0.1 * (1.0 - v))
    if params["arms"]:
        p[10] = _kernel_probs(params["arm_pitch"], (10.0, 20.0, 30.0), 5.0 + 5.0 * (1.0 - v))
        m = min(int(params["arm_count"]), 5)
        counts = _kernel_probs(m, (1, 2, 3, 4, 5), 0.5)
        cant = 0.1 + 0.5 * (1.0 - v)
        p[11] = np.append((1.0 - cant) * counts, cant)
    else:
        p[10] = np.array([0.4, 0.4, 0.2])
        p[11] = np.array([0.08, 0.08, 0.08, 0.08, 0.08, 0.6])
    return p


def sample_votes(
    probs: dict[int, np.ndarray], *, n_volunteers: int, votes: Any, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Simulated volunteers walking the Galaxy Zoo tree.

    Each question's probabilities are mixed with the floor, perturbed by a Dirichlet draw
    (concentration ``votes.concentration``) and answered by the volunteers who gave the parent
    answer (all ``n_volunteers`` for Q1 and Q6).

    Returns
    -------
    counts : ndarray, shape (37,), int64
        Votes per answer (Kaggle column order).
    fractions : ndarray, shape (37,), float64
        ``counts / n_volunteers`` (cumulative: answers sum to the parent answer's fraction).
    """
    from clumpdet.tasks.gz_tree import QUESTIONS, parent_index, question_slices

    slices = question_slices()
    counts = np.zeros(37, dtype=np.int64)
    for q in QUESTIONS:  # numeric order visits every parent before its children
        k = q.number
        pi = parent_index(k)
        n = n_volunteers if pi is None else int(counts[pi])
        pk = np.asarray(probs[k], dtype=float)
        pk = (1.0 - pk.size * votes.floor) * pk / pk.sum() + votes.floor
        pk = rng.dirichlet(votes.concentration * pk)
        counts[slices[k]] = rng.multinomial(n, pk / pk.sum()) if n > 0 else 0
    return counts, counts / float(n_volunteers)


def candels_probabilities(params: dict[str, Any], votes: Any, psf_fwhm: float) -> np.ndarray:
    """Ideal CANDELS-like probabilities (spheroid, disk, irregular, point source, unclassifiable).

    See the module docstring; ``psf_fwhm`` in arcsec (middle band).
    """
    v = params["snr"] / (params["snr"] + votes.snr_half)
    if params["kind"] == "star":
        w = np.array([0.0, 0.0, 0.0, 1.0, 0.6 * (1.0 - v) ** 2])
    else:
        bt = params["bt"]
        irr = 0.8 if params["odd_feature"] in ("disturbed", "irregular", "merger") else 0.05
        ps = math.exp(-((params["hlr"] / psf_fwhm) ** 2))
        w = np.array([bt, 1.0 - bt, irr, ps, 0.6 * (1.0 - v) ** 2])
    return w / w.sum()
