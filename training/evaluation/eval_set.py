"""A fixed evaluation set: square image crops with one mask each, per mask policy, as PNG files
with a JSON index, written once (`lama-train make-eval-set`) and read by `EvalSet`.

Recipe (after the official `gen_mask_dataset.py`): each image's shorter side is resized to `size`
(bicubic), a random `size` x `size` square is cropped, and a mask is drawn from the policy at that
size; masks covering more than `max_coverage` (or nothing) are redrawn. Item i of every policy
uses the same source image (a seeded shuffle of the folder, cycled when `count` exceeds it), so
the policies are compared on the same content.

Layout: `OUT/index.json`, `OUT/<policy>/<i:05d>.png` (RGB crop), `OUT/<policy>/<i:05d>_mask.png`
(8-bit, 255 = hole).
"""
from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..data.images import DataError, UnreadableImage, list_images, load_rgb
from ..masks import MASK_POLICIES, MaskGenerator, eval_policy_name, get_mask_policy, mask_coverage, mask_width

LOG = logging.getLogger(__name__)

INDEX_NAME = "index.json"
INDEX_FORMAT = "lama-eval-set"
INDEX_VERSION = 1
MAX_MASK_DRAWS = 1000


class EvalSetError(DataError):
    """An evaluation set that cannot be written or read; the message names the file or option."""


@dataclass
class EvalItem:
    policy: str
    image: str          # path relative to the set's folder
    mask: str
    source: str         # source image, relative to the images folder
    coverage: float
    width: float


def resolve_policies(names: Sequence[str], size: int) -> list[str]:
    """`thin`/`medium`/`thick` -> the evaluation policy for `size`; full policy names pass through."""
    resolved = []
    for name in names:
        name = name.strip()
        if name in MASK_POLICIES:
            resolved.append(name)
        else:
            try:
                resolved.append(eval_policy_name(name, size))
            except ValueError:
                raise EvalSetError(f"unknown mask policy {name!r}; use thin, medium, thick or one of "
                                   f"{', '.join(MASK_POLICIES)}") from None
    if not resolved or len(set(resolved)) != len(resolved):
        raise EvalSetError(f"mask policies must be given once each, got {', '.join(names) or 'none'}")
    return resolved


def _square_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    top = int(rng.integers(image.shape[0] - size + 1))
    left = int(rng.integers(image.shape[1] - size + 1))
    return image[top:top + size, left:left + size]


def _draw_mask(generator: MaskGenerator, size: int, max_coverage: float, rng: np.random.Generator) -> np.ndarray:
    for _ in range(MAX_MASK_DRAWS):
        mask = generator.sample(size, size, rng)
        if 0 < mask_coverage(mask) <= max_coverage:
            return mask
    raise EvalSetError(f"no mask with coverage in (0, {max_coverage}] in {MAX_MASK_DRAWS} draws; "
                       "raise --max-coverage or choose another policy")


