"""`lama-backend inpaint` end to end: real files, the real dispatcher, a tiny real weights file."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lama_backend.cli import main
from lama_backend.engine import InpaintEngine, InpaintOptions
from lama_backend.weights import load_model
from tests.helpers.tiny_model import write_tiny_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.safetensors", seed=1)


def rgba_image(height: int = 60, width: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)


def blob_mask(height: int = 60, width: int = 80) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[10:20, 10:25] = 255
    mask[40:52, 55:70] = 255
    return mask


def save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def run_cli(*args: object) -> int:
    return main(["inpaint", *map(str, args)])


def expect_error(capsys: pytest.CaptureFixture, *args: object, contains: str) -> str:
    assert run_cli(*args) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    last = err.splitlines()[-1]
    assert last.startswith("lama-backend: error: ") and contains in last, err
    return last


def engine_result(weights: Path, image: np.ndarray, mask: np.ndarray, **options: object) -> np.ndarray:
    return InpaintEngine(load_model(weights, "cpu")).inpaint(image, mask, InpaintOptions(**options))


# --- formats ------------------------------------------------------------------------------------

def test_rgba_png_keeps_every_unmasked_pixel_and_alpha(tmp_path: Path, weights: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    image, mask = rgba_image(), blob_mask()
    caplog.set_level(logging.INFO, logger="lama_backend.inpaint")
    out = tmp_path / "out.png"
    assert run_cli(save(tmp_path / "in.png", image), save(tmp_path / "mask.png", mask), "-o", out,
                   "--weights", weights, "--device", "cpu") == 0
    result = np.asarray(Image.open(out))
    assert Image.open(out).mode == "RGBA"
    hole = mask != 0
    assert np.array_equal(result[~hole], image[~hole])
    assert np.array_equal(result[..., 3], image[..., 3])
    assert np.array_equal(result, engine_result(weights, image, mask))
    assert any(f"weights: {weights} (safetensors)" in message and message.endswith(("in fp32, mirror average 1", "in bf16, mirror average 1"))
               for message in caplog.messages)  # the log names the precision and mirror averaging in use


def test_sixteen_bit_grey_png_stays_sixteen_bit(tmp_path: Path, weights: Path) -> None:
    grey = np.random.default_rng(3).integers(0, 65536, (40, 48), dtype=np.uint16)
    mask = blob_mask(40, 48)
    save(tmp_path / "in.png", grey)
    assert Image.open(tmp_path / "in.png").mode == "I;16"
    assert run_cli(tmp_path / "in.png", save(tmp_path / "m.png", mask), "-o", tmp_path / "o.png",
                   "--weights", weights) == 0
    out = Image.open(tmp_path / "o.png")
    result = np.asarray(out)
    assert out.mode == "I;16" and result.dtype == np.uint16
    assert np.array_equal(result[mask == 0], grey[mask == 0])
    rgb = engine_result(weights, np.stack([grey] * 3, axis=2), mask).astype(np.float64)
    assert np.array_equal(result, np.rint(rgb.mean(axis=2)).astype(np.uint16)), "grey = rounded channel mean"


@pytest.mark.parametrize("channels, suffix", [(3, ".png"), (4, ".png"), (3, ".tif"), (4, ".tif")])
def test_sixteen_bit_colour_keeps_all_sixteen_bits(tmp_path: Path, weights: Path, channels: int, suffix: str) -> None:
    """Pillow would decode these as 8 bit; the CLI must keep every unmasked 16-bit sample."""
    import cv2

    pixels = np.random.default_rng(4).integers(0, 65536, (40, 48, channels), dtype=np.uint16)
    mask = blob_mask(40, 48)
    order = [2, 1, 0, 3][:channels]
    cv2.imwrite(str(tmp_path / f"in{suffix}"), pixels[..., order])
    assert run_cli(tmp_path / f"in{suffix}", save(tmp_path / "m.png", mask), "-o", tmp_path / f"o{suffix}",
                   "--weights", weights) == 0
    result = cv2.imread(str(tmp_path / f"o{suffix}"), cv2.IMREAD_UNCHANGED)[..., order]
    assert result.dtype == np.uint16 and result.shape == pixels.shape
    assert np.array_equal(result[mask == 0], pixels[mask == 0])
    assert np.array_equal(result, engine_result(weights, pixels, mask))


@pytest.mark.parametrize("mode, suffix", [("L", ".png"), ("LA", ".png"), ("RGB", ".tif"), ("RGBA", ".webp"),
                                          ("F", ".tif"), ("P", ".png")])
def test_lossless_formats_keep_unmasked_pixels_and_mode(tmp_path: Path, weights: Path, mode: str, suffix: str) -> None:
    rgba = rgba_image(seed=7)
    if mode == "F":
        source = Image.fromarray(rgba[..., 0].astype(np.float32) / 255)
    elif mode == "P":
        source = Image.fromarray(rgba[..., :3]).quantize(64)
    else:
        source = Image.fromarray(rgba).convert(mode)
    source.save(tmp_path / f"in{suffix}")
    before = Image.open(tmp_path / f"in{suffix}")
    mask = blob_mask()
    assert run_cli(tmp_path / f"in{suffix}", save(tmp_path / "m.png", mask), "-o", tmp_path / f"out{suffix}",
                   "--weights", weights) == 0
    after = Image.open(tmp_path / f"out{suffix}")
    assert after.mode == ("RGB" if mode == "P" else mode)
    expected = np.asarray(before.convert("RGB") if mode == "P" else before)
    assert np.array_equal(np.asarray(after)[mask == 0], expected[mask == 0])
    assert not np.array_equal(np.asarray(after)[mask != 0], expected[mask != 0])


def test_jpeg_in_and_out_works_and_warns_that_it_is_lossy(tmp_path: Path, weights: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lama_backend.inpaint")
    Image.fromarray(rgba_image()[..., :3]).save(tmp_path / "in.jpg", quality=90)
    assert run_cli(tmp_path / "in.jpg", save(tmp_path / "m.png", blob_mask()), "-o", tmp_path / "out.jpeg",
                   "--weights", weights) == 0
    assert Image.open(tmp_path / "out.jpeg").size == (80, 60)
    assert any("JPEG is lossy" in message for message in caplog.messages)
    Image.fromarray(blob_mask()).save(tmp_path / "m.jpg")
    assert run_cli(tmp_path / "in.jpg", tmp_path / "m.jpg", "-o", tmp_path / "out2.jpg", "--weights", weights) == 0
    assert any("prefer PNG masks" in message for message in caplog.messages)


def test_the_colour_profile_is_carried_to_the_output(tmp_path: Path, weights: Path) -> None:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgba_image()).save(tmp_path / "in.png", icc_profile=profile)
    assert run_cli(tmp_path / "in.png", save(tmp_path / "m.png", blob_mask()), "-o", tmp_path / "o.png",
                   "--weights", weights) == 0
    assert Image.open(tmp_path / "o.png").info.get("icc_profile") == profile


def test_mask_rules_alpha_strokes_and_colour_strokes(tmp_path: Path, weights: Path) -> None:
    image, mask = rgba_image(), blob_mask()
    save(tmp_path / "in.png", image)
    expected = engine_result(weights, image, mask)
    # black strokes on a transparent layer: the alpha is the mask
    strokes = np.zeros((60, 80, 4), np.uint8)
    strokes[..., 3] = mask
    # red strokes on opaque black: any non-zero colour channel is hole
    red = np.zeros((60, 80, 3), np.uint8)
    red[..., 0] = mask
    for name, mask_pixels in (("alpha.png", strokes), ("red.png", red)):
        out = tmp_path / f"out-{name}"
        assert run_cli(tmp_path / "in.png", save(tmp_path / name, mask_pixels), "-o", out, "--weights", weights) == 0
        assert np.array_equal(np.asarray(Image.open(out)), expected), name


# --- options ------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, option, baseline", [
    (["--grow", "3"], {"grow": 3}, {}),
    (["--feather", "4"], {"feather": 4}, {}),
    (["--margin", "2"], {"margin": 2}, {}),
    # with the default margin of 128 the crop is this small image: compare against a tight crop
    (["--strategy", "whole", "--margin", "2"], {"strategy": "whole", "margin": 2}, {"margin": 2}),
])
def test_each_option_reaches_the_engine(tmp_path: Path, weights: Path, flags: list[str], option: dict,
                                        baseline: dict) -> None:
    image, mask = rgba_image(seed=2), blob_mask()
    out = tmp_path / "out.png"
    assert run_cli(save(tmp_path / "in.png", image), save(tmp_path / "m.png", mask), "-o", out,
                   "--weights", weights, *flags) == 0
    result = np.asarray(Image.open(out))
    assert np.array_equal(result, engine_result(weights, image, mask, **option))
    assert not np.array_equal(result, engine_result(weights, image, mask, **baseline)), f"{flags} change the result"


def test_device_cpu_and_cuda(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture) -> None:
    args = (save(tmp_path / "in.png", rgba_image()), save(tmp_path / "m.png", blob_mask()), "-o", tmp_path / "o.png",
            "--weights", weights)
    assert run_cli(*args, "--device", "cpu") == 0
    if torch.cuda.is_available():
        assert run_cli(*args, "--device", "cuda") == 0
    else:
        expect_error(capsys, *args, "--device", "cuda", contains="CUDA")
    expect_error(capsys, *args, "--device", "tpu", contains="unknown device")


# --- errors: one line, exit 2, nothing written --------------------------------------------------

def test_bad_inputs_are_one_line_errors(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture) -> None:
    image = save(tmp_path / "in.png", rgba_image())
    mask = save(tmp_path / "m.png", blob_mask())
    out = tmp_path / "out.png"
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(image.read_bytes()[:200])
    w = ("--weights", weights)
    expect_error(capsys, tmp_path / "missing.png", mask, "-o", out, *w, contains="no such file")
    expect_error(capsys, tmp_path / "text.png", mask, "-o", out, *w, contains="not an image")
    expect_error(capsys, truncated, mask, "-o", out, *w, contains="cannot read image")
    expect_error(capsys, image, save(tmp_path / "small.png", blob_mask(30, 80)), "-o", out, *w,
                 contains="mask is 80x30 but")
    expect_error(capsys, image, save(tmp_path / "empty.png", np.zeros((60, 80), np.uint8)), "-o", out, *w,
                 contains="mask is empty")
    expect_error(capsys, image, mask, "-o", out, "--weights", tmp_path / "garbage.safetensors",
                 contains="garbage.safetensors")
    expect_error(capsys, image, mask, "-o", out, "--weights", tmp_path / "nowhere.ckpt", contains="not found")
    expect_error(capsys, image, mask, "-o", tmp_path / "out.bmp", *w, contains="unsupported output type")
    expect_error(capsys, image, mask, "-o", tmp_path / "out.jpg", *w, contains="JPEG cannot store alpha")
    expect_error(capsys, image, mask, "-o", image, *w, contains="refusing to overwrite an input")
    expect_error(capsys, image, tmp_path, "-o", out, *w, contains="both be files or both be folders")
    assert not out.exists() and not (tmp_path / "out.jpg").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "no temporary files left"


def test_negative_options_are_rejected_by_the_parser(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(tmp_path / "a.png", tmp_path / "m.png", "-o", tmp_path / "o.png", "--grow", "-2")
    assert exit_info.value.code == 2 and "must be >= 0" in capsys.readouterr().err


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path: Path, weights: Path) -> None:
    image = save(tmp_path / "in.png", rgba_image())
    empty = save(tmp_path / "m.png", np.zeros((60, 80), np.uint8))
    done = subprocess.run([sys.executable, "-m", "lama_backend.cli", "inpaint", str(image), str(empty), "-o",
                           str(tmp_path / "o.png"), "--weights", str(weights)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == f"lama-backend: error: {empty}: mask is empty (no non-zero pixel), nothing to inpaint"


# --- folders ------------------------------------------------------------------------------------

def make_folders(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    images_dir, masks_dir = tmp_path / "images", tmp_path / "masks"
    images_dir.mkdir()
    masks_dir.mkdir()
    images = {"a.png": rgba_image(seed=1), "b.png": rgba_image(seed=2), "c.tif": rgba_image(seed=3)}
    for name, pixels in images.items():
        save(images_dir / name, pixels)
    save(masks_dir / "a.png", blob_mask())         # same name
    save(masks_dir / "b_mask.png", blob_mask())    # <stem>_mask
    Image.fromarray(np.stack([blob_mask()] * 3, axis=2)).save(masks_dir / "c.webp", lossless=True)  # same stem
    (masks_dir / "notes.txt").write_text("ignored")
    return images_dir, masks_dir, images


def test_folder_mode_pairs_by_name_and_shows_progress(tmp_path: Path, weights: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    images_dir, masks_dir, images = make_folders(tmp_path)
    out_dir = tmp_path / "out" / "nested"
    assert run_cli(images_dir, masks_dir, "-o", out_dir, "--weights", weights) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.png", "b.png", "c.tif"]
    hole = blob_mask() != 0
    for name, pixels in images.items():
        result = np.asarray(Image.open(out_dir / name))
        assert np.array_equal(result[~hole], pixels[~hole]) and not np.array_equal(result, pixels), name
    assert "3/3" in capsys.readouterr().err


def test_folder_mode_with_masks_beside_the_images(tmp_path: Path, weights: Path) -> None:
    folder = tmp_path / "both"
    folder.mkdir()
    save(folder / "photo.png", rgba_image())
    save(folder / "photo_mask.png", blob_mask())
    assert run_cli(folder, folder, "-o", tmp_path / "out", "--weights", weights) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["photo.png"]


def test_folder_errors_come_before_any_work(tmp_path: Path, weights: Path, capsys: pytest.CaptureFixture) -> None:
    images_dir, masks_dir, _ = make_folders(tmp_path)
    save(images_dir / "d.png", rgba_image())
    out_dir = tmp_path / "out"
    expect_error(capsys, images_dir, masks_dir, "-o", out_dir, "--weights", weights, contains="for 1 image(s): d.png")
    save(masks_dir / "d.png", blob_mask())
    save(masks_dir / "d_mask.png", blob_mask())
    expect_error(capsys, images_dir, masks_dir, "-o", out_dir, "--weights", weights, contains="several masks match")
    expect_error(capsys, images_dir, masks_dir, "-o", images_dir, "--weights", weights,
                 contains="refusing to write into an input folder")
    assert not out_dir.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error(capsys, empty, masks_dir, "-o", out_dir, "--weights", weights, contains="no images")


# --- acceptance (issue 2): random-weight big-lama on a 1024x768 RGBA PNG ------------------------

@pytest.mark.slow
def test_big_lama_on_a_1024x768_rgba_png_keeps_unmasked_pixels(tmp_path: Path) -> None:
    from lama_backend.weights import save_weights
    from lama_training.modules import GENERATOR_PRESETS, make_generator

    torch.manual_seed(0)
    weights = save_weights(make_generator("big-lama"), GENERATOR_PRESETS["big-lama"], tmp_path / "big-lama.safetensors",
                           preset="big-lama", provenance={"source": "random init for the acceptance test"})
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (768, 1024, 4), dtype=np.uint8)
    image[..., 3] = rng.integers(0, 256, (768, 1024), dtype=np.uint8)
    mask = np.zeros((768, 1024), np.uint8)
    yy, xx = np.mgrid[:768, :1024]
    mask[(yy - 200) ** 2 + (xx - 250) ** 2 < 60 ** 2] = 255   # two separate blobs
    mask[(yy - 560) ** 2 + (xx - 800) ** 2 < 80 ** 2] = 255
    out = tmp_path / "out.png"
    done = subprocess.run([sys.executable, "-m", "lama_backend.cli", "inpaint", str(save(tmp_path / "in.png", image)),
                           str(save(tmp_path / "mask.png", mask)), "-o", str(out), "--weights", str(weights),
                           "--device", "cpu"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "(preset big-lama)" in done.stderr
    result = Image.open(out)
    assert result.mode == "RGBA" and result.size == (1024, 768)
    pixels = np.asarray(result)
    hole = mask != 0
    assert np.array_equal(pixels[~hole], image[~hole]), "unmasked pixels, alpha included, equal the input's"
    assert np.array_equal(pixels[..., 3], image[..., 3])
    assert (pixels[hole][:, :3] != image[hole][:, :3]).any(), "the hole holds the model's prediction"
