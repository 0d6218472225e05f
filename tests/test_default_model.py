"""The model that ships inside the package: it is what the card says, it inpaints, and a fresh
non-editable install (wheel, no other weights anywhere) serves it and says so."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lama_backend.client import LamaClient
from lama_backend.weights import load_model, read_metadata
from tests.helpers.server import REPO_ROOT, free_port

DEFAULT_MODEL_DIR = REPO_ROOT / "backend" / "default_model"
SHIPPED = DEFAULT_MODEL_DIR / "lama-small.safetensors"
CARD = DEFAULT_MODEL_DIR / "MODEL_CARD.md"


def smooth_scene(side: int = 128) -> np.ndarray:
    """Sky-like vertical gradient over a darker ground band: easy to continue, hard to fake."""
    y = np.linspace(0.0, 1.0, side)[:, None, None]
    sky = np.concatenate([0.35 + 0.3 * y, 0.45 + 0.3 * y, 0.7 + 0.2 * y], axis=2)
    image = np.broadcast_to(sky, (side, side, 3)).copy()
    image[int(side * 0.7):] = (0.30, 0.35, 0.20)
    return image.astype(np.float32)


def test_card_describes_the_shipped_file() -> None:
    data = SHIPPED.read_bytes()
    assert len(data) < 25 * 1024 * 1024
    card = CARD.read_text(encoding="utf-8")
    assert hashlib.sha256(data).hexdigest() in card
    metadata = read_metadata(SHIPPED)
    assert metadata["preset"] == "small"
    assert metadata["dtype"] == "float16"
    step = metadata["provenance"]["step"]
    assert re.search(rf"\b{step}\b", card), f"the card does not state the exported step {step}"
    for section in ("Training data", "Recipe", "Reproduce", "Evaluation", "Limitations"):
        assert f"## {section}" in card


def test_only_the_bundled_file_is_served_with_mirror_averaging(tmp_path: Path) -> None:
    bundled = load_model(SHIPPED, device="cpu")
    assert bundled.bundled and bundled.mirror_average == 4 and bundled.describe()["mirror_average"] == 4
    copy = tmp_path / "lama-small.safetensors"  # the same weights outside the package: any other model
    shutil.copyfile(SHIPPED, copy)
    other = load_model(copy, device="cpu")
    assert not other.bundled and other.mirror_average == 1


def test_shipped_model_continues_a_smooth_scene_far_better_than_its_untrained_network() -> None:
    model = load_model(SHIPPED, device="cpu")
    image = torch.from_numpy(smooth_scene()).permute(2, 0, 1)[None]
    mask = torch.zeros(1, 1, 128, 128)
    mask[..., 40:80, 30:100] = 1
    hole = mask.bool().expand_as(image)
    trained = (model.predict(image, mask) - image)[hole].abs().mean().item()
    torch.manual_seed(0)
    untrained_net = type(model.generator)(model.generator.config).eval()
    with torch.no_grad():
        untrained = (untrained_net(torch.cat([image * (1 - mask), mask], 1)) - image)[hole].abs().mean().item()
    # Measured: 0.024 for the shipped model, 0.13 for a freshly initialised one (seed 0).
    assert trained < 0.06 < untrained


def _fresh_install(tmp_path: Path) -> Path:
    """Build a wheel from a copy of the source tree and install it (no deps) into its own folder."""
    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis", "runs"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(wheels), str(source)], check=True, timeout=300)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                    *map(str, wheels.glob("*.whl"))], check=True, timeout=300)
    return target


def _isolated_env(tmp_path: Path, site: Path) -> dict[str, str]:
    """Only the installed wheel provides lama_backend; every weights location is empty."""
    env = dict(os.environ, PYTHONPATH=str(site), HOME=str(tmp_path / "home"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    for name in ("LAMA_WEIGHTS", "TORCH_HOME", "LAMA_TOKEN"):
        env.pop(name, None)
    return env


@pytest.mark.slow
def test_fresh_wheel_install_inpaints_and_serves_the_bundled_model(tmp_path: Path) -> None:
    site = _fresh_install(tmp_path)
    assert (site / "lama_backend" / "default_model" / SHIPPED.name).is_file()
    assert (site / "lama_backend" / "default_model" / CARD.name).is_file()
    assert (site / "lama_backend" / "default_model" / "training-data.json").is_file()
    assert (site / "lama_backend" / "default_model" / "training-data-finetune.json").is_file()
    env = _isolated_env(tmp_path, site)
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run([sys.executable, "-c", "import lama_backend; print(lama_backend.__file__)"],
                           env=env, cwd=work, capture_output=True, text=True, check=True)
    assert where.stdout.strip().startswith(str(site)), "the test must exercise the installed wheel"

    pixels = (smooth_scene() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(work / "scene.png")
    mask = np.zeros((128, 128), np.uint8)
    mask[40:80, 30:100] = 255
    Image.fromarray(mask).save(work / "mask.png")
    run = subprocess.run([sys.executable, "-m", "lama_backend.cli", "inpaint", "scene.png", "mask.png",
                          "-o", "out.png", "--device", "cpu"],
                         env=env, cwd=work, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "bundled default model" in run.stderr + run.stdout
    assert "lama-backend fetch big-lama" in run.stderr, "users must learn that better weights exist"
    result = np.asarray(Image.open(work / "out.png").convert("RGB"))
    outside = mask == 0
    assert np.array_equal(result[outside], pixels[outside])
    assert np.abs(result[~outside].astype(int) - pixels[~outside]).mean() < 0.06 * 255

    address = f"tcp://127.0.0.1:{free_port()}"
    server = subprocess.Popen([sys.executable, "-m", "lama_backend.cli", "serve", "--bind", address,
                               "--device", "cpu"], env=env, cwd=work,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = LamaClient(address, timeout=120.0)
        try:
            hello = client.hello()
        finally:
            client.close()
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=60)
    assert "bundled default model" in hello["model"]["source"]
    assert hello["model"]["bundled"] is True
    assert hello["model"]["preset"] == "small"
    assert "bundled default model" in log
