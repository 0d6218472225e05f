"""Rebuild the trained generator from a checkpoint (the export boundary towards the backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..modules.generators import make_generator
from .checkpoint import load_checkpoint, strict_load
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
