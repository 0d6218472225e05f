"""`load_model`'s device argument: unknown or absent devices are one-line `WeightsError`s."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lama_backend.weights import WeightsError, load_model
from tests.helpers.tiny_model import write_tiny_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("device") / "tiny.safetensors")


def test_cpu_and_auto(weights: Path) -> None:
    assert load_model(weights, device="cpu").device == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert load_model(weights).device.type == expected


def test_unknown_device_is_refused(weights: Path) -> None:
    with pytest.raises(WeightsError, match="unknown device 'tpu': use auto, cpu, cuda"):
        load_model(weights, device="tpu")


def test_absent_accelerators_are_refused_clearly(weights: Path) -> None:
    # Each branch asserts what this machine has: the error where the device is absent, a model where present.
    if torch.cuda.is_available():
        assert load_model(weights, device="cuda").device.type == "cuda"
    else:
        with pytest.raises(WeightsError, match="PyTorch sees no CUDA GPU"):
            load_model(weights, device="cuda")
    if torch.backends.mps.is_available():
        assert load_model(weights, device="mps").device.type == "mps"
    else:
        with pytest.raises(WeightsError, match="PyTorch sees no Apple GPU"):
            load_model(weights, device="mps")
