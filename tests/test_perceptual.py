"""The HRF perceptual backbone (ADE20k ResNet50-dilated) and the perceptual loss."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lama_training.losses import HRFPerceptualLoss, imagenet_normalize
from lama_training.losses.config import LossConfig
from lama_training.modules.ade20k import ResnetDilatedEncoder, load_ade20k_encoder
from lama_training.modules.perceptual import get_perceptual_backbone, perceptual_backbone_names
from test_generator_conformance import describe_state, read_reference_keys


def test_encoder_state_dict_and_feature_shapes_match_official(reference_dir: Path) -> None:
    encoder = ResnetDilatedEncoder().eval()
    expected = read_reference_keys(reference_dir / "ade20k_resnet50dilated_encoder.tsv", "")
    assert list(describe_state(encoder)) == list(expected)
    assert describe_state(encoder) == expected
    summary = json.loads((reference_dir / "summary.json").read_text())
    assert sum(p.numel() for p in encoder.parameters()) == summary["ade20k_resnet50dilated_encoder"][1]
    with torch.no_grad():
        shapes = [list(f.shape) for f in encoder(torch.rand(1, 3, 64, 64))]
    assert shapes == summary["ade20k_resnet50dilated_encoder_feature_shapes_for_1x3x64x64"]


def test_encoder_loads_a_state_dict_file_by_path(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = ResnetDilatedEncoder()
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "encoder_epoch_20.pth"
    torch.save(state, path)  # like files from old PyTorch: no batch-norm counters
    loaded = load_ade20k_encoder(path)
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_missing_encoder_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="encoder_epoch_20.pth"):
        load_ade20k_encoder(tmp_path / "encoder_epoch_20.pth")


def test_wrong_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 3, 3), "fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="not an ADE20k"):
        load_ade20k_encoder(path)


def test_backbone_registry() -> None:
    assert {"ade20k_resnet50dilated", "efficientnet_lite0", "none"} <= set(perceptual_backbone_names())
    assert get_perceptual_backbone("none") is None
    assert get_perceptual_backbone("ade20k_resnet50dilated").imagenet_input
    with pytest.raises(ValueError, match="unknown perceptual backbone"):
        get_perceptual_backbone("vgg19")


def test_backbone_none_with_a_perceptual_weight_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="perceptual_weight"):
        LossConfig(perceptual_backbone="none", perceptual_weight=30)
    LossConfig(perceptual_backbone="none", perceptual_weight=0)


class TwoStages(nn.Module):
    """A transparent backbone: the input and its 2x average pool."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(3)  # lets the test see whether the loss keeps the backbone in eval mode

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x, F.avg_pool2d(x, 2)]


def test_perceptual_loss_is_sum_over_layers_of_mse_of_imagenet_normalised_inputs() -> None:
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    loss = HRFPerceptualLoss(TwoStages())
    p, t = imagenet_normalize(pred), imagenet_normalize(target)
    by_hand = ((p - t) ** 2).mean() + ((F.avg_pool2d(p, 2) - F.avg_pool2d(t, 2)) ** 2).mean()
    assert torch.allclose(loss(pred, target), by_hand, rtol=1e-6)
    # ImageNet normalisation divides channel c by std_c: the red channel difference grows by 1/0.229
    red = torch.zeros(1, 3, 8, 8)
    red[:, 0] = 0.229
    assert torch.allclose(HRFPerceptualLoss(TwoStages())(red, torch.zeros(1, 3, 8, 8))[None],
                          torch.tensor([1 / 3 + 1 / 3]), rtol=1e-5)
    assert float(loss(target, target)) == 0.0


def test_perceptual_backbone_stays_frozen_in_eval_mode() -> None:
    loss = HRFPerceptualLoss(TwoStages())
    loss.train()
    assert not loss.impl.training
    assert all(not p.requires_grad for p in loss.impl.parameters())
    pred = torch.rand(1, 3, 8, 8, requires_grad=True)
    loss(pred, torch.rand(1, 3, 8, 8)).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0
