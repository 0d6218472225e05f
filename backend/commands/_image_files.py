"""Reading and writing the image and mask files of `lama-backend inpaint` with Pillow.

Images come in as H x W x 3|4 arrays the engine takes (uint8, uint16 for 16-bit grey, float32
for 32-bit float grey) together with the Pillow mode to write back, so a grey 16-bit PNG
(`I;16`) stays 16-bit grey and RGBA keeps its alpha. Grey images are given to the engine as
three equal channels and written back as the rounded channel mean, which is exact wherever
nothing was painted. Pillow decodes 16-bit colour PNG and TIFF files as 8 bit, which would
silently lose precision outside the hole, so those files are read and written with OpenCV instead
(modes `RGB;16` / `RGBA;16` here).

Masks become one channel: the alpha channel when the file has one that is not fully opaque
(strokes painted on a transparent layer), otherwise the largest colour channel (white, or any
colour, on black). Non-zero is hole.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from lama_training.utils.cli import CommandError

FORMATS_BY_SUFFIX = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF",
                     ".webp": "WEBP"}
SUPPORTED_SUFFIXES = tuple(FORMATS_BY_SUFFIX)
# which stored modes each format can hold without losing precision or alpha
WRITABLE_MODES = {
    "PNG": {"RGB", "RGBA", "L", "LA", "I;16", "RGB;16", "RGBA;16"},
    "TIFF": {"RGB", "RGBA", "L", "LA", "I;16", "F", "RGB;16", "RGBA;16"},
    "JPEG": {"RGB", "L"},
    "WEBP": {"RGB", "RGBA", "L", "LA"},
}
LOSSY_FORMATS = {"JPEG"}
SIXTEEN_BIT_GREY = {"I;16", "I;16L", "I;16B", "I;16N"}
SIXTEEN_BIT_COLOUR = {"RGB;16", "RGBA;16"}


@dataclass
class LoadedImage:
    """Pixels for the engine plus what is needed to write the result back in kind."""

    pixels: np.ndarray
    mode: str
    icc_profile: bytes | None = None


def open_image(path: Path) -> Image.Image:
    """Open and decode the first frame; any failure becomes a one-line CommandError."""
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise CommandError(f"{path}: not an image Pillow can read (use PNG, JPEG, TIFF or WebP)") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CommandError(f"{path}: cannot read image ({exc})") from None
    return image


def _sixteen_bit(array: np.ndarray, path: Path) -> np.ndarray:
    if array.size and (array.min() < 0 or array.max() > 65535):
        raise CommandError(f"{path}: 32-bit integer images are not supported (values beyond 16 bit)")
    return array.astype(np.uint16)


def _grey_to_rgb(grey: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
    channels = [grey, grey, grey] + ([alpha] if alpha is not None else [])
    return np.stack(channels, axis=2)


def _stores_16_bit_colour(image: Image.Image) -> bool:
    """True for PNG/TIFF files whose colour samples have 16 bits (Pillow hands them out as 8 bit)."""
    if image.mode not in ("RGB", "RGBA"):
        return False
    if image.format == "PNG":
        return image.info.get("bitdepth", 8) == 16 or _png_bit_depth(image) == 16
    if image.format == "TIFF":
        bits = getattr(image, "tag_v2", {}).get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) == 16
    return False


def _png_bit_depth(image: Image.Image) -> int:
    """The IHDR bit depth byte of a PNG file (offset 24: 8-byte signature, length, type, w, h)."""
    try:
        with open(image.filename, "rb") as handle:  # type: ignore[attr-defined]
            header = handle.read(25)
    except (OSError, AttributeError, TypeError):
        return 8
    return header[24] if len(header) == 25 else 8


def _read_16_bit_colour(path: Path) -> np.ndarray:
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None or pixels.dtype != np.uint16 or pixels.ndim != 3 or pixels.shape[2] not in (3, 4):
        raise CommandError(f"{path}: cannot decode this 16-bit colour image")
    order = [2, 1, 0, 3][: pixels.shape[2]]  # OpenCV's BGR(A) -> RGB(A)
    return np.ascontiguousarray(pixels[..., order])


def read_image(path: Path) -> LoadedImage:
    """An RGB(A) array in uint8 / uint16 / float32 and the mode to write the result in."""
    image = open_image(path)
    icc = image.info.get("icc_profile")
    mode = image.mode
    if _stores_16_bit_colour(image):
        pixels = _read_16_bit_colour(path)
        return LoadedImage(pixels, "RGBA;16" if pixels.shape[2] == 4 else "RGB;16", icc)
    if mode in ("RGB", "RGBA"):
        return LoadedImage(np.asarray(image), mode, icc)
    if mode == "L":
        return LoadedImage(_grey_to_rgb(np.asarray(image)), "L", icc)
    if mode == "LA":
        both = np.asarray(image)
        return LoadedImage(_grey_to_rgb(both[..., 0], both[..., 1]), "LA", icc)
    if mode in SIXTEEN_BIT_GREY or mode == "I":
        return LoadedImage(_grey_to_rgb(_sixteen_bit(np.asarray(image), path)), "I;16", icc)
    if mode == "F":
        return LoadedImage(_grey_to_rgb(np.asarray(image, dtype=np.float32)), "F", icc)
    has_alpha = mode in ("PA", "La", "RGBa") or "transparency" in image.info
    target = "RGBA" if has_alpha else "RGB"
    try:
        converted = image.convert(target)
    except (ValueError, OSError) as exc:
        raise CommandError(f"{path}: cannot convert image mode {mode} to {target} ({exc})") from None
    return LoadedImage(np.asarray(converted), target, icc)


def read_mask(path: Path) -> np.ndarray:
    """One channel, H x W; non-zero is hole (see the module docstring for the channel rule)."""
    image = open_image(path)
    mode = image.mode
    if mode in SIXTEEN_BIT_GREY or mode == "I":
        return np.asarray(image) != 0
    if mode == "F":
        return np.asarray(image, dtype=np.float32)
    if mode == "1":
        return np.asarray(image.convert("L"))
    if mode == "L":
        return np.asarray(image)
    if mode in ("LA", "La"):
        both = np.asarray(image.convert("LA"))
        return both[..., 1] if (both[..., 1] < 255).any() else both[..., 0]
    try:
        rgba = np.asarray(image.convert("RGBA"))
    except (ValueError, OSError) as exc:
        raise CommandError(f"{path}: cannot read mask of mode {mode} ({exc})") from None
    if (rgba[..., 3] < 255).any():
        return rgba[..., 3]
    return rgba[..., :3].max(axis=2)


def output_format(path: Path) -> str:
    try:
        return FORMATS_BY_SUFFIX[path.suffix.lower()]
    except KeyError:
        raise CommandError(f"{path}: unsupported output type {path.suffix or '(none)'!r}; "
                           f"use one of {', '.join(SUPPORTED_SUFFIXES)}") from None


def check_writable(path: Path, mode: str) -> str:
    """The Pillow format for `path`, or a CommandError when it cannot hold `mode` losslessly."""
    fmt = output_format(path)
    if mode not in WRITABLE_MODES[fmt]:
        hint = "alpha" if mode in ("RGBA", "LA") else f"{mode} pixels"
        raise CommandError(f"{path}: {fmt} cannot store {hint} of the input; write .png or .tif instead")
    return fmt


def to_pillow(pixels: np.ndarray, mode: str) -> Image.Image:
    """Engine result (H x W x 3|4) -> a Pillow image of the input's mode."""
    if mode in ("RGB", "RGBA"):
        return Image.fromarray(np.ascontiguousarray(pixels))
    grey = pixels[..., :3].astype(np.float64).mean(axis=2)
    if mode == "F":
        return Image.fromarray(grey.astype(np.float32))
    dtype = np.uint16 if mode == "I;16" else np.uint8
    grey = np.clip(np.rint(grey), 0, np.iinfo(dtype).max).astype(dtype)
    if mode == "LA":
        return Image.fromarray(np.ascontiguousarray(np.stack([grey, pixels[..., 3]], axis=2)))
    return Image.fromarray(grey)


