"""Training batches for DeepGIN: every image with the three AIM 2020 masks.

The images come from any dataset of `{"image": 3 x S x S}` items (the LaMa image-folder dataset
with its crops and augmentation); its own mask is replaced. The three masks are drawn from the
process's global numpy state right after the base item, so the existing seeding (per epoch and
rank in the main process, `worker_init_fn` in workers) and the resume replay cover them too.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .masks import MASK_TYPES, AIMMaskConfig, three_masks


class ThreeMaskDataset(Dataset):
    """`dataset[i]` -> {"image": 3 x S x S, "mask": 3 x S x S (rectangle, free-form, cellular automata)}."""

    def __init__(self, images: Dataset, config: AIMMaskConfig = AIMMaskConfig()) -> None:
        self.images = images
        self.config = config

    def __len__(self) -> int:
        return len(self.images)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = self.images[index]["image"]
        words = np.random.randint(0, 2**32, size=2, dtype=np.uint64)
        rng = np.random.default_rng([index, int(words[0]), int(words[1])])
        masks = three_masks(image.shape[-2], image.shape[-1], rng, self.config)
        return {"image": image, "mask": torch.from_numpy(masks)}


def expand_three_masks(image: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """N images + N x 3 masks -> 3N (image, mask) pairs, each image three times in a row."""
    n, kinds, height, width = masks.shape
    return image.repeat_interleave(kinds, dim=0), masks.reshape(n * kinds, 1, height, width)


def sample_masks(images: torch.Tensor, seed: int, config: AIMMaskConfig = AIMMaskConfig()) -> torch.Tensor:
    """N x 1 x H x W masks for a sample grid, cycling through the three mask types (fixed seed)."""
    rng = np.random.default_rng(seed)
    makers = list(MASK_TYPES.values())
    height, width = images.shape[-2:]
    return torch.stack([torch.from_numpy(makers[i % len(makers)](height, width, rng, config))[None]
                        for i in range(images.shape[0])])
