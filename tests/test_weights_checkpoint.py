"""Official Lightning checkpoints load safely (no pickled code runs), strictly, with the preset inferred."""
from __future__ import annotations

import builtins
import collections
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lama_backend.models import GeneratorModel
from lama_backend.weights import WeightsError, load_model
from lama_backend.weights.architecture import infer_generator_config, preset_of
from lama_backend.weights.checkpoint import read_checkpoint
from lama_backend.weights.safe_unpickle import InertObject
from lama_training.modules import GENERATOR_PRESETS, FFCConvConfig, make_generator

MARKERS: list[Path] = []


def write_marker(path: str) -> str:
    """What a hostile pickle would call; if it ever runs, the file appears and the test fails."""
    Path(path).write_text("pickled code ran")
    return "ran"


class HostileConfig:
    """Like omegaconf's DictConfig in a checkpoint: a class the loader must not execute."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return write_marker, (self.marker,)


class HostileState:
    """Pickled with a `__setstate__` that would run on load (the BUILD opcode)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict) -> None:
        write_marker(state["marker"])


class ExecViaBuiltins:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.exec, (f"open({self.marker!r}, 'w').write('exec ran')",)


def fixture_state(reference_dir: Path) -> dict[str, torch.Tensor]:
    fixture = np.load(reference_dir / "ffc_small_fixture.npz")
    return {key.removeprefix("state."): torch.from_numpy(fixture[key]) for key in fixture.files
            if key.startswith("state.")}


def lightning_checkpoint(generator_state: dict[str, torch.Tensor], **extra) -> dict:
    """The official layout: generator, discriminator and loss keys side by side."""
    state = collections.OrderedDict((f"generator.{k}", v) for k, v in generator_state.items())
    state["discriminator.model0.0.weight"] = torch.randn(64, 3, 4, 4)
    state["loss_resnet_pl.impl.conv1.weight"] = torch.randn(64, 3, 3, 3)
    state["val_evaluator.scores.ssim.x"] = torch.zeros(1)
    return {"state_dict": state, "epoch": 3, "global_step": 1200, "pytorch-lightning_version": "1.2.9", **extra}


def test_reference_checkpoint_reproduces_the_fixture_output(reference_dir: Path) -> None:
    model = load_model(reference_dir / "ffc_small_lightning.ckpt", device="cpu")
    model.set_precision("fp32")  # the float32 network itself (auto is bf16 on CPUs with AMX / AVX512-BF16)
    fixture = np.load(reference_dir / "ffc_small_fixture.npz")
    assert isinstance(model, GeneratorModel)
    assert model.preset is None  # ngf 8, 2 blocks is no named preset
    assert model.generator.config.ngf == 8 and model.generator.config.n_blocks == 2
    assert "lightning checkpoint" in model.source
    output = model.predict(torch.from_numpy(fixture["image"]), torch.from_numpy(fixture["mask"]))
    # Same float32 ops as the official code; only kernel summation order may differ.
    assert float((output - torch.from_numpy(fixture["output"])).abs().max()) <= 1e-5


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_hostile_pickled_objects_never_run(tmp_path: Path, reference_dir: Path, zip_format: bool) -> None:
    markers = [tmp_path / "reduce.txt", tmp_path / "setstate.txt", tmp_path / "exec.txt"]
    checkpoint = lightning_checkpoint(
        fixture_state(reference_dir),
        hyper_parameters=HostileConfig(markers[0]),
        callbacks={"ModelCheckpoint": HostileState(markers[1])},
        optimizer_states=[ExecViaBuiltins(markers[2])],
    )
    path = tmp_path / "best.ckpt"
    torch.save(checkpoint, path, _use_new_zipfile_serialization=zip_format)
    assert not any(marker.exists() for marker in markers)
    with pytest.raises(pickle.UnpicklingError):  # so the restricted fallback is what loads it
        torch.load(path, weights_only=True)

    loaded = read_checkpoint(path)
    model = load_model(path, device="cpu")

    assert [marker.exists() for marker in markers] == [False, False, False]
    assert isinstance(loaded["hyper_parameters"], InertObject)
    assert loaded["hyper_parameters"].pickled_global.endswith(".write_marker")
    assert isinstance(loaded["optimizer_states"][0], InertObject)
    assert loaded["optimizer_states"][0].pickled_global == "builtins.exec"
    assert loaded["epoch"] == 3 and loaded["pytorch-lightning_version"] == "1.2.9"
    reference = load_model(reference_dir / "ffc_small_lightning.ckpt", device="cpu")
    image, mask = torch.rand(1, 3, 32, 32), (torch.rand(1, 1, 32, 32) > 0.5).float()
    assert torch.equal(model.predict(image, mask), reference.predict(image, mask))


