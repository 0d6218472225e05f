"""Read a generator's configuration back from its state_dict keys and shapes.

The official checkpoints do not say which preset they are in a form we can trust (the config is
pickled omegaconf, which we never execute), so the shape of the network is read from the
weights: the FFC layer before the first residual block tells the bottleneck split, the blocks
are the `model.<i>.conv1.` prefixes, the local/global channel split of each FFC gives its
ratios. The result is validated by building that generator and comparing every key and shape.
"""
from __future__ import annotations

import re
from typing import Mapping

import torch
from torch import nn

from lama_training.deepgin.generator import DeepGINConfig, make_deepgin
from lama_training.modules import GENERATOR_PRESETS, FFCConvConfig, GeneratorConfig, make_generator

from .errors import WeightsError, one_line

_INDEX = re.compile(r"^model\.(\d+)\.")


def shape_of(state: Mapping[str, torch.Tensor], key: str) -> tuple[int, ...] | None:
    value = state.get(key)
    return tuple(value.shape) if value is not None else None


def ffc_split(state: Mapping[str, torch.Tensor], prefix: str) -> tuple[int, int, int, int, bool]:
    """(in_local, in_global, out_local, out_global, lfu) of the FFC whose keys start with `prefix`."""
    l2l = shape_of(state, f"{prefix}convl2l.weight")
    l2g = shape_of(state, f"{prefix}convl2g.weight")
    g2l = shape_of(state, f"{prefix}convg2l.weight")
    g2g_in = shape_of(state, f"{prefix}convg2g.conv1.0.weight")
    g2g_out = shape_of(state, f"{prefix}convg2g.conv2.weight")
    in_local = (l2l or l2g or (0, 0))[1]
    in_global = (g2l or g2g_in or (0, 0))[1]
    out_local = (l2l or g2l or (0,))[0]
    out_global = (l2g or g2g_out or (0,))[0]
    lfu = any(key.startswith(f"{prefix}convg2g.lfu.") for key in state)
    return in_local, in_global, out_local, out_global, lfu


def ratio(part: int, total: int) -> float:
    return part / total if total else 0.0


def conv_config(state: Mapping[str, torch.Tensor], prefix: str) -> FFCConvConfig:
    in_local, in_global, out_local, out_global, lfu = ffc_split(state, prefix)
    return FFCConvConfig(ratio(in_global, in_local + in_global), ratio(out_global, out_local + out_global), lfu)


def infer_generator_config(state: Mapping[str, torch.Tensor], source: str) -> GeneratorConfig:
    """The `GeneratorConfig` whose generator has exactly these keys (checked by the caller)."""
    indices = sorted({int(m.group(1)) for key in state if (m := _INDEX.match(key))})
    blocks = sorted({int(m.group(1)) for key in state if (m := _INDEX.match(key)) and ".conv1.ffc." in key})
    if not indices or not blocks or f"model.{indices[0]}.ffc.convl2l.weight" not in state:
        matching = matching_non_ffc_preset(state)
        if matching is not None:
            return matching
        raise WeightsError(f"{source}: not a LaMa FFC generator (no model.<i>.ffc / model.<i>.conv1 keys)")
    first, n_blocks = indices[0], len(blocks)
    n_downsampling = blocks[0] - first - 1
    if n_downsampling < 1:
        raise WeightsError(f"{source}: not a LaMa FFC generator (no downsampling layers before the blocks)")
    in_local, in_global, out_local, out_global, _ = ffc_split(state, f"model.{first}.ffc.")
    ngf = out_local + out_global
    # after the blocks: ConcatTupleLayer, n_downsampling x (ConvTranspose2d, BatchNorm2d, ReLU), pad, conv
    last = shape_of(state, f"model.{blocks[-1] + 3 * n_downsampling + 3}.weight")
    if last is None or len(last) != 4:
        raise WeightsError(f"{source}: not a LaMa FFC generator (no final convolution)")
    bottleneck = sum(ffc_split(state, f"model.{blocks[0]}.conv1.ffc.")[:2])
    defaults = GeneratorConfig()
    max_features = bottleneck if bottleneck < ngf * 2 ** n_downsampling else defaults.max_features
    downsample = (conv_config(state, f"model.{first + 1}.ffc.") if n_downsampling > 1
                  else FFCConvConfig(ratio(in_global, in_local + in_global), 0.0, False))
    return GeneratorConfig(
        input_nc=in_local + in_global, output_nc=last[0], ngf=ngf, n_downsampling=n_downsampling,
        n_blocks=n_blocks, max_features=max_features, add_out_act=defaults.add_out_act,
        init_conv=conv_config(state, f"model.{first}.ffc."), downsample_conv=downsample,
        resnet_conv=conv_config(state, f"model.{blocks[0]}.conv1.ffc."),
    )


def matching_non_ffc_preset(state: Mapping[str, torch.Tensor]) -> GeneratorConfig | None:
    """The paper's ablation generators (no FFC) are recognised by matching a preset exactly."""
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    for preset in GENERATOR_PRESETS.values():
        if preset.kind == "ffc_resnet":
            continue
        with torch.device("meta"):  # shapes only
            expected = make_generator(preset).state_dict()
        if shapes == {key: tuple(value.shape) for key, value in expected.items()}:
            return preset
    return None


def preset_of(config: GeneratorConfig) -> str | None:
    """The preset's name when the config is exactly a preset, else None (a custom size)."""
    for name, preset in GENERATOR_PRESETS.items():
        if preset == config:
            return name
    return None


def meta_generator(config: GeneratorConfig | DeepGINConfig, source: str) -> nn.Module:
    """The generator with shapes only (meta device): no memory, no random initialisation."""
    try:
        with torch.device("meta"):
            return make_deepgin(config) if isinstance(config, DeepGINConfig) else make_generator(config)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{source}: generator config is not usable ({one_line(exc)})") from None


def check_state_keys(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str) -> None:
    """Missing, extra, or wrongly shaped keys are an error that names them (the first few)."""
    missing = [key for key in expected if key not in state]
    extra = [key for key in state if key not in expected]
    wrong = [f"{key} {tuple(state[key].shape)} != {tuple(value.shape)}" for key, value in expected.items()
             if key in state and tuple(state[key].shape) != tuple(value.shape)]
    problems = []
    if missing:
        problems.append(f"missing generator keys {short_list(missing)}")
    if extra:
        problems.append(f"unexpected generator keys {short_list(extra)}")
    if wrong:
        problems.append(f"shape mismatch {short_list(wrong)}")
    if problems:
        raise WeightsError(f"{source}: " + "; ".join(problems))


def generator_from_state(config: GeneratorConfig | DeepGINConfig, state: Mapping[str, torch.Tensor], source: str) -> nn.Module:
    """Build the generator around the loaded tensors (strict keys; no throw-away random init)."""
    generator = meta_generator(config, source)
    expected = generator.state_dict()
    check_state_keys(expected, state, source)
    tensors = {key: value.to(expected[key].dtype) for key, value in state.items()}  # float16 files -> float32
    generator.load_state_dict(tensors, strict=True, assign=True)
    return generator


def short_list(items: list[str], limit: int = 4) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... ({len(items)} in all)' if len(items) > limit else ''}]"
