"""A TorchScript file with big-lama.pt's signature loads as a `TorchScriptModel`."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lama_backend.models import TorchScriptModel
from lama_backend.weights import WeightsError, load_model

# Scripting the test module is the only way to build such a file; its deprecation is not ours.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


class LamaLikeScript(nn.Module):
    """Same interface as big-lama.pt: forward(image, mask), composites its prediction itself."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        predicted = torch.sigmoid(self.conv(torch.cat([image * (1 - mask), mask], dim=1)))
        return mask * predicted + (1 - mask) * image


class OneArgument(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_scripted_module_loads_and_predicts(tmp_path: Path) -> None:
    torch.manual_seed(0)
    original = LamaLikeScript().eval()
    path = tmp_path / "big-lama.pt"
    torch.jit.script(original).save(str(path))
    model = load_model(path, device="cpu")
    assert isinstance(model, TorchScriptModel)
    assert model.preset == "big-lama" and "torchscript" in model.source
    image, mask = torch.rand(1, 3, 16, 24), (torch.rand(1, 1, 16, 24) > 0.5).float()
    with torch.no_grad():
        expected = original(image, mask)
    assert torch.equal(model.predict(image, mask), expected)


def test_wrong_signature_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.jit.script(OneArgument()).save(str(path))
    with pytest.raises(WeightsError, match=r"must have forward\(image, mask\); it has forward\(x\)"):
        load_model(path, device="cpu")


def test_damaged_torchscript_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "big-lama.pt"
    torch.jit.script(LamaLikeScript()).save(str(path))
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) - 200]))
    with pytest.raises(WeightsError, match="big-lama.pt"):
        load_model(path, device="cpu")
