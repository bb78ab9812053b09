"""Backbones (trunks): builders, the family registry and weight files.

:mod:`~clumpdet.models.backbones.trunk` holds :class:`Trunk`, :class:`BackboneConfig`, the timm
builder, :mod:`~clumpdet.models.backbones.registry` the ``BACKBONES``
registry and :func:`build_trunk`, :mod:`~clumpdet.models.backbones.weights` reading and loading
weight files.
"""

from __future__ import annotations

from clumpdet.models.backbones.registry import BACKBONES, build_trunk, list_backbones
from clumpdet.models.backbones.trunk import (
    BackboneConfig,
    Trunk,
    bare_arch,
    build_timm_trunk,
)
from clumpdet.models.backbones.weights import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_trunk_weights,
    read_state_dict,
)

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneConfig",
    "Trunk",
    "bare_arch",
    "build_timm_trunk",
    "build_trunk",
    "list_backbones",
    "load_trunk_weights",
    "read_state_dict",
]
