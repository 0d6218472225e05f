"""The training dataset: a folder of images -> random crops with the recipe's augmentations and a
random mask of the large-mask policy.

Randomness: each sample draws from a fresh generator keyed by the process's global numpy state
and the index, so `worker_init_fn` (or the training loop seeding numpy in the main process)
fixes every crop and mask, and workers on different ranks never repeat each other.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..masks import MaskConfig, MaskGenerator, distributed_rank, seed_python_and_numpy, stream_seed
from .config import AugmentConfig
from .geometry import random_geometry
from .images import DataError, UnreadableImage, list_images, load_rgb
from .photometric import random_photometric

LOG = logging.getLogger(__name__)

#: How many other files a sample tries after an unreadable one before giving up.
MAX_REPLACEMENTS = 50


class InpaintingTrainDataset(Dataset):
    """`dataset[i]` -> {"image": 3 x S x S float32 in 0..1, "mask": 1 x S x S float32 in {0, 1}}
    with S = `crop_size`. Unreadable or too small files are skipped with one warning each and
    replaced by the next readable file; only a folder with no readable image is an error."""

    def __init__(self, root: str | Path, crop_size: int = 256, augment: AugmentConfig | None = None,
                 mask: MaskConfig | None = None, repeat: int = 1,
                 mask_mixture: list[tuple[float, MaskConfig]] | None = None) -> None:
        if crop_size < 8:
            raise DataError(f"crop size must be >= 8, got {crop_size}")
        if repeat < 1:
            raise DataError(f"repeat must be >= 1, got {repeat}")
        self.root = Path(root)
        self.files = list_images(self.root)
        self.crop_size = crop_size
        self.augment = augment if augment is not None else AugmentConfig()
        self.mask_generator = MaskGenerator(mask if mask is not None else MaskConfig())
        # (cumulative probability, generator) for the mixed-in policies; the rest draws `mask`
        self.mixture: list[tuple[float, MaskGenerator]] = []
        total = 0.0
        for probability, config in mask_mixture or []:
            total += probability
            self.mixture.append((total, MaskGenerator(config)))
        if total > 1 + 1e-9:
            raise DataError(f"mask mixture probabilities add up to {total:.3f} > 1")
        self.repeat = repeat
        self.skipped: set[int] = set()

    def __len__(self) -> int:
        """Files x `repeat`: a few photographs still make epochs long enough to keep workers busy."""
        return len(self.files) * self.repeat

    def sample_rng(self, index: int) -> np.random.Generator:
        """This sample's generator: the index mixed with two words of the global numpy state."""
        words = np.random.randint(0, 2**32, size=2, dtype=np.uint64)
        return np.random.default_rng([index, int(words[0]), int(words[1])])

    def mask_source(self, rng: np.random.Generator) -> MaskGenerator:
        """The generator of this sample's mask: a mixed-in policy or the configured one. Without a
        mixture nothing is drawn, so runs without one keep their random streams."""
        if not self.mixture:
            return self.mask_generator
        draw = rng.random()
        return next((generator for bound, generator in self.mixture if draw < bound), self.mask_generator)

    def shorter_side(self, rng: np.random.Generator) -> int:
        """`resize_to`, or with `resize_to_max` a log-uniform draw between the two (scale variety)."""
        low, high = self.augment.resize_to, self.augment.resize_to_max
        if high <= low:
            return low
        return int(round(float(np.exp(rng.uniform(np.log(low), np.log(high))))))

    def load(self, index: int, resize_to: int | None = None) -> tuple[int, np.ndarray]:
        """(file index actually used, image) for `index` or, when unreadable, the next readable file."""
        side = self.augment.resize_to if resize_to is None else resize_to
        for attempt in range(min(len(self.files), MAX_REPLACEMENTS + 1)):
            candidate = (index + attempt) % len(self.files)
            if candidate in self.skipped:
                continue
            try:
                return candidate, load_rgb(self.files[candidate], side, self.augment.min_image_size)
            except UnreadableImage as exc:
                self.skipped.add(candidate)
                LOG.warning("skipping %s", exc)
        raise DataError(f"no readable image near index {index} in {self.root} "
                        f"({len(self.skipped)} of {len(self.files)} files skipped so far)")

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.sample_rng(index)
        _, image = self.load(index % len(self.files), self.shorter_side(rng))
        crop = random_geometry(image, self.crop_size, self.augment, rng)
        crop = random_photometric(crop, self.augment, rng)
        mask = self.mask_source(rng).sample(self.crop_size, self.crop_size, rng)
        return {  # converted with numpy: torch's thread pool costs more than it saves on one crop
            "image": torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32) / 255.0),
            "mask": torch.from_numpy(mask)[None],
        }


def worker_init_fn(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: seeds `random` and `numpy` in each worker from the worker's
    torch seed (which the DataLoader derives from its generator and the worker id) and this
    process's rank, so every worker of every rank draws different crops and masks. OpenCV runs
    single-threaded in workers (like torch there): the workers already use the cores."""
    cv2.setNumThreads(0)
    info = torch.utils.data.get_worker_info()
    base = info.seed if info is not None else torch.initial_seed()
    seed_python_and_numpy(stream_seed(base % 2**63, distributed_rank(), worker_id))

