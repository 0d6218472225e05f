"""The project's own weights format: safetensors tensors plus JSON metadata in the header.

One file, `<name>.safetensors`. The safetensors header metadata (a str -> str map) holds:
`lama_format` (the format name, "lama-backend-weights"), `format_version`, `family` ("lama" or
"deepgin"; absent in files written before DeepGIN, which are "lama"), `preset` (the preset name or
JSON null), `generator_config` (JSON of the family's config: `GeneratorConfig.to_dict()` or
`DeepGINConfig.to_dict()`), `provenance` (JSON object: where the weights came from, free keys) and
`dtype` ("float32" or "float16"). `format_version` is the oldest reader version that can use the
file: "1" for LaMa (unchanged, so older backends still read them), "2" for DeepGIN (older
backends then ask for an update instead of misreading the config).
Keys are the generator's `state_dict()` keys without any prefix. Keeping the metadata inside the
file means a copy can never lose its config; no sidecar file is written or needed.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from lama_training.deepgin.generator import DeepGINConfig
from lama_training.modules import GeneratorConfig

from .architecture import check_state_keys, generator_from_state, meta_generator
from .errors import WeightsError, one_line

FORMAT_NAME = "lama-backend-weights"
FORMAT_VERSION = 2  # the newest version this reader understands
# model family -> (its generator config class, the format version its files are written with)
FAMILIES: dict[str, tuple[type, int]] = {"lama": (GeneratorConfig, 1), "deepgin": (DeepGINConfig, 2)}
SUPPORTED_DTYPES = {torch.float32: "float32", torch.float16: "float16"}


def family_of(config: GeneratorConfig | DeepGINConfig) -> str:
    for family, (config_class, _) in FAMILIES.items():
        if isinstance(config, config_class):
            return family
    raise WeightsError(f"no model family has a generator config of type {type(config).__name__}")


def save_weights(generator: nn.Module, config: GeneratorConfig | DeepGINConfig, path: str | Path, *,
                 preset: str | None = None,
                 provenance: Mapping[str, Any] | None = None, dtype: torch.dtype = torch.float32) -> Path:
    """Write `generator`'s weights and everything needed to rebuild it to one safetensors file.

    Floating-point tensors are stored in `dtype` (float16 halves the file; loading casts back to
    float32); integer buffers such as batch-norm counters keep their dtype.
    """
    if dtype not in SUPPORTED_DTYPES:
        raise WeightsError(f"unsupported weights dtype {dtype}: use torch.float32 or torch.float16")
    family = family_of(config)
    state = generator.state_dict()
    source = f"saving {Path(path).name}"
    check_state_keys(meta_generator(config, source).state_dict(), state, source)  # must rebuild from its config
    tensors = {}
    for key, value in state.items():
        value = value.detach().to("cpu")
        if value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.contiguous()
    metadata = {
        "lama_format": FORMAT_NAME,
        "format_version": str(FAMILIES[family][1]),
        "family": family,
        "preset": json.dumps(preset),
        "generator_config": json.dumps(config.to_dict(), sort_keys=True),
        "provenance": json.dumps(dict(provenance or {}), sort_keys=True, default=str),
        "dtype": SUPPORTED_DTYPES[dtype],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Serialised here and written by Python, not safetensors' save_file: that creates the file
    # with mode 0600, and a model other users or a package build must read needs the umask's mode.
    path.write_bytes(save(tensors, metadata=metadata))
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded header metadata: format_version, family, preset, generator_config, provenance, dtype."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({one_line(exc)})") from None
    if raw.get("lama_format") != FORMAT_NAME:
        raise WeightsError(f"{path}: safetensors file without lama-backend metadata "
                           "(export weights with lama_backend.weights.save_weights)")
    try:
        version = int(raw["format_version"])
        if version > FORMAT_VERSION:
            raise WeightsError(f"{path}: weights format version {version} is newer than this lama-backend "
                               f"understands ({FORMAT_VERSION}); update lama-backend")
        family = raw.get("family", "lama")
        if family not in FAMILIES:
            raise WeightsError(f"{path}: unknown model family {family!r} (known: {', '.join(FAMILIES)})")
        return {
            "format_version": version,
            "family": family,
            "preset": json.loads(raw.get("preset", "null")),
            "generator_config": json.loads(raw["generator_config"]),
            "provenance": json.loads(raw.get("provenance", "{}")),
            "dtype": raw.get("dtype", "float32"),
        }
    except (KeyError, ValueError) as exc:
        raise WeightsError(f"{path}: damaged lama-backend metadata ({one_line(exc)})") from None


def load_safetensors_generator(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the generator from its stored config and load the weights strictly (float32)."""
    path = Path(path)
    metadata = read_metadata(path)
    try:
        config = FAMILIES[metadata["family"]][0].from_dict(metadata["generator_config"])
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: stored generator config is not usable ({one_line(exc)})") from None
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: cannot read tensors ({one_line(exc)})") from None
    return generator_from_state(config, tensors, str(path)), metadata
