"""The DeepGIN run configuration: `family: deepgin` in a YAML preset selects it.

It reuses LaMa's `data` and `trainer` sections (data folders, batch size, seeds, logging and
checkpoint cadence, learning rates) and the same loader (`lama_training.trainer.config.load_config`
dispatches here on the `family` key), so presets, `--set KEY=VALUE` overrides and resume work the
same way. DeepGIN's own sections: `generator` (a `DEEPGIN_PRESETS` name or a `DeepGINConfig`),
`discriminator`, `losses` (the paper's weights and the VGG-19 file), `masks` (the AIM 2020 mask
generators) and `schedule` (L1 warm-up, Adam betas, linear learning-rate decay).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import yaml

from ..masks.config import MaskConfig
from ..trainer.config import ConfigError, DataConfig, TrainerConfig, apply_override, build_dataclass, parse_override
from .generator import DEEPGIN_PRESETS, PAD_MODULO, DeepGINConfig
from .losses import DeepGINLossWeights
from .masks import AIMMaskConfig

FAMILY = "deepgin"
# The paper's optimiser settings where they differ from LaMa's `TrainerConfig` defaults (no clipping)
TRAINER_DEFAULTS = {"lr_g": 1e-4, "lr_d": 4e-4, "grad_clip": 0.0}


@dataclass
class DeepGINDiscriminatorConfig:
    """Both spectral-normalised PatchGANs (full and half scale) share these sizes."""

    ndf: int = 64
    n_layers: int = 3
    num_scales: int = 2

    def __post_init__(self) -> None:
        if self.ndf < 1 or self.n_layers < 1 or self.num_scales < 1:
            raise ConfigError("discriminator.ndf, n_layers and num_scales must be >= 1")


@dataclass(frozen=True)
class DeepGINLossConfig(DeepGINLossWeights):
    """The paper's weights plus where the VGG-19 weights for perceptual and style losses live."""

    vgg19_weights: str = ""  # torchvision's vgg19-dcbb9e9d.pth; only read when perceptual or style > 0

    def __post_init__(self) -> None:
        negative = [f.name for f in dataclasses.fields(DeepGINLossWeights) if getattr(self, f.name) < 0]
        if negative:
            raise ConfigError(f"losses: weights must be >= 0 ({', '.join(negative)})")

    @property
    def needs_vgg(self) -> bool:
        return self.perceptual > 0 or self.style > 0


@dataclass
class DeepGINScheduleConfig:
    """Phases and learning rates over `trainer.max_steps`.

    Steps 1..warmup_steps train G with the L1 terms only (D untouched); after that the adversarial
    stage adds the hinge, perceptual, style and TV terms and trains D. Both learning rates
    (`trainer.lr_g`, `trainer.lr_d`) stay constant until `decay_start`, then fall linearly to
    zero at `trainer.max_steps` (a `decay_start` at or after `max_steps` keeps them constant).
    """

    warmup_steps: int = 10_000
    decay_start: int = 500_000
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999

    def __post_init__(self) -> None:
        if self.warmup_steps < 0 or self.decay_start < 0:
            raise ConfigError("schedule.warmup_steps and schedule.decay_start must be >= 0")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"schedule.{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass
class DeepGINTrainConfig:
    family: ClassVar[str] = FAMILY

    name: str = "deepgin"
    generator: DeepGINConfig = field(default_factory=lambda: DEEPGIN_PRESETS["deepgin"])
    discriminator: DeepGINDiscriminatorConfig = field(default_factory=DeepGINDiscriminatorConfig)
    losses: DeepGINLossConfig = field(default_factory=DeepGINLossConfig)
    masks: AIMMaskConfig = field(default_factory=AIMMaskConfig)
    schedule: DeepGINScheduleConfig = field(default_factory=DeepGINScheduleConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(**TRAINER_DEFAULTS))

    def __post_init__(self) -> None:
        if self.data.crop_size % PAD_MODULO:
            raise ConfigError(f"data.crop_size must be a multiple of {PAD_MODULO} for DeepGIN, "
                              f"got {self.data.crop_size}")
        if self.data.mask != MaskConfig():
            raise ConfigError("data.mask is LaMa's mask sampler; DeepGIN trains on the AIM 2020 masks "
                              "configured under masks.*")
        masks = self.masks
        if not 0 < masks.rect_min_fraction <= masks.rect_max_fraction <= 1:
            raise ConfigError("masks: need 0 < rect_min_fraction <= rect_max_fraction <= 1")
        if not 1 <= masks.strokes_min <= masks.strokes_max or masks.stroke_vertices_max < 1:
            raise ConfigError("masks: need 1 <= strokes_min <= strokes_max and stroke_vertices_max >= 1")
        if len(masks.stroke_width_fraction) != 2 or not 0 < masks.stroke_width_fraction[0] <= masks.stroke_width_fraction[1]:
            raise ConfigError("masks.stroke_width_fraction must be [low, high] with 0 < low <= high")
        if masks.ca_grid < 2 or not 0 <= masks.ca_fill <= 1 or masks.ca_steps < 0:
            raise ConfigError("masks: need ca_grid >= 2, 0 <= ca_fill <= 1, ca_steps >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {"family": FAMILY, **dataclasses.asdict(self)}

    def generator_preset(self) -> str | None:
        """The DeepGIN preset name when the generator is exactly one of them (export metadata)."""
        return next((name for name, config in DEEPGIN_PRESETS.items() if config == self.generator), None)


def _expand_generator(raw: dict[str, Any]) -> None:
    generator = raw.get("generator")
    if isinstance(generator, str):
        if generator not in DEEPGIN_PRESETS:
            raise ConfigError(f"generator: unknown DeepGIN preset {generator!r}; known: {', '.join(DEEPGIN_PRESETS)}")
        raw["generator"] = DEEPGIN_PRESETS[generator].to_dict()


def load_deepgin_config(raw: Mapping[str, Any], overrides: Sequence[str] = ()) -> DeepGINTrainConfig:
    """`raw` is the parsed YAML (with `family: deepgin`); overrides are `KEY=VALUE` like LaMa's."""
    raw = yaml.safe_load(yaml.safe_dump(dict(raw)))  # deep copy with plain types
    family = raw.pop("family", FAMILY)
    if family != FAMILY:
        raise ConfigError(f"family {family!r} is not {FAMILY!r}")
    _expand_generator(raw)
    trainer = raw.setdefault("trainer", {})
    if isinstance(trainer, dict):
        for key, value in TRAINER_DEFAULTS.items():
            trainer.setdefault(key, value)
    for text in overrides:
        path, value = parse_override(text)
        if path[0] == "family":
            raise ConfigError("family comes from the config file and cannot be overridden")
        apply_override(raw, path, value)
        _expand_generator(raw)  # a preset name set by an override expands before the next override
    return build_dataclass(DeepGINTrainConfig, raw)
