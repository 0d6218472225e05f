"""Rebuild the trained generator from a checkpoint (the export boundary towards the backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..modules.generators import make_generator
from .checkpoint import CheckpointError, load_checkpoint, strict_load
from .config import TrainConfig, config_from_dict


def generator_from_checkpoint(path: str | Path) -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """(generator in eval mode with the checkpoint's weights, the run's config, {step, epoch})."""
    payload = load_checkpoint(path)
    config = config_from_dict(payload["config"])
    if config.family == "deepgin":
        from ..deepgin.generator import make_deepgin as build
    else:
        build = make_generator
    generator = build(config.generator)
    strict_load(generator, payload["generator"], "generator", str(path))
    return generator.eval(), config, {"step": payload["step"], "epoch": payload["epoch"]}


def averaged_generator(paths: Sequence[str | Path]) -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """The generator whose weights (and batch-norm statistics) are the mean of several checkpoints'.

    Checkpoint averaging: GAN training leaves each checkpoint's colours and textures a little off
    in its own direction (the bundled model's hole PSNR scattered by about 1 dB between checkpoints
    100 steps apart); the mean of checkpoints of one run, or of fine-tunes from one parent, cancels
    much of that. The first checkpoint's config is used; the others must have the same architecture.
    The info's step is the latest of the averaged ones; `averaged_steps` lists them all."""
    if not paths:
        raise CheckpointError("no checkpoint to average")
    generator, config, info = generator_from_checkpoint(paths[0])
    if len(paths) == 1:
        return generator, config, {**info, "averaged": [str(paths[0])]}
    others = [generator_from_checkpoint(path) for path in paths[1:]]
    states = [generator.state_dict()] + [other[0].state_dict() for other in others]
    steps = [info["step"]] + [other[2]["step"] for other in others]
    for path, state in zip(paths[1:], states[1:]):
        if {k: v.shape for k, v in state.items()} != {k: v.shape for k, v in states[0].items()}:
            raise CheckpointError(f"{path}: a different generator architecture than {paths[0]}; cannot average")
    mean = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            mean[key] = torch.stack([state[key].double() for state in states]).mean(0).to(value.dtype)
        else:  # batch-norm step counters
            mean[key] = max(state[key] for state in states)
    generator.load_state_dict(mean)
    # the latest step is the one the result reflects training up to; every step is kept beside it
    return generator.eval(), config, {**info, "step": max(steps), "averaged": [str(path) for path in paths],
                                      "averaged_steps": steps}