def make_eval_set(images: str | Path, out: str | Path, size: int = 256, policies: Sequence[str] = ("thin", "medium", "thick"),
                  count: int = 100, seed: int = 0, max_coverage: float = 0.5,
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """Write `count` items per policy into the new or empty folder `out`; returns the index path.
    Unreadable or too small images (shorter side < size / 2) are skipped with a warning."""
    images, out = Path(images), Path(out)
    if size < 16 or size % 8:
        raise EvalSetError(f"size must be a multiple of 8 and >= 16, got {size}")
    if count < 1:
        raise EvalSetError(f"count must be >= 1, got {count}")
    if not 0 < max_coverage <= 1:
        raise EvalSetError(f"max coverage must be in (0, 1], got {max_coverage}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvalSetError(f"{out} exists and is not an empty folder; choose a new output folder")
    policy_names = resolve_policies(policies, size)
    files = list_images(images)
    rng = np.random.default_rng(np.random.SeedSequence([seed, size]))
    order = rng.permutation(len(files))

    crops: list[tuple[np.ndarray, str]] = []  # one usable crop per item index, shared by the policies
    position = 0
    while len(crops) < count:
        if position >= len(order) and not crops:
            raise EvalSetError(f"no usable image under {images} (all unreadable or smaller than {size // 2} px)")
        path = files[order[position % len(order)]]
        position += 1
        try:
            picture = load_rgb(path, resize_to=size, min_size=max(size // 2, 1))
        except UnreadableImage as exc:
            if position <= len(order):
                LOG.warning("skipping %s", exc)
            continue
        crops.append((_square_crop(picture, size, rng), path.relative_to(images).as_posix()))

    out.mkdir(parents=True, exist_ok=True)
    items: list[EvalItem] = []
    done, total = 0, count * len(policy_names)
    for policy in policy_names:
        generator = MaskGenerator(get_mask_policy(policy))
        # keyed by the policy's name: its masks do not depend on which other policies are asked for
        mask_rng = np.random.default_rng(np.random.SeedSequence([seed, size, zlib.crc32(policy.encode())]))
        (out / policy).mkdir()
        for i, (crop, source) in enumerate(crops):
            mask = _draw_mask(generator, size, max_coverage, mask_rng)
            image_name, mask_name = f"{policy}/{i:05d}.png", f"{policy}/{i:05d}_mask.png"
            Image.fromarray(crop).save(out / image_name)
            Image.fromarray((mask > 0).astype(np.uint8) * 255).save(out / mask_name)
            items.append(EvalItem(policy, image_name, mask_name, source, round(mask_coverage(mask), 6),
                                  round(mask_width(mask), 4)))
            done += 1
            if progress is not None:
                progress(done, total)
    index = {
        "format": INDEX_FORMAT, "version": INDEX_VERSION, "size": size, "seed": seed, "max_coverage": max_coverage,
        "count_per_policy": count, "policies": policy_names, "images": str(images),
        "items": [item.__dict__ for item in items],
    }
    index_path = out / INDEX_NAME
    index_path.write_text(json.dumps(index, indent=1) + "\n")
    return index_path


class EvalSet(Dataset):
    """A written evaluation set: `set[i]` -> {"image": 3 x S x S float in 0..1, "mask": 1 x S x S
    float {0, 1}, "policy": str}. `policies` keeps only those; `max_images` > 0 keeps the first
    that many items of each policy."""

    def __init__(self, root: str | Path, policies: Sequence[str] | None = None, max_images: int = 0) -> None:
        self.root = Path(root)
        index_path = self.root / INDEX_NAME
        if not index_path.is_file():
            raise EvalSetError(f"{self.root} is not an evaluation set (no {INDEX_NAME}; "
                               "write one with `lama-train make-eval-set`)")
        try:
            index = json.loads(index_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EvalSetError(f"{index_path}: not readable JSON ({exc})") from None
        if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
            raise EvalSetError(f"{index_path}: not a {INDEX_FORMAT} index")
        if index.get("version") != INDEX_VERSION:
            raise EvalSetError(f"{index_path}: version {index.get('version')} is not supported (expected {INDEX_VERSION})")
        self.size = int(index["size"])
        try:
            items = [EvalItem(**item) for item in index["items"]]
        except (KeyError, TypeError) as exc:
            raise EvalSetError(f"{index_path}: malformed items ({exc})") from None
        if policies is not None:
            unknown = sorted(set(policies) - set(index["policies"]))
            if unknown:
                raise EvalSetError(f"{self.root} has no policy {', '.join(unknown)} (it has {', '.join(index['policies'])})")
            items = [item for item in items if item.policy in policies]
        if max_images > 0:
            seen: dict[str, int] = {}
            kept = []
            for item in items:
                seen[item.policy] = seen.get(item.policy, 0) + 1
                if seen[item.policy] <= max_images:
                    kept.append(item)
            items = kept
        missing = [item.image for item in items if not (self.root / item.image).is_file()] + \
                  [item.mask for item in items if not (self.root / item.mask).is_file()]
        if missing:
            raise EvalSetError(f"{self.root}: {len(missing)} file(s) of the index are missing, e.g. {missing[0]}")
        self.items = items
        self.policies = [p for p in index["policies"] if any(item.policy == p for item in items)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        item = self.items[index]
        try:
            with Image.open(self.root / item.image) as image:
                rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
            with Image.open(self.root / item.mask) as mask_file:
                mask = (np.asarray(mask_file.convert("L")) > 127).astype(np.float32)
        except OSError as exc:
            raise EvalSetError(f"{self.root}: cannot read item {index} ({exc})") from None
        if rgb.shape[:2] != mask.shape or rgb.shape[:2] != (self.size, self.size):
            raise EvalSetError(f"{self.root / item.image}: expected {self.size}x{self.size} image and mask")
        return {"image": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))),
                "mask": torch.from_numpy(mask)[None], "policy": item.policy}
