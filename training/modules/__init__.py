"""The networks: FFC generator (and later the discriminator and perceptual backbones)."""
from .generators import (GENERATOR_PRESETS, FFCConvConfig, FFCResNetGenerator, GeneratorConfig, make_generator,
                         register_generator_kind, resolve_generator_config)

__all__ = ["GENERATOR_PRESETS", "FFCConvConfig", "FFCResNetGenerator", "GeneratorConfig", "make_generator",
           "register_generator_kind", "resolve_generator_config"]
