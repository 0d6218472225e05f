"""Reading the published weight files of the evaluation networks (LPIPS, FID) by path.

Nothing is downloaded: a path that is not given means the metric is not computed; a path given
but missing, unreadable or of another layout is an error that names the file and what it should be.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..data.images import DataError


class MetricWeightsError(DataError):
    """A weights file for an evaluation metric that cannot be used; the message names the file."""


def load_state_file(path: str | Path, description: str) -> dict[str, torch.Tensor]:
    """The tensors of a `torch.save`d state dict (read with `weights_only`: no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise MetricWeightsError(f"{path}: file not found; expected {description}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file
        raise MetricWeightsError(f"{path}: not a readable PyTorch weights file ({description}): "
                                 f"{' '.join(str(exc).split())[:200]}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MetricWeightsError(f"{path}: holds no state dict of tensors; expected {description}")
    return state


def load_exact(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path,
               optional: tuple[str, ...] = (), ignored: str = "") -> None:
    """Load `state` into `module` when its keys and shapes are exactly the module's (keys ending in
    one of `optional` may be absent, e.g. BatchNorm's `num_batches_tracked`)."""
    expected = module.state_dict()
    missing = sorted(key for key in set(expected) - set(state) if not key.endswith(optional))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise MetricWeightsError(f"{path}: not the expected layout (missing {', '.join(missing[:3]) or 'nothing'}"
                                 f"; unexpected {', '.join(unexpected[:3]) or 'nothing'}"
                                 + (f"; {ignored} keys are ignored" if ignored else "") + ")")
    wrong = [f"{key} {tuple(state[key].shape)} != {tuple(value.shape)}" for key, value in expected.items()
             if key in state and tuple(state[key].shape) != tuple(value.shape)]
    if wrong:
        raise MetricWeightsError(f"{path}: wrong shapes: {'; '.join(wrong[:3])}")
    merged = dict(expected)
    merged.update({key: value.to(expected[key].dtype) for key, value in state.items()})
    module.load_state_dict(merged)
