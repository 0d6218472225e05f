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


def write_checkpoint(path: Path) -> torch.nn.Module:
    config = load_config("tiny")
    generator, discriminator = make_generator(config.generator), make_discriminator(config.discriminator)
    optimizers = (torch.optim.Adam(generator.parameters()), torch.optim.Adam(discriminator.parameters()))
    save_checkpoint(path, checkpoint_payload(Networks(generator, discriminator, None), optimizers, config, 7, 0, 7,
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
