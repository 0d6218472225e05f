"""DeepGIN weights served by the backend: the weights format's family key, `lama-backend inpaint`
and `lama-backend serve` with a deepgin-tiny generator exported by `lama-train export`, and the
"subimage" strategy through the protocol."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from lama_backend.cli import main as lama_backend
from lama_backend.client import InpaintRequest, LamaClient
from lama_backend.client.protocol import STRATEGIES
from lama_backend.engine import InpaintEngine, InpaintOptions
from lama_backend.engine.options import STRATEGIES as ENGINE_STRATEGIES
from lama_backend.models import DeepGINModel, GeneratorModel
from lama_backend.server import EngineInpainter
from lama_backend.weights import WeightsError, load_model, read_metadata, save_weights
from lama_training.cli import main as lama_train
from lama_training.deepgin.generator import DEEPGIN_PRESETS, DeepGINConfig, make_deepgin
from tests.helpers.tiny_model import write_tiny_weights
from tests.helpers.server import free_port, make_job, running_server
from tests.test_train_smoke import write_photos


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deepgin-tiny trained one step on CPU, exported with `lama-train export`."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("deepgin")
    run = root / "run"
    assert lama_train(["train", "--config", "deepgin-tiny", "--train-dir", str(write_photos(root / "photos", 2)),
                       "--run-dir", str(run), "--set", "trainer.max_steps=1", "--set", "trainer.progress_bar=false",
                       "--set", "schedule.warmup_steps=0"]) == 0
    output = root / "deepgin.safetensors"
    assert lama_train(["export", str(run / "checkpoints" / "last.pt"), str(output)]) == 0
    return output


@pytest.fixture(scope="module")
def in_range(exported: Path) -> Path:
    """The exported generator with 0.5 added to its output bias: after one training step its
    predictions are slightly negative, so every 8-bit result would clip to 0 and two strategies
    could not be told apart; shifted, they land inside 0..1."""
    model = load_model(exported, "cpu")
    generator = model.generator
    with torch.no_grad():
        generator.refine.to_rgb.conv.bias += 0.5
    return save_weights(generator, generator.config, exported.with_name("in_range.safetensors"))


def hole_mask(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[height // 4: height // 2, width // 5: width // 2] = 255
    mask[height - 12: height - 4, width - 20: width - 6] = 255
    return mask


# --- weights format -----------------------------------------------------------------------------

def test_deepgin_weights_carry_their_family_and_load_as_a_deepgin_model(tmp_path: Path, exported: Path) -> None:
    metadata = read_metadata(exported)
    assert metadata["family"] == "deepgin" and metadata["format_version"] == 2
    assert metadata["preset"] == "deepgin-tiny"
    assert DeepGINConfig.from_dict(metadata["generator_config"]) == DEEPGIN_PRESETS["deepgin-tiny"]
    model = load_model(exported, device="cpu")
    assert isinstance(model, DeepGINModel) and model.pad_modulo == 16 and model.preset == "deepgin-tiny"
    assert model.describe()["family"] == "deepgin"

    # a generator that does not match its config is refused, as for LaMa
    small = DeepGINConfig(ngf=8, coarse_blocks=1, refine_blocks=1)
    with pytest.raises(WeightsError, match="missing generator keys|shape mismatch"):
        save_weights(make_deepgin(DEEPGIN_PRESETS["deepgin-tiny"]), small, tmp_path / "bad.safetensors")


def test_lama_files_stay_version_1_and_files_without_a_family_are_lama(tmp_path: Path) -> None:
    path = write_tiny_weights(tmp_path / "tiny.safetensors")
    metadata = read_metadata(path)
    assert (metadata["family"], metadata["format_version"]) == ("lama", 1)
    raw = {"lama_format": "lama-backend-weights", "format_version": "1", "preset": "null", "dtype": "float32",
           "generator_config": json.dumps(metadata["generator_config"]), "provenance": "{}"}  # written before DeepGIN
    old = tmp_path / "old.safetensors"
    save_file(load_file(str(path)), str(old), metadata=raw)
    assert read_metadata(old)["family"] == "lama"
    assert isinstance(load_model(old, device="cpu"), GeneratorModel)
    save_file(load_file(str(path)), str(old), metadata={**raw, "family": "pix2pix"})
    with pytest.raises(WeightsError, match="unknown model family 'pix2pix'"):
        load_model(old, device="cpu")


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_inpaints_with_deepgin_keeping_every_pixel_outside_the_hole(tmp_path: Path, exported: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 4), dtype=np.uint8)
    mask = hole_mask(70, 90)
    Image.fromarray(image).save(tmp_path / "photo.png")
    Image.fromarray(mask).save(tmp_path / "photo_mask.png")
    out = tmp_path / "out.png"
    assert lama_backend(["inpaint", str(tmp_path / "photo.png"), str(tmp_path / "photo_mask.png"), "-o", str(out),
                         "--weights", str(exported), "--device", "cpu"]) == 0
    result = np.asarray(Image.open(out))
    outside = mask == 0
    assert result.shape == image.shape
    assert np.array_equal(result[outside], image[outside])  # bit-identical, alpha included
    assert not np.array_equal(result[~outside, :3], image[~outside, :3])  # the hole was filled
    expected = InpaintEngine(load_model(exported, "cpu")).inpaint(image, mask, InpaintOptions())
    assert np.array_equal(result, expected)


# --- server -------------------------------------------------------------------------------------

def test_protocol_lists_every_engine_strategy() -> None:
    assert set(STRATEGIES) == set(ENGINE_STRATEGIES) and "subimage" in STRATEGIES


def test_server_inpaints_with_deepgin_and_a_subimage_job_round_trips(in_range: Path) -> None:
    torch.set_num_threads(1)
    model = load_model(in_range, "cpu")
    engine = InpaintEngine(model)
    with running_server(EngineInpainter(model)) as server, LamaClient(server.address, timeout=60) as client:
        hello = client.hello()
        assert hello["model"]["family"] == "deepgin"

        request, rgb, mask = make_job(np.random.default_rng(1), 72, 56, layout="RGBA")
        result = np.frombuffer(client.inpaint(request).pixels, np.uint8).reshape(56, 72, 4)
        assert np.array_equal(result[mask == 0], rgb[mask == 0])
        assert np.array_equal(result, engine.inpaint(rgb, mask, InpaintOptions()))

        # a crop wider than 256 px: the subimage strategy splits it into 2 x 2 strided sub-images
        width, height = 300, 270
        rgb = np.random.default_rng(2).integers(0, 256, (height, width, 3), dtype=np.uint8)
        mask = hole_mask(height, width)
        request = InpaintRequest(width, height, 3, "u8", "RGB", rgb.tobytes(), mask.tobytes(), strategy="subimage",
                                 margin=512)
        result = np.frombuffer(client.inpaint(request).pixels, np.uint8).reshape(height, width, 3)
        assert np.array_equal(result[mask == 0], rgb[mask == 0])
        subimage = engine.inpaint(rgb, mask, InpaintOptions(strategy="subimage", margin=512))
        assert np.array_equal(result, subimage)
        # the option reached the engine: one full-size crop gives another prediction
        assert not np.array_equal(subimage, engine.inpaint(rgb, mask, InpaintOptions(margin=512)))


def test_lama_backend_serve_names_the_deepgin_family(exported: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMA_TOKEN", raising=False)
    address = f"tcp://127.0.0.1:{free_port()}"
    seen: dict = {}

    def drive() -> None:
        client = LamaClient(address, timeout=30)
        try:
            seen["hello"] = client.hello()
            request, rgb, mask = make_job(np.random.default_rng(3), 48, 40, layout="RGB")
            pixels = np.frombuffer(client.inpaint(request).pixels, np.uint8).reshape(40, 48, 3)
            seen["outside_kept"] = np.array_equal(pixels[mask == 0], rgb[mask == 0])
            seen["status"] = lama_backend(["status", "--address", address])
        finally:
            client.shutdown()
            client.close()

    driver = threading.Thread(target=drive)
    driver.start()
    code = lama_backend(["serve", "--bind", address, "--weights", str(exported), "--device", "cpu",
                         "--log-file", str(tmp_path / "serve.log")])
    driver.join(30)
    assert code == 0 and not driver.is_alive()
    assert seen["hello"]["model"] == {"family": "deepgin", "preset": "deepgin-tiny",
                                      "source": f"{exported} (safetensors)", "precision": "fp32",
                                      "bundled": False}
    assert seen["outside_kept"] and seen["status"] == 0
    assert "model: deepgin (preset deepgin-tiny)" in capsys.readouterr().out
    assert "serving deepgin" in (tmp_path / "serve.log").read_text()
