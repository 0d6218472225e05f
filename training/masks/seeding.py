"""Seeds for masks and augmentations that differ per process (rank) and per DataLoader worker,
so no two workers on any GPU draw the same masks, while one base seed fixes them all."""
from __future__ import annotations

import os
import random

import numpy as np


def distributed_rank() -> int:
    """This process's rank: torch.distributed when initialised, else $RANK (torchrun), else 0."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except ImportError:  # torch without distributed support
        pass
    return int(os.environ.get("RANK", "0"))


def stream_seed(base_seed: int, rank: int = 0, worker_id: int = 0) -> np.random.SeedSequence:
    """An independent random stream for (base seed, rank, worker); distinct triples give
    statistically independent streams (numpy SeedSequence hashing)."""
    if base_seed < 0 or rank < 0 or worker_id < 0:
        raise ValueError(f"seeds must be >= 0, got base {base_seed}, rank {rank}, worker {worker_id}")
    return np.random.SeedSequence([int(base_seed), int(rank), int(worker_id)])


def seed_python_and_numpy(seed: np.random.SeedSequence) -> None:
    """Seed the global `random` and legacy `np.random` state from `seed` (for third-party code
    that uses them; our own code draws from explicit generators)."""
    words = seed.generate_state(2)
    random.seed(int(words[0]))
    np.random.seed(int(words[1]))