def _encode_16_bit_colour(path: Path, pixels: np.ndarray, fmt: str) -> bytes:
    order = [2, 1, 0, 3][: pixels.shape[2]]
    ok, encoded = cv2.imencode(".png" if fmt == "PNG" else ".tif",
                               np.ascontiguousarray(pixels[..., order].astype(np.uint16)))
    if not ok:
        raise CommandError(f"{path}: cannot encode a 16-bit colour {fmt}")
    return encoded.tobytes()


def write_image(path: Path, pixels: np.ndarray, mode: str, icc_profile: bytes | None = None) -> None:
    """Write atomically (temporary file, then rename), so a failure never leaves half a file."""
    fmt = check_writable(path, mode)
    if mode in SIXTEEN_BIT_COLOUR:
        encoded = _encode_16_bit_colour(path, pixels, fmt)
        _write_atomically(path, lambda stream: stream.write(encoded))
        return
    image = to_pillow(pixels, mode)
    options: dict[str, object] = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if fmt == "WEBP":
        options.update(lossless=True, exact=True)  # exact: keep the colour of transparent pixels
    elif fmt == "JPEG":
        options["quality"] = 95
    _write_atomically(path, lambda stream: image.save(stream, format=fmt, **options))


def _write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                write(stream)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CommandError(f"{path}: cannot write ({exc.strerror or exc})") from None
