"""Registry of perceptual-loss backbones: name -> builder(weights_path) -> frozen feature extractor.

A backbone maps an N x 3 x H x W batch to a list of feature maps. `imagenet_input` says whether the
loss must ImageNet-normalise 0..1 images first (the ADE20k encoder) or the backbone takes 0..1
images itself (EfficientNet-Lite0). `none` means "no perceptual loss" (smoke tests, CPU runs).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .ade20k import load_ade20k_encoder


@dataclass(frozen=True)
class PerceptualBackbone:
    build: Callable[[str], nn.Module]  # weights path ("" = the backbone's own default, if it has one)
    imagenet_input: bool


def _efficientnet_lite0(weights_path: str) -> nn.Module:
    from .efficientnet_perceptual import EfficientNetLite0Features
    return EfficientNetLite0Features(weights_path or None)


_BACKBONES: dict[str, PerceptualBackbone | None] = {
    "ade20k_resnet50dilated": PerceptualBackbone(load_ade20k_encoder, imagenet_input=True),
    "efficientnet_lite0": PerceptualBackbone(_efficientnet_lite0, imagenet_input=False),
    "none": None,
}


def register_perceptual_backbone(name: str, backbone: PerceptualBackbone) -> None:
    if name in _BACKBONES and _BACKBONES[name] != backbone:
        raise ValueError(f"perceptual backbone {name!r} is already registered")
    _BACKBONES[name] = backbone


def perceptual_backbone_names() -> list[str]:
    return sorted(_BACKBONES)


def get_perceptual_backbone(name: str) -> PerceptualBackbone | None:
    """The registry entry, or None for `none`. Unknown names fail loudly."""
    try:
        return _BACKBONES[name]
    except KeyError:
        raise ValueError(f"unknown perceptual backbone {name!r}; known: {', '.join(perceptual_backbone_names())}") from None
