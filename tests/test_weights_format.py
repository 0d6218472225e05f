"""Our safetensors format round-trips the generator, its config and its provenance."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lama_backend.models import GeneratorModel
from lama_backend.weights import FORMAT_VERSION, WeightsError, load_model, read_metadata, save_weights
from lama_training.modules import GENERATOR_PRESETS, make_generator
from tests.helpers.tiny_model import TINY_CONFIG, make_tiny_generator, write_tiny_weights


def sample_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, 32, 40, generator=generator)
    mask = (torch.rand(1, 1, 32, 40, generator=generator) > 0.6).float()
    return image, mask


def test_round_trip_reproduces_the_generator(tmp_path: Path) -> None:
    original = make_tiny_generator(seed=3)
    path = save_weights(original, TINY_CONFIG, tmp_path / "tiny.safetensors", preset="tiny-test",
                        provenance={"trained_on": "nothing", "steps": 0})
    model = load_model(path, device="cpu")
    model.set_precision("fp32")  # the float32 network itself (auto is bf16 on CPUs with AMX / AVX512-BF16)
    assert isinstance(model, GeneratorModel)
    assert model.preset == "tiny-test"
    assert "safetensors" in model.source and str(path) in model.source
    image, mask = sample_inputs()
    with torch.no_grad():
        expected = original(torch.cat([image * (1 - mask), mask], dim=1))
    # float32 storage is exact: the loaded module computes identical numbers.
    with torch.no_grad():
        assert torch.equal(model.generator(torch.cat([image * (1 - mask), mask], dim=1)), expected)
    # predict() runs the fast path (batch norm folded into the convolutions), which reorders float
    # arithmetic; issue 7 bounds that difference at 1e-4.
    assert float((model.predict(image, mask) - expected).abs().max()) <= 1e-4


def test_metadata_holds_config_preset_and_provenance(tmp_path: Path) -> None:
    path = save_weights(make_tiny_generator(), TINY_CONFIG, tmp_path / "w.safetensors", preset=None,
                        provenance={"source": "unit test"})
    metadata = read_metadata(path)
    assert metadata["format_version"] == 1
    assert metadata["preset"] is None
    assert metadata["generator_config"] == TINY_CONFIG.to_dict()
    assert metadata["provenance"] == {"source": "unit test"}
    assert metadata["dtype"] == "float32"


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_saved_file_gets_the_umask_mode_so_others_and_package_builds_can_read_it(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = save_weights(make_tiny_generator(), TINY_CONFIG, tmp_path / "w.safetensors")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_float16_halves_the_file_and_loads_as_float32(tmp_path: Path) -> None:
    generator = make_tiny_generator(seed=5)
    full = save_weights(generator, TINY_CONFIG, tmp_path / "full.safetensors")
    half = save_weights(generator, TINY_CONFIG, tmp_path / "half.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    model = load_model(half, device="cpu")
    model.set_precision("fp32")  # the float32 network itself (auto is bf16 on CPUs with AMX / AVX512-BF16)
    assert isinstance(model, GeneratorModel)
    weights = dict(model.generator.state_dict())
    assert all(v.dtype != torch.float16 for v in weights.values())
    image, mask = sample_inputs()
    with torch.no_grad():
        expected = generator(torch.cat([image * (1 - mask), mask], dim=1))
    # float16 keeps ~3 decimal digits per weight; through a tiny sigmoid-headed net that stays
    # well below 1e-2 per output value.
    assert float((model.predict(image, mask) - expected).abs().max()) < 1e-2


def test_unsupported_dtype_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="unsupported weights dtype"):
        save_weights(make_tiny_generator(), TINY_CONFIG, tmp_path / "x.safetensors", dtype=torch.int8)


def test_foreign_safetensors_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError, match="without lama-backend metadata"):
        load_model(path, device="cpu")


def test_config_and_weights_that_disagree_are_refused_when_saving(tmp_path: Path) -> None:
    two_blocks = make_generator(TINY_CONFIG.replace(n_blocks=2))
    with pytest.raises(WeightsError, match=r"missing generator keys \[model\.7\.weight.*unexpected generator keys"):
        save_weights(two_blocks, TINY_CONFIG, tmp_path / "mismatch.safetensors")  # says 1 block, holds 2
    assert not (tmp_path / "mismatch.safetensors").exists()


def test_file_whose_metadata_disagrees_with_its_tensors_names_the_keys(tmp_path: Path) -> None:
    path = save_weights(make_tiny_generator(), TINY_CONFIG, tmp_path / "edited.safetensors")
    metadata = read_metadata(path)
    tensors = load_file(str(path))
    del tensors["model.5.conv2.bn_g.running_var"]
    tensors["model.5.conv2.bn_g.extra"] = torch.zeros(1)
    raw = {"lama_format": "lama-backend-weights", "format_version": "1", "preset": "null", "dtype": "float32",
           "generator_config": json.dumps(metadata["generator_config"]), "provenance": "{}"}
    save_file(tensors, str(path), metadata=raw)
    with pytest.raises(WeightsError, match=r"missing generator keys \[model\.5\.conv2\.bn_g\.running_var\]; "
                                           r"unexpected generator keys \[model\.5\.conv2\.bn_g\.extra\]"):
        load_model(path, device="cpu")


def test_newer_format_version_asks_for_an_update(tmp_path: Path) -> None:
    path = save_weights(make_tiny_generator(), TINY_CONFIG, tmp_path / "future.safetensors")
    future = FORMAT_VERSION + 1
    raw = {"lama_format": "lama-backend-weights", "format_version": str(future), "generator_config": "{}"}
    save_file(load_file(str(path)), str(path), metadata=raw)
    with pytest.raises(WeightsError, match=f"version {future} is newer .* update lama-backend"):
        load_model(path, device="cpu")


def test_helper_writes_a_loadable_tiny_model(tmp_path: Path) -> None:
    path = write_tiny_weights(tmp_path / "helper.safetensors")
    model = load_model(path, device="cpu")
    assert read_metadata(path)["generator_config"]["n_blocks"] == 1
    image, mask = sample_inputs()
    output = model.predict(image, mask)
    assert output.shape == image.shape and 0 <= float(output.min()) and float(output.max()) <= 1


def test_missing_and_unknown_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="weights file not found"):
        load_model(tmp_path / "absent.safetensors", device="cpu")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello, not weights")
    with pytest.raises(WeightsError, match="unknown weights format"):
        load_model(junk, device="cpu")


def test_big_lama_preset_is_recorded_by_name(tmp_path: Path) -> None:
    config = GENERATOR_PRESETS["big-lama"]
    metadata_only = save_weights(make_generator(config.replace(ngf=8, n_blocks=1)), config.replace(ngf=8, n_blocks=1),
                                 tmp_path / "p.safetensors", preset="big-lama")
    assert read_metadata(metadata_only)["preset"] == "big-lama"