def test_extra_and_missing_generator_keys_are_named(tmp_path: Path, reference_dir: Path) -> None:
    state = fixture_state(reference_dir)
    extra = dict(state, **{"model.1.ffc.surprise": torch.zeros(1)})
    torch.save(lightning_checkpoint(extra), tmp_path / "extra.ckpt")
    with pytest.raises(WeightsError, match=r"unexpected generator keys \[model\.1\.ffc\.surprise\]"):
        load_model(tmp_path / "extra.ckpt", device="cpu")
    missing = {k: v for k, v in state.items() if k != "model.5.conv2.bn_g.running_var"}
    torch.save(lightning_checkpoint(missing), tmp_path / "missing.ckpt")
    with pytest.raises(WeightsError, match=r"missing generator keys \[model\.5\.conv2\.bn_g\.running_var\]"):
        load_model(tmp_path / "missing.ckpt", device="cpu")


def test_wrong_shapes_are_named(tmp_path: Path, reference_dir: Path) -> None:
    state = fixture_state(reference_dir)
    state["model.18.bias"] = torch.zeros(4)
    torch.save(lightning_checkpoint(state), tmp_path / "shape.ckpt")
    with pytest.raises(WeightsError, match=r"shape mismatch \[model\.18\.bias \(4,\) != \(3,\)\]"):
        load_model(tmp_path / "shape.ckpt", device="cpu")


@pytest.mark.parametrize("preset", ["big-lama", "lama-fourier", "tiny", "lama-regular", "lama-dilated"])
def test_every_preset_is_recognised_from_its_keys(preset: str) -> None:
    with torch.device("meta"):  # inference reads shapes only
        state = make_generator(preset).state_dict()
    config = infer_generator_config(state, "test")
    assert config == GENERATOR_PRESETS[preset]
    assert preset_of(config) == preset


def test_custom_ratios_and_lfu_are_inferred() -> None:
    config = GENERATOR_PRESETS["big-lama"].replace(ngf=8, n_blocks=2, n_downsampling=2,
                                                   resnet_conv=FFCConvConfig(0.5, 0.5, True))
    inferred = infer_generator_config(make_generator(config).state_dict(), "test")
    assert inferred == config
    assert preset_of(inferred) is None


def test_checkpoint_without_generator_is_a_clear_error(tmp_path: Path) -> None:
    torch.save({"state_dict": {"discriminator.w": torch.zeros(1)}}, tmp_path / "d.ckpt")
    with pytest.raises(WeightsError, match="holds no generator"):
        load_model(tmp_path / "d.ckpt", device="cpu")
    torch.save([1, 2, 3], tmp_path / "list.ckpt")
    with pytest.raises(WeightsError, match="holds no state_dict"):
        load_model(tmp_path / "list.ckpt", device="cpu")


def test_bare_generator_state_dict_loads(tmp_path: Path) -> None:
    generator = make_generator(GENERATOR_PRESETS["big-lama"].replace(ngf=8, n_blocks=1))
    torch.save(generator.state_dict(), tmp_path / "bare.pth")
    model = load_model(tmp_path / "bare.pth", device="cpu")
    assert isinstance(model, GeneratorModel) and model.generator.config.n_blocks == 1


def test_truncated_checkpoint_is_a_clear_error(tmp_path: Path, reference_dir: Path) -> None:
    data = (reference_dir / "ffc_small_lightning.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cut.ckpt"):
        load_model(tmp_path / "cut.ckpt", device="cpu")


def test_unpacked_archive_directory_loads_its_best_ckpt(tmp_path: Path, reference_dir: Path) -> None:
    models = tmp_path / "big-lama" / "models"
    models.mkdir(parents=True)
    (models / "best.ckpt").write_bytes((reference_dir / "ffc_small_lightning.ckpt").read_bytes())
    model = load_model(tmp_path / "big-lama", device="cpu")
    assert str(models / "best.ckpt") in model.source


def test_real_omegaconf_config_is_never_imported(tmp_path: Path, reference_dir: Path) -> None:
    """The official file pickles omegaconf's DictConfig: loading it must not even import omegaconf."""
    from omegaconf import OmegaConf

    config = OmegaConf.create({"generator": {"kind": "ffc_resnet", "ngf": 8, "n_blocks": 2},
                               "losses": [{"kind": "l1", "weight": 10}]})
    path = tmp_path / "best.ckpt"
    torch.save(lightning_checkpoint(fixture_state(reference_dir), hyper_parameters=config), path)
    probe = (
        "import sys\n"
        "from lama_backend.weights import load_model\n"
        "from lama_backend.weights.checkpoint import read_checkpoint\n"
        f"model = load_model({str(path)!r}, device='cpu')\n"
        f"hyper = read_checkpoint(__import__('pathlib').Path({str(path)!r}))['hyper_parameters']\n"
        "print(model.generator.config.n_blocks, hyper.pickled_global,\n"
        "      sorted(name for name in sys.modules if name.split('.')[0] in ('omegaconf', 'antlr4')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "omegaconf.dictconfig.DictConfig", "[]"]
