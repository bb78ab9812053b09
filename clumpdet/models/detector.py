"""Faster R-CNN detector on any registered trunk + FPN, sized for small clumps.

Differences from torchvision's stock ``fasterrcnn_resnet50_fpn`` and why:

* **No resize.** Stock resizes every image to 800 px; a 200 px cutout becomes 16x more pixels and
  clumps grow to 36-110 px. Here images keep their native pixel scale unless ``min_size`` is set.
* **Anchors from the clump box statistics.** Clump Scout boxes are square with sides 9-28 px
  (5-95th percentile), so anchors are square (aspect 1) with sizes 8-48 px on strides 4, 8, 16.
* **Fewer proposals and a lighter box head.** A galaxy cutout holds at most ~10 clumps; 1000
  proposals per image through a 1024-wide MLP dominate the stock cost. Defaults: 100 test
  proposals and a 256-wide head.
* **Published inference settings.** NMS IoU 0.2 and an operating score threshold of 0.3
  (Popp et al. 2024). The model keeps detections down to ``min_score`` so that AP and the
  completeness/purity-vs-threshold curves can be computed; catalogues cut at ``score_threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import MultiScaleRoIAlign, nms
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from clumpdet.errors import ConfigError
from clumpdet.models.backbones import BackboneConfig, Trunk, build_trunk


@dataclass
class DetectorConfig:
    """Architecture and inference knobs of the detector.

    Attributes
    ----------
    backbone : BackboneConfig
        Trunk name, weights, trainable depth and feature stages.
    class_names : tuple of str
        Foreground classes, label 1 first (label 0 is background).
    detection_kind : {"clumps", "sources"}
        What the classes are: clumps inside galaxies (catalogues get host photometry) or
        stars/galaxies (source catalogues). Stored in the checkpoint.
    fpn_channels : int
        FPN width. 64 is plenty for clumps and ~4x cheaper than the stock 256.
    extra_pool_level : bool
        Add an FPN max-pool level (stride 2x the last) for large objects.
    anchor_sizes : tuple of tuple of float
        Anchor sides in pixels, one tuple per FPN level (plus one for the pool level if used).
    aspect_ratios : tuple of float
        Anchor height/width ratios (clump boxes are square).
    min_size, max_size : int or None
        Resize range of torchvision's transform; ``None`` keeps native resolution.
    rpn_pre_nms_top_n_train, rpn_pre_nms_top_n_test, rpn_post_nms_top_n_train,
    rpn_post_nms_top_n_test : int
        Proposals kept per image before/after RPN NMS.
    rpn_batch_size_per_image, box_batch_size_per_image : int
        Sampled anchors / proposals per image for the losses.
    representation_size : int
        Width of the two-layer box head.
    nms_iou : float
        Class-wise NMS IoU of final detections (0.2 as published).
    class_agnostic_nms : bool
        Also suppress overlapping detections of *different* classes (at ``nms_iou``): one knot
        is either a clump or an odd clump, never both, so torchvision's per-class NMS alone
        leaves duplicate detections that cost purity.
    centre_merge : float
        After NMS, also drop a detection whose centre lies within ``centre_merge`` times the
        shorter side of the smaller of the two boxes from a higher-scoring kept detection (any
        class); 0 (default) turns it off. For point-like sources a few pixels across, the high
        ``nms_iou`` that keeps close pairs also keeps duplicates of one source whose boxes
        differ in size (two concentric 4 and 5.4 px boxes have IoU 0.55); 0.25 removes those
        and keeps pairs more than a quarter of a box side apart (:func:`centre_suppression`).
    central_host : bool
        Per-galaxy cutouts: keep only detections on the central galaxy's footprint
        (:mod:`clumpdet.inference.footprint`; clumps belong to the galaxy the frame is centred
        on, not to field stars or background galaxies elsewhere in it). Applied at
        prediction time by :class:`~clumpdet.inference.predictor.Predictor`; default off.
    nucleus_exclusion : float
        With ``central_host``, also drop detections whose box centre lies within this fraction
        of the box side of the central galaxy's nucleus: the bulge, which volunteers marked
        separately and the simulator never labels (:func:`clumpdet.inference.footprint.on_nucleus`;
        0.15 is about half the object's FWHM). 0 (default) keeps them.
    score_threshold : float
        Operating threshold used by catalogues (0.3 as published).
    min_score : float
        Lowest score kept by the model (for AP and threshold curves).
    detections_per_image : int
        Maximum detections per image.
    """

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    class_names: tuple[str, ...] = ("clump", "odd_clump")
    detection_kind: Literal["clumps", "sources"] = "clumps"
    fpn_channels: int = 64
    extra_pool_level: bool = False
    anchor_sizes: tuple[tuple[float, ...], ...] = ((8.0, 12.0), (16.0, 24.0), (32.0, 48.0))
    aspect_ratios: tuple[float, ...] = (1.0,)
    min_size: int | None = None
    max_size: int | None = None
    rpn_pre_nms_top_n_train: int = 1000
    rpn_pre_nms_top_n_test: int = 300
    rpn_post_nms_top_n_train: int = 300
    rpn_post_nms_top_n_test: int = 100
    rpn_batch_size_per_image: int = 128
    box_batch_size_per_image: int = 128
    representation_size: int = 256
    nms_iou: float = 0.2
    class_agnostic_nms: bool = True
    centre_merge: float = 0.0
    central_host: bool = False
    nucleus_exclusion: float = 0.0
    score_threshold: float = 0.3
    min_score: float = 0.05
    detections_per_image: int = 50

    def __post_init__(self) -> None:
        if not self.class_names:
            raise ConfigError("model.class_names: at least one class is required")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ConfigError(f"model.nms_iou: must be in (0, 1], got {self.nms_iou}")
        if not 0.0 <= self.centre_merge < 1.0:
            raise ConfigError(f"model.centre_merge: must be in [0, 1), got {self.centre_merge}")
        if not 0.0 <= self.nucleus_exclusion < 1.0:
            raise ConfigError(
                f"model.nucleus_exclusion: must be in [0, 1), got {self.nucleus_exclusion}"
            )
        if not 0.0 <= self.min_score <= self.score_threshold <= 1.0:
            raise ConfigError("model: need 0 <= min_score <= score_threshold <= 1")
        if (self.min_size is None) != (self.max_size is None):
            raise ConfigError("model: set both min_size and max_size, or neither")


class NativeResolutionTransform(GeneralizedRCNNTransform):
    """torchvision's detection transform without the resize (images keep their pixel scale)."""

    def resize(self, image: torch.Tensor, target=None):
        return image, target


def centre_suppression(boxes: torch.Tensor, scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Greedy centre-distance suppression of duplicate detections.

    Parameters
    ----------
    boxes : Tensor, shape (N, 4)
        ``xyxy`` boxes, pixels.
    scores : Tensor, shape (N,)
    fraction : float
        A detection is dropped when its centre lies within ``fraction`` times the shorter side
        of the smaller box of the pair from a higher-scoring kept detection.

    Returns
    -------
    Tensor, shape (K,), int64
        Indices of the kept detections, by decreasing score.
    """
    order = torch.argsort(scores, descending=True)
    if len(order) < 2 or fraction <= 0:
        return order
    b = boxes[order]
    c = 0.5 * (b[:, :2] + b[:, 2:])
    side = torch.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    dist = torch.cdist(c, c)
    limit = fraction * torch.minimum(side[:, None], side[None, :])
    close = dist < limit
    keep = torch.ones(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if keep[i]:
            later = close[i].clone()
            later[: i + 1] = False
            keep &= ~later
    return order[keep]


class ClumpFasterRCNN(FasterRCNN):
    """torchvision ``FasterRCNN`` plus optional class-agnostic NMS and centre-distance
    suppression (:func:`centre_suppression`) of the final detections."""

    def __init__(
        self, *args, class_agnostic_nms: bool = True, centre_merge: float = 0.0, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.class_agnostic_nms = class_agnostic_nms
        self.centre_merge = float(centre_merge)

    def forward(self, images, targets=None):
        out = super().forward(images, targets)
        if self.training or not (self.class_agnostic_nms or self.centre_merge > 0):
            return out
        for det in out:
            if self.class_agnostic_nms:
                keep = nms(det["boxes"], det["scores"], self.roi_heads.nms_thresh)
                for key in ("boxes", "labels", "scores"):
                    det[key] = det[key][keep]
            if self.centre_merge > 0:
                keep = centre_suppression(det["boxes"], det["scores"], self.centre_merge)
                for key in ("boxes", "labels", "scores"):
                    det[key] = det[key][keep]
        return out


class TrunkWithFPN(nn.Module):
    """Trunk + feature pyramid; ``out_channels`` is what ``FasterRCNN`` needs.

    Parameters
    ----------
    trunk : Trunk
        Multi-scale feature extractor.
    out_channels : int
        FPN width.
    extra_pool_level : bool
        Append a max-pooled level after the last one.
    """

    def __init__(self, trunk: Trunk, *, out_channels: int, extra_pool_level: bool) -> None:
        super().__init__()
        self.trunk = trunk
        self.fpn = FeaturePyramidNetwork(
            trunk.channels,
            out_channels,
            extra_blocks=LastLevelMaxPool() if extra_pool_level else None,
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor):
        return self.fpn(self.trunk(x))


def build_detector(
    *,
    config: DetectorConfig,
    in_chans: int,
    image_mean: Sequence[float],
    image_std: Sequence[float],
) -> FasterRCNN:
    """Build a torchvision ``FasterRCNN`` for clumps (or sources) on the configured trunk.

    Parameters
    ----------
    config : DetectorConfig
        Architecture and inference settings.
    in_chans : int
        Number of input bands.
    image_mean, image_std : sequence of float
        Per-band normalisation applied inside the model after the stretch (from the backbone's
        preprocessing), length ``in_chans``.

    Returns
    -------
    torchvision.models.detection.FasterRCNN
        In train mode it takes ``(list[Tensor (C,H,W)], list[target])`` and returns a loss dict;
        in eval mode it returns one dict per image with ``boxes`` (N, 4) xyxy pixels, ``labels``
        (N,) int64 and ``scores`` (N,).
    """
    if len(image_mean) != in_chans or len(image_std) != in_chans:
        raise ConfigError(
            f"model: image_mean/std have {len(image_mean)}/{len(image_std)} values, "
            f"expected one per band ({in_chans})"
        )
    trunk = build_trunk(config.backbone, in_chans=in_chans)
    backbone = TrunkWithFPN(
        trunk, out_channels=config.fpn_channels, extra_pool_level=config.extra_pool_level
    )
    n_levels = len(trunk.channels) + int(config.extra_pool_level)
    if len(config.anchor_sizes) != n_levels:
        raise ConfigError(
            f"model.anchor_sizes: {len(config.anchor_sizes)} levels given, the FPN has {n_levels} "
            f"(backbone.out_indices={list(config.backbone.out_indices)}, "
            f"extra_pool_level={config.extra_pool_level})"
        )
    anchors = AnchorGenerator(
        sizes=tuple(tuple(s) for s in config.anchor_sizes),
        aspect_ratios=tuple(tuple(config.aspect_ratios) for _ in range(n_levels)),
    )
    feat_names = [str(i) for i in range(len(trunk.channels))]
    roi_pool = MultiScaleRoIAlign(featmap_names=feat_names, output_size=7, sampling_ratio=2)
    box_head = TwoMLPHead(config.fpn_channels * 7 * 7, config.representation_size)
    num_classes = len(config.class_names) + 1
    model = ClumpFasterRCNN(
        backbone,
        class_agnostic_nms=config.class_agnostic_nms,
        centre_merge=config.centre_merge,
        num_classes=None,
        rpn_anchor_generator=anchors,
        box_roi_pool=roi_pool,
        box_head=box_head,
        box_predictor=FastRCNNPredictor(config.representation_size, num_classes),
        rpn_pre_nms_top_n_train=config.rpn_pre_nms_top_n_train,
        rpn_pre_nms_top_n_test=config.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_train=config.rpn_post_nms_top_n_train,
        rpn_post_nms_top_n_test=config.rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=config.rpn_batch_size_per_image,
        box_batch_size_per_image=config.box_batch_size_per_image,
        box_score_thresh=config.min_score,
        box_nms_thresh=config.nms_iou,
        box_detections_per_img=config.detections_per_image,
        min_size=config.min_size or 800,
        max_size=config.max_size or 1333,
        image_mean=list(image_mean),
        image_std=list(image_std),
    )
    if config.min_size is None:
        model.transform = NativeResolutionTransform(
            800, 1333, list(image_mean), list(image_std), size_divisible=32
        )
    return model
