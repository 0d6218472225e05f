"""The official Lightning training checkpoint (`big-lama/models/best.ckpt`).

It is a dict whose `state_dict` holds `generator.*` beside `discriminator.*`, loss and evaluator
keys, and whose other entries pickle omegaconf / Lightning objects. We first try
`torch.load(weights_only=True)`; when the file names classes that loader refuses we read it
with `safe_unpickle`, which materialises tensors and plain data and turns every other object
into an inert placeholder. Generator keys must match the inferred network exactly.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn  # noqa: F401 - in the return annotation

from . import safe_unpickle
from .architecture import generator_from_state, infer_generator_config, preset_of
from .errors import WeightsError, one_line

GENERATOR_PREFIX = "generator."


def read_checkpoint(path: Path) -> Any:
    """Unpickle without running pickled code: weights_only, else the restricted unpickler."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # holds non-tensor objects (omegaconf, Lightning): read them as inert data below
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot read checkpoint ({one_line(exc)[:200]})") from None
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False, pickle_module=safe_unpickle)
    except Exception as exc:  # a damaged or hostile pickle can raise anything; report it as one line
        raise WeightsError(f"{path}: cannot read checkpoint ({one_line(exc)[:200]})") from None


def generator_state(checkpoint: Any, source: str) -> dict[str, torch.Tensor]:
    """The generator's tensors, `generator.` prefix removed; other networks' keys are ignored."""
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise WeightsError(f"{source}: checkpoint holds no state_dict")
    if any(str(key).startswith(GENERATOR_PREFIX) for key in state):
        state = {key[len(GENERATOR_PREFIX):]: value for key, value in state.items()
                 if str(key).startswith(GENERATOR_PREFIX)}
    elif not all(str(key).startswith("model.") for key in state):
        raise WeightsError(f"{source}: checkpoint state_dict holds no generator.* keys")
    not_tensors = [str(key) for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise WeightsError(f"{source}: generator entries that are not tensors: {not_tensors[:4]}")
    return dict(state)


def load_checkpoint_generator(path: Path) -> tuple[nn.Module, str | None]:
    """Build the generator the checkpoint describes and load its weights strictly."""
    state = generator_state(read_checkpoint(path), str(path))
    config = infer_generator_config(state, str(path))
    return generator_from_state(config, state, str(path)), preset_of(config)
