"""The networks: generators (FFC and the ablation variants), the discriminator, perceptual backbones."""
from . import pix2pixhd  # noqa: F401 - registers the ablation generator kinds
from .generators import (GENERATOR_PRESETS, FFCConvConfig, FFCResNetGenerator, GeneratorConfig, make_generator,
                         register_generator_kind, resolve_generator_config)

__all__ = ["GENERATOR_PRESETS", "FFCConvConfig", "FFCResNetGenerator", "GeneratorConfig", "make_generator",
           "register_generator_kind", "resolve_generator_config"]
