"""`lama-train export`: checkpoint -> the backend's safetensors file, config and provenance inside."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lama_training.cli import main as lama_train
from lama_training.modules import make_generator
from lama_training.modules.discriminator import make_discriminator
from lama_training.trainer.checkpoint import capture_rng_state, save_checkpoint
from lama_training.trainer.config import load_config
from lama_training.trainer.loop import Networks, checkpoint_payload


def write_checkpoint(path: Path, step: int = 7) -> torch.nn.Module:
    config = load_config("tiny")
    generator, discriminator = make_generator(config.generator), make_discriminator(config.discriminator)
    optimizers = (torch.optim.Adam(generator.parameters()), torch.optim.Adam(discriminator.parameters()))
    save_checkpoint(path, checkpoint_payload(Networks(generator, discriminator, None), optimizers, config, step, 0, step,
                                             [capture_rng_state()]))
    return generator.eval()


def test_export_writes_what_the_backend_loads(tmp_path: Path) -> None:
    from lama_backend.weights import load_model, read_metadata

    generator = write_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    out = tmp_path / "model.safetensors"
    assert lama_train(["export", str(tmp_path / "run"), str(out), "--half"]) == 0  # a run directory works too
    metadata = read_metadata(out)
    assert metadata["preset"] == "tiny" and metadata["dtype"] == "float16"
    assert metadata["provenance"]["step"] == 7 and metadata["provenance"]["tool"] == "lama-train"
    model = load_model(out, device="cpu")
    image, mask = torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 1
    with torch.no_grad():
        direct = generator(torch.cat([image * (1 - mask), mask], dim=1))
    # float16 storage rounds weights to ~3 significant digits; outputs in 0..1 stay within 1e-2
    assert float((model.predict(image, mask) - direct).abs().max()) < 1e-2


@pytest.mark.parametrize("output, message", [("model.pt", "must end in .safetensors"), (None, "checkpoint not found")])
def test_export_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], output, message) -> None:
    if output is None:
        source, target = tmp_path / "missing.pt", tmp_path / "m.safetensors"
    else:
        write_checkpoint(tmp_path / "c.pt")
        source, target = tmp_path / "c.pt", tmp_path / output
    assert lama_train(["export", str(source), str(target)]) == 2
    assert message in capsys.readouterr().err


def test_export_averages_several_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lama_backend.weights import read_metadata
    from lama_backend.weights.format import load_safetensors_generator

    torch.manual_seed(0)
    first = write_checkpoint(tmp_path / "a.pt", step=900)
    torch.manual_seed(1)
    second = write_checkpoint(tmp_path / "b.pt", step=400)
    out = tmp_path / "mean.safetensors"
    assert lama_train(["export", str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), str(out)]) == 0
    assert "mean of 2" in capsys.readouterr().out
    exported, _ = load_safetensors_generator(out)
    state_a, state_b, state = first.state_dict(), second.state_dict(), exported.state_dict()
    some = [key for key, value in state_a.items() if value.is_floating_point() and not torch.equal(value, state_b[key])]
    assert some  # the two checkpoints really differ
    for key in some:
        assert torch.allclose(state[key], (state_a[key] + state_b[key]) / 2, atol=1e-6), key
    provenance = read_metadata(out)["provenance"]
    assert provenance["averaged_checkpoints"] == [str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]
    assert provenance["averaged_steps"] == [900, 400]
    assert provenance["step"] == 900  # the latest training the average reflects, not the first file's


def test_export_refuses_to_average_different_architectures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_checkpoint(tmp_path / "tiny.pt")
    config = load_config("tiny", ["generator.ngf=24"])
    generator, discriminator = make_generator(config.generator), make_discriminator(config.discriminator)
    optimizers = (torch.optim.Adam(generator.parameters()), torch.optim.Adam(discriminator.parameters()))
    save_checkpoint(tmp_path / "wide.pt", checkpoint_payload(Networks(generator, discriminator, None), optimizers,
                                                             config, 7, 0, 7, [capture_rng_state()]))
    assert lama_train(["export", str(tmp_path / "tiny.pt"), str(tmp_path / "wide.pt"), str(tmp_path / "m.safetensors")]) == 2
    assert "different generator architecture" in capsys.readouterr().err
