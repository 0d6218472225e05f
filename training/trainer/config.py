"""The run configuration: plain dataclasses, filled from a YAML preset plus dotted overrides.

A preset file (`lama_training/configs/<name>.yaml`, or any YAML path) states only what differs
from the defaults, which are big-lama's recipe. `generator` may name a generator preset
(`generator: lama-fourier`) or spell out a `GeneratorConfig`. Any field can be overridden from
the command line: `--set trainer.lr_g=1e-4 --set data.batch_size=8 --set generator.n_blocks=4`.
Values are converted to the field's type (so `1e-4` is a float, never a string); unknown keys
are an error that names the key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import yaml

from ..data.config import AugmentConfig
from ..losses.config import LossConfig
from ..masks.config import MaskConfig
from ..masks.policies import parse_mask_mixture
from ..modules.discriminator import DiscriminatorConfig
from ..modules.generators import GENERATOR_PRESETS, GeneratorConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message names the key."""


@dataclass
class DataConfig:
    """Where images come from and how batches are cut; `batch_size` is per process."""

    train_dir: str = ""
    eval_dir: str = ""          # a fixed evaluation set written by `lama-train make-eval-set`
    crop_size: int = 256
    batch_size: int = 10
    num_workers: int = 4
    repeat: int = 1             # each epoch visits every training image this many times
    eval_batch_size: int = 8
    eval_max_images: int = 0    # > 0: only the first N images of each mask policy
    # LPIPS and FID on the evaluation set, from weights given by path (empty: the metric is not computed)
    eval_lpips_alexnet: str = ""    # torchvision's alexnet-owt-7be5be79.pth
    eval_lpips_linear: str = ""     # the lpips package's weights/v0.1/alex.pth
    eval_fid_inception: str = ""    # pytorch-fid's pt_inception-2015-12-05-6726825d.pth
    mask: MaskConfig = field(default_factory=MaskConfig)
    # other named policies mixed in, "thin-256:0.3,medium-256:0.2": each replaces `mask` with its
    # probability, scaled to crop_size (thin strokes such as wires are rare in big-lama's policy)
    mask_mixture: str = ""
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.crop_size < 64 or self.crop_size % 8:
            raise ConfigError(f"data.crop_size must be a multiple of 8 and >= 64, got {self.crop_size}")
        for name in ("batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.repeat < 1:
            raise ConfigError(f"data.repeat must be >= 1, got {self.repeat}")
        try:
            parse_mask_mixture(self.mask_mixture, self.crop_size)
        except ValueError as exc:
            raise ConfigError(f"data.mask_mixture: {exc}") from None
        if self.num_workers < 0 or self.eval_max_images < 0:
            raise ConfigError("data.num_workers and data.eval_max_images must be >= 0")
        if bool(self.eval_lpips_alexnet) != bool(self.eval_lpips_linear):
            raise ConfigError("data.eval_lpips_alexnet and data.eval_lpips_linear are given together (LPIPS needs both)")
        if (self.eval_lpips_alexnet or self.eval_fid_inception) and not self.eval_dir:
            raise ConfigError("data.eval_lpips_* and data.eval_fid_inception score the evaluation set: "
                              "give data.eval_dir too")


@dataclass
class TrainerConfig:
    """Optimisation and bookkeeping. Adam with big-lama's learning rates and gradient clipping."""

    max_steps: int = 1_000_000
    max_minutes: float = 0.0     # > 0: also stop (with a final checkpoint) after this much wall time
    lr_g: float = 1e-3
    lr_d: float = 1e-4
    grad_clip: float = 1.0       # max global grad norm per network; 0 disables clipping
    seed: int = 0
    device: str = "auto"         # auto | cpu | cuda (each DDP process takes cuda:LOCAL_RANK)
    sync_batchnorm: bool = False  # convert batch norms to SyncBatchNorm under DDP (GPU only)
    log_every: int = 50
    eval_every: int = 5000
    sample_every: int = 1000
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3    # older step checkpoints are deleted; `last.pt` is always kept
    tensorboard: bool = True     # also log to TensorBoard when the package is installed
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ConfigError(f"trainer.max_steps must be >= 1, got {self.max_steps}")
        if self.max_minutes < 0:
            raise ConfigError(f"trainer.max_minutes must be >= 0, got {self.max_minutes}")
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise ConfigError("trainer.lr_g and trainer.lr_d must be > 0")
        if self.grad_clip < 0:
            raise ConfigError(f"trainer.grad_clip must be >= 0, got {self.grad_clip}")
        if self.device not in DEVICES:
            raise ConfigError(f"trainer.device must be one of {DEVICES}, got {self.device!r}")
        for name in ("log_every", "eval_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"trainer.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class TrainConfig:
    family: ClassVar[str] = "lama"  # the model family (a DeepGIN run has a DeepGINTrainConfig)

    name: str = "big-lama"
    generator: GeneratorConfig = field(default_factory=lambda: GENERATOR_PRESETS["big-lama"])
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    losses: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def generator_preset(self) -> str | None:
        """The generator preset name when the generator is exactly one of them (export metadata)."""
        return next((name for name, config in GENERATOR_PRESETS.items() if config == self.generator), None)


def _convert(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML/CLI value to `annotation` (int, float, bool, str or a dataclass)."""
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return build_dataclass(annotation, value, key)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return value
    try:
        if annotation is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return lowered in ("true", "1", "yes")
            if not isinstance(value, (bool, int)):
                raise ValueError(value)
            return bool(value)
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            if isinstance(value, bool):
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and any(c in value for c in ".eE") else int(value)
        if annotation is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if annotation is str:
            if value is None:
                return ""
            if not isinstance(value, (str, int, float)):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}: cannot use {value!r} as {getattr(annotation, '__name__', annotation)}") from None
    return value


def build_dataclass(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Nested dataclass from a mapping, converting leaves to the declared types; unknown keys fail."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f" in {prefix}" if prefix else ""
        raise ConfigError(f"unknown config key{'s' if len(unknown) > 1 else ''}{where}: "
                          f"{', '.join(unknown)} (known: {', '.join(sorted(names))})")
    values = {name: _convert(value, hints[name], f"{prefix}.{name}" if prefix else name) for name, value in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or 'config'}: {exc}") from None


def _expand_generator(raw: dict[str, Any]) -> None:
    generator = raw.get("generator")
    if isinstance(generator, str):
        if generator not in GENERATOR_PRESETS:
            raise ConfigError(f"generator: unknown preset {generator!r}; known: {', '.join(sorted(GENERATOR_PRESETS))}")
        raw["generator"] = GENERATOR_PRESETS[generator].to_dict()


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a", "b", "c"], value parsed as YAML, e.g. true, 3, [1, 2], or a string)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not KEY=VALUE (for example trainer.lr_g=1e-4)")
    key, value = text.split("=", 1)
    path = [part for part in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"override {text!r}: empty key part")
    return path, yaml.safe_load(value) if value.strip() else ""


def apply_override(raw: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if isinstance(child, str) and part == "generator" and node is raw:
            _expand_generator(raw)
            child = raw["generator"]
        if not isinstance(child, dict):
            raise ConfigError(f"override {'.'.join(path)}: {part} is not a section")
        node = child
    node[path[-1]] = value


def preset_names() -> list[str]:
    return sorted(path.stem for path in CONFIG_DIR.glob("*.yaml"))


def read_config_file(name_or_path: str) -> dict[str, Any]:
    """A packaged preset by name (`tiny`) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown config preset {name_or_path!r}; known: {', '.join(preset_names())} "
                              "(or give a YAML file path)")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return raw


def load_config(name_or_path: str | Mapping[str, Any], overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a preset or file, apply `KEY=VALUE` overrides, validate into a `TrainConfig`.

    A file with `family: deepgin` gives a `lama_training.deepgin.config.DeepGINTrainConfig` instead
    (same sections `data` and `trainer`, same overrides); `family: lama` or none is LaMa."""
    raw = dict(read_config_file(name_or_path)) if isinstance(name_or_path, str) else dict(name_or_path)
    family = raw.pop("family", "lama")
    if family == "deepgin":
        from ..deepgin.config import load_deepgin_config
        return load_deepgin_config(raw, overrides)
    if family != "lama":
        raise ConfigError(f"family: unknown model family {family!r}; known: lama, deepgin")
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy with plain types
    _expand_generator(raw)
    for text in overrides:
        path, value = parse_override(text)
        apply_override(raw, path, value)
    _expand_generator(raw)
    return build_dataclass(TrainConfig, raw)


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Rebuild a `TrainConfig` saved with `to_dict()` (checkpoints, run directories)."""
    return load_config(data)
