"""The ablation generators (LaMa-Regular, LaMa-Dilated) and the tiny preset."""
from __future__ import annotations

import pytest
import torch

from lama_training.modules import GENERATOR_PRESETS, FFCConvConfig, GeneratorConfig, make_generator


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def test_lama_regular_has_the_official_pix2pixhd_layout() -> None:
    state = shapes(make_generator("lama-regular"))
    assert state["model.1.weight"] == (64, 4, 7, 7)
    assert state["model.10.weight"] == (512, 256, 3, 3)  # third strided conv
    for block in range(13, 22):  # 9 plain residual blocks at 512 channels
        assert state[f"model.{block}.conv_block.1.weight"] == (512, 512, 3, 3)
        assert state[f"model.{block}.conv_block.5.weight"] == (512, 512, 3, 3)
    assert state["model.22.weight"] == (512, 256, 3, 3)  # ConvTranspose2d: in x out
    assert state["model.32.weight"] == (3, 64, 7, 7)
    assert "model.22.conv_block.1.weight" not in state


def test_lama_dilated_splits_channels_over_four_dilations() -> None:
    generator = make_generator("lama-dilated")
    state = shapes(generator)
    for index in range(4):
        assert state[f"model.13.conv_block.0.convs.{index}.weight"] == (512, 128, 3, 3)
    dilations = [conv.dilation for conv in generator.model[13].conv_block[0].convs]
    assert dilations == [(1, 1), (2, 2), (4, 4), (8, 8)]
    assert "model.13.conv_block.0.convs.4.weight" not in state


@pytest.mark.parametrize("preset", ["lama-regular", "lama-dilated", "tiny"])
def test_output_matches_input_size_and_range(preset: str) -> None:
    config = GENERATOR_PRESETS[preset].replace(ngf=8) if preset != "tiny" else GENERATOR_PRESETS[preset]
    generator = make_generator(config).eval()
    with torch.no_grad():
        output = generator(torch.rand(1, 4, 64, 80))
    assert output.shape == (1, 3, 64, 80)
    assert float(output.min()) >= 0 and float(output.max()) <= 1


def test_plain_generators_reject_fourier_ratios() -> None:
    with pytest.raises(ValueError, match="no Fourier branch"):
        make_generator(GeneratorConfig(kind="pix2pixhd_global", ngf=8, n_blocks=1))
    make_generator(GeneratorConfig(kind="pix2pixhd_global", ngf=8, n_blocks=1, resnet_conv=FFCConvConfig()))


def test_config_round_trip_rebuilds_the_same_kind() -> None:
    for preset in ("lama-regular", "lama-dilated", "tiny"):
        config = GENERATOR_PRESETS[preset]
        assert GeneratorConfig.from_dict(config.to_dict()) == config
