"""Finding and reading training images: recursive folder listing, robust decoding, resizing."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


class DataError(ValueError):
    """A data problem a user can fix (missing folder, no usable images); the message says which."""


class UnreadableImage(Exception):
    """One file that cannot serve as a training image (corrupt, truncated, too small)."""


def list_images(root: str | Path) -> list[Path]:
    """All .jpg/.jpeg/.png/.webp files under `root` (recursive, any letter case), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    return files


def load_rgb(path: str | Path, resize_to: int = 0, min_size: int = 1) -> np.ndarray:
    """An H x W x 3 uint8 RGB array; EXIF rotation applied; when `resize_to` > 0 the shorter side
    becomes `resize_to` (bicubic, antialiased; JPEGs decoded at a reduced scale first when that is
    still large enough). Raises `UnreadableImage` for corrupt files or a shorter side < `min_size`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if min(image.size) < min_size:
                    raise UnreadableImage(f"{path}: {image.size[0]}x{image.size[1]} is smaller than {min_size} px")
                if resize_to > 0:
                    scale = resize_to / min(image.size)
                    image.draft("RGB", (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))))
                image = ImageOps.exif_transpose(image)
                image = image.convert("RGB")
                if resize_to > 0 and min(image.size) != resize_to:
                    scale = resize_to / min(image.size)
                    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
                    image = image.resize(size, Image.Resampling.BICUBIC)
                return np.asarray(image, dtype=np.uint8).copy()
    except UnreadableImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(f"{path}: cannot read ({' '.join(str(exc).split()) or type(exc).__name__})") from None
