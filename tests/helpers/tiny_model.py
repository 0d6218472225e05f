"""A real, tiny weights file so server and plugin tests can start `lama-backend serve --weights`."""
from __future__ import annotations

from pathlib import Path

import torch

from lama_backend.weights import save_weights
from lama_training.modules import GENERATOR_PRESETS, GeneratorConfig, make_generator

TINY_CONFIG: GeneratorConfig = GENERATOR_PRESETS["big-lama"].replace(ngf=8, n_blocks=1)


def make_tiny_generator(seed: int = 0, config: GeneratorConfig = TINY_CONFIG) -> torch.nn.Module:
    """A randomly initialised generator (ngf 8, 1 FFC block): milliseconds per small image."""
    torch.manual_seed(seed)
    return make_generator(config).eval()


def write_tiny_weights(path: str | Path, seed: int = 0) -> Path:
    """Write a tiny random generator in the project's safetensors format; returns the path."""
    return save_weights(make_tiny_generator(seed), TINY_CONFIG, path, preset=None,
                        provenance={"source": "tests.helpers.tiny_model", "seed": seed})
