"""Generator configs, named presets and the one factory that builds generators.

`FFCResNetGenerator` reproduces the official `ffc_resnet` generator module for module, so that
`state_dict()` keys equal those of the official checkpoints (`model.<index>....`). Configuration
is a plain frozen dataclass; presets are named instances of it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from torch import nn

from .ffc import FFC_BN_ACT, ConcatTupleLayer, FFCResnetBlock

OUTPUT_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


@dataclass(frozen=True)
class FFCConvConfig:
    """How one group of FFC layers splits its channels into local and global parts."""

    ratio_gin: float = 0.0
    ratio_gout: float = 0.0
    enable_lfu: bool = False


@dataclass(frozen=True)
class GeneratorConfig:
    """Everything needed to rebuild a generator; stored beside exported weights."""

    kind: str = "ffc_resnet"
    input_nc: int = 4
    output_nc: int = 3
    ngf: int = 64
    n_downsampling: int = 3
    n_blocks: int = 18
    max_features: int = 1024
    add_out_act: str = "sigmoid"
    init_conv: FFCConvConfig = field(default_factory=FFCConvConfig)
    downsample_conv: FFCConvConfig = field(default_factory=FFCConvConfig)
    resnet_conv: FFCConvConfig = field(default_factory=lambda: FFCConvConfig(0.75, 0.75, False))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "GeneratorConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown generator config fields: {sorted(unknown)}")
        values = dict(data)
        for name in ("init_conv", "downsample_conv", "resnet_conv"):
            if name in values and isinstance(values[name], Mapping):
                values[name] = FFCConvConfig(**values[name])
        return cls(**values)

    def replace(self, **changes: Any) -> "GeneratorConfig":
        return dataclasses.replace(self, **changes)


GENERATOR_PRESETS: dict[str, GeneratorConfig] = {
    "big-lama": GeneratorConfig(n_blocks=18),
    "lama-fourier": GeneratorConfig(n_blocks=9),
    # The paper's ablations (kinds registered by `pix2pixhd.py`): the same ResNet shape without FFC.
    "lama-regular": GeneratorConfig(kind="pix2pixhd_global", n_blocks=9, resnet_conv=FFCConvConfig()),
    "lama-dilated": GeneratorConfig(kind="pix2pixhd_multidilated", n_blocks=9, resnet_conv=FFCConvConfig()),
    # Smoke tests and CPU experiments: big-lama's layout at a quarter of the width, 3 FFC blocks.
    "tiny": GeneratorConfig(ngf=16, n_blocks=3),
    # The default model shipped with the backend, trained on a shared 2-core CPU in about two hours
    # (`training/configs/small.yaml`): tiny's width with 6 FFC blocks (~1.2M parameters).
    "small": GeneratorConfig(ngf=16, n_blocks=6),
}


class FFCResNetGenerator(nn.Module):
    """Encoder (3 strided FFC layers) -> FFC ResNet blocks -> transposed-conv decoder -> sigmoid.

    Input: `cat([image * (1 - mask), mask])`, N x 4 x H x W with H, W multiples of
    2**n_downsampling. Output: N x output_nc x H x W in 0..1 for the sigmoid head.
    """

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        if config.add_out_act not in OUTPUT_ACTIVATIONS and config.add_out_act != "none":
            raise ValueError(f"add_out_act must be one of {sorted(OUTPUT_ACTIVATIONS)} or 'none'")
        self.config = config
        ngf, max_features = config.ngf, config.max_features

        def conv_kwargs(conv: FFCConvConfig) -> dict[str, Any]:
            return dict(ratio_gin=conv.ratio_gin, ratio_gout=conv.ratio_gout, enable_lfu=conv.enable_lfu)

        model: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            FFC_BN_ACT(config.input_nc, ngf, kernel_size=7, padding=0, activation_layer=nn.ReLU,
                       **conv_kwargs(config.init_conv)),
        ]
        for i in range(config.n_downsampling):
            mult = 2 ** i
            kwargs = conv_kwargs(config.downsample_conv)
            if i == config.n_downsampling - 1:
                kwargs["ratio_gout"] = config.resnet_conv.ratio_gin  # hand over to the global blocks
            model.append(FFC_BN_ACT(min(max_features, ngf * mult), min(max_features, ngf * mult * 2),
                                    kernel_size=3, stride=2, padding=1, activation_layer=nn.ReLU, **kwargs))
        bottleneck = min(max_features, ngf * 2 ** config.n_downsampling)
        for _ in range(config.n_blocks):
            model.append(FFCResnetBlock(bottleneck, padding_type="reflect", norm_layer=nn.BatchNorm2d,
                                        activation_layer=nn.ReLU, **conv_kwargs(config.resnet_conv)))
        model.append(ConcatTupleLayer())
        for i in range(config.n_downsampling):
            mult = 2 ** (config.n_downsampling - i)
            cin, cout = min(max_features, ngf * mult), min(max_features, ngf * mult // 2)
            model += [nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=2, padding=1, output_padding=1),
                      nn.BatchNorm2d(cout), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, config.output_nc, kernel_size=7, padding=0)]
        if config.add_out_act != "none":
            model.append(OUTPUT_ACTIVATIONS[config.add_out_act]())
        self.model = nn.Sequential(*model)

    def forward(self, x):  # type: ignore[override]
        return self.model(x)


_GENERATOR_KINDS = {"ffc_resnet": FFCResNetGenerator}


def register_generator_kind(kind: str, cls: type[nn.Module]) -> None:
    """Let other modules (ablation variants, other families) add a generator kind."""
    if kind in _GENERATOR_KINDS and _GENERATOR_KINDS[kind] is not cls:
        raise ValueError(f"generator kind {kind!r} is already registered")
    _GENERATOR_KINDS[kind] = cls


def resolve_generator_config(preset_or_config: str | GeneratorConfig | Mapping[str, Any]) -> GeneratorConfig:
    if isinstance(preset_or_config, GeneratorConfig):
        return preset_or_config
    if isinstance(preset_or_config, str):
        try:
            return GENERATOR_PRESETS[preset_or_config]
        except KeyError:
            raise ValueError(f"unknown generator preset {preset_or_config!r}; "
                             f"known: {', '.join(sorted(GENERATOR_PRESETS))}") from None
    return GeneratorConfig.from_dict(preset_or_config)


def make_generator(preset_or_config: str | GeneratorConfig | Mapping[str, Any]) -> nn.Module:
    """Build a generator from a preset name, a config, or a config dict; unknown kinds fail loudly."""
    config = resolve_generator_config(preset_or_config)
    try:
        cls = _GENERATOR_KINDS[config.kind]
    except KeyError:
        raise ValueError(f"unknown generator kind {config.kind!r}; known: {', '.join(sorted(_GENERATOR_KINDS))}") from None
    return cls(config)
