"""DeepGIN building blocks, generator, discriminator and VGG loader."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lama_training.deepgin.blocks import NonLocalAttention, SPDResBlock
from lama_training.deepgin.discriminator import DeepGINDiscriminator
from lama_training.deepgin.generator import DEEPGIN_PRESETS, DeepGINConfig, make_deepgin
from lama_training.deepgin.vgg import FEATURE_LAYERS, VGG19Features


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("rates", [(2, 3, 4, 5), (2, 3, 4, 5, 6, 8, 10, 1)])
def test_spd_block_has_the_parameters_of_a_standard_resnet_block(rates: tuple[int, ...]) -> None:
    channels = 64
    standard = nn.Sequential(nn.Conv2d(channels, channels, 3), nn.Conv2d(channels, channels, 3))
    block = SPDResBlock(channels, rates)
    # the branches' biases are split like their weights, so even the bias count matches
    assert _count(block) == _count(standard)


def _receptive_radius(block: nn.Module, size: int = 65) -> int:
    """How far from the centre an input change reaches: the block's receptive-field radius."""
    x = torch.zeros(1, block.fusion.conv.in_channels, size, size, requires_grad=True)
    out = block(x)
    out[0, :, size // 2, size // 2].sum().backward()
    touched = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero()
    return int((touched[:, 0] - size // 2).abs().max())


def test_spd_receptive_field_grows_with_the_largest_rate() -> None:
    torch.manual_seed(0)
    small = _receptive_radius(SPDResBlock(8, (1, 2)))
    large = _receptive_radius(SPDResBlock(8, (1, 2, 5, 10)))
    assert small == 2 + 1 and large == 10 + 1  # largest dilation + the 3x3 fusion conv


def test_non_local_attention_keeps_shape_and_starts_as_identity() -> None:
    block = NonLocalAttention(16)
    x = torch.rand(2, 16, 6, 10)
    assert torch.equal(block(x), x)  # zero-initialised output projection
    nn.init.normal_(block.W.weight)
    y = block(x)
    assert y.shape == x.shape and not torch.equal(y, x)


def test_non_local_attention_mixes_distant_positions() -> None:
    torch.manual_seed(0)
    block = NonLocalAttention(4)
    nn.init.normal_(block.W.weight)
    x = torch.rand(1, 4, 8, 8, requires_grad=True)
    block(x)[0, :, 0, 0].sum().backward()
    assert float(x.grad[0, :, 7, 7].abs().sum()) > 0  # the far corner influences the near one


def test_generator_outputs_and_back_projection_shapes() -> None:
    generator = make_deepgin("deepgin-tiny")
    image, mask = torch.rand(2, 3, 64, 96), torch.zeros(2, 1, 64, 96)
    mask[:, :, 16:40, 20:60] = 1
    out = generator(image, mask)
    assert out.completed.shape == out.reconstructed.shape == out.coarse.shape == image.shape
    assert out.low_res.shape == (2, 3, 16, 24)  # I_lr at 1/4 scale
    known = mask == 0
    assert torch.equal(out.completed.expand_as(image)[known.expand_as(image)],
                       image[known.expand_as(image)])
    with pytest.raises(ValueError, match="divisible by 16"):
        generator(torch.rand(1, 3, 60, 64), torch.zeros(1, 1, 60, 64))


def test_full_preset_parameter_count_matches_the_paper() -> None:
    count = _count(make_deepgin("deepgin"))
    print(f"deepgin parameters: {count:,} (paper, SPDResBlk-MSSA-BP: 42.93M)")
    assert abs(count - 42.93e6) / 42.93e6 < 0.10


def test_config_round_trip_and_unknown_preset() -> None:
    config = DEEPGIN_PRESETS["deepgin-tiny"]
    assert DeepGINConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown DeepGIN preset"):
        make_deepgin("deepgin-huge")


def test_discriminator_two_scales_spectral_normalised() -> None:
    discriminator = DeepGINDiscriminator(ndf=8)
    logits = discriminator(torch.rand(2, 4, 64, 64), torch.rand(2, 3, 64, 64))
    assert len(logits) == 2 and logits[1].shape[-1] < logits[0].shape[-1]
    conv = discriminator.scales[0].model[0]
    for _ in range(30):  # power iteration converges while training-mode forwards run
        discriminator(torch.rand(1, 4, 32, 32), torch.rand(1, 3, 32, 32))
    with torch.no_grad():
        sigma = torch.linalg.matrix_norm(conv.weight.reshape(conv.weight.shape[0], -1), ord=2)
    # the largest singular value of the normalised weight is 1 up to the power iteration's error
    assert float(sigma) == pytest.approx(1.0, abs=0.05)


def _fake_torchvision_vgg19(path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    layout = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
    state, index, channels = {}, 0, 3
    for item in layout:
        if item == "M":
            index += 1
            continue
        state[f"features.{index}.weight"] = torch.randn(item, channels, 3, 3) * 0.01
        state[f"features.{index}.bias"] = torch.zeros(item)
        channels, index = item, index + 2
    state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, path)
    return state


def test_vgg19_loads_torchvision_file_by_path(tmp_path: Path) -> None:
    state = _fake_torchvision_vgg19(tmp_path / "vgg19.pth")
    vgg = VGG19Features(tmp_path / "vgg19.pth")
    assert torch.equal(vgg.features[28].weight, state["features.28.weight"])
    features = vgg(torch.rand(1, 3, 32, 32))
    assert [f.shape[1] for f in features] == [64, 128, 256, 512, 512]
    assert len(features) == len(FEATURE_LAYERS)


def test_vgg19_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="VGG-19 weights not found"):
        VGG19Features(tmp_path / "absent.pth")
