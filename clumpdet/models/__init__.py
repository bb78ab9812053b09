"""Backbones (trunks), the Faster R-CNN detector and task heads."""

from clumpdet.models.backbones import (
    BACKBONES,
    BackboneConfig,
    Trunk,
    build_trunk,
    list_backbones,
)

__all__ = [
    "BACKBONES",
    "BackboneConfig",
    "Trunk",
    "build_trunk",
    "list_backbones",
]
