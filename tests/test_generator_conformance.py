"""The generator presets reproduce the official networks key for key and number for number."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lama_training.modules import GENERATOR_PRESETS, GeneratorConfig, make_generator


def read_reference_keys(path: Path, prefix: str) -> dict[str, tuple[str, str]]:
    """Parse a `key<TAB>shape<TAB>dtype` table; strip the checkpoint's prefix from each key."""
    rows = {}
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        assert key.startswith(prefix), key
        rows[key[len(prefix):]] = (shape, dtype)
    return rows


def describe_state(module: torch.nn.Module) -> dict[str, tuple[str, str]]:
    return {key: ("x".join(map(str, value.shape)) or "scalar", str(value.dtype).removeprefix("torch."))
            for key, value in module.state_dict().items()}


@pytest.mark.parametrize("preset, table, params", [
    ("big-lama", "big_lama_generator.tsv", 50_975_875),
    ("lama-fourier", "lama_fourier_generator.tsv", 27_048_835),
])
def test_preset_state_dict_matches_official(reference_dir: Path, preset: str, table: str, params: int) -> None:
    generator = make_generator(preset)
    expected = read_reference_keys(reference_dir / table, "generator.")
    actual = describe_state(generator)
    assert list(actual) == list(expected), "keys differ (or their order does)"
    assert actual == expected
    assert sum(p.numel() for p in generator.parameters()) == params


def test_small_generator_reproduces_official_output(reference_dir: Path) -> None:
    fixture = np.load(reference_dir / "ffc_small_fixture.npz")
    generator = make_generator(GeneratorConfig(ngf=8, n_blocks=2)).eval()
    state = {key.removeprefix("state."): torch.from_numpy(fixture[key]) for key in fixture.files
             if key.startswith("state.")}
    generator.load_state_dict(state, strict=True)
    with torch.no_grad():
        output = generator(torch.from_numpy(fixture["input"]))
    assert output.shape == fixture["output"].shape
    # The fixture was computed by the official code with the same float32 ops; only summation
    # order inside the convolution/FFT kernels may differ, hence a small absolute tolerance.
    assert float((output - torch.from_numpy(fixture["output"])).abs().max()) <= 1e-5


def test_any_width_and_depth_is_constructible() -> None:
    generator = make_generator(GeneratorConfig(ngf=4, n_blocks=1, n_downsampling=2)).eval()
    with torch.no_grad():
        output = generator(torch.rand(1, 4, 20, 28))
    assert output.shape == (1, 3, 20, 28)
    assert 0.0 <= float(output.min()) and float(output.max()) <= 1.0


def test_unknown_preset_and_fields_fail_loudly() -> None:
    with pytest.raises(ValueError, match="unknown generator preset 'huge'"):
        make_generator("huge")
    with pytest.raises(ValueError, match="unknown generator config fields"):
        GeneratorConfig.from_dict({"ngf": 8, "colour": "red"})


def test_config_round_trips_through_dict() -> None:
    config = GENERATOR_PRESETS["big-lama"].replace(ngf=16)
    assert GeneratorConfig.from_dict(config.to_dict()) == config
