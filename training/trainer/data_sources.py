"""Everything the loop reads from disk, built from `config.data`: the training set, the fixed
evaluation set with its in-hole metrics (plus LPIPS / FID when their weight files are configured),
and the batch drawn into sample grids."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from ..data import DataError, InpaintingTrainDataset, worker_init_fn
from ..evaluation import EvalSet, PerceptualScorers, evaluate_generator
from ..masks import parse_mask_mixture
from .config import TrainConfig

__all__ = ["DataError", "DataSources", "build_sources"]

EvalFunction = Callable[[nn.Module, torch.device], dict[str, float]]


@dataclass
class DataSources:
    train_dataset: Dataset
    worker_init_fn: Callable[[int], None] | None
    evaluate: EvalFunction | None
    sample_batch: dict[str, torch.Tensor] | None
    eval_size: int


def _fixed_batch(dataset: Dataset, count: int, seed: int) -> dict[str, torch.Tensor]:
    """`count` items spread over the dataset (several mask policies of an evaluation set), drawn
    under a fixed numpy seed, so every sample grid of a run shows the same inputs."""
    import numpy as np

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        stride = max(1, len(dataset) // count)
        items = [dataset[i] for i in range(0, len(dataset), stride)][:count]
    finally:
        np.random.set_state(state)
    return {key: torch.stack([item[key] for item in items]) for key in ("image", "mask")}


def build_sources(config: TrainConfig) -> DataSources:
    """The training set from `data.train_dir` and, with `data.eval_dir`, the evaluation set."""
    data = config.data
    train_dataset = InpaintingTrainDataset(data.train_dir, crop_size=data.crop_size, augment=data.augment,
                                           mask=data.mask, repeat=data.repeat,
                                           mask_mixture=parse_mask_mixture(data.mask_mixture, data.crop_size))
    if not data.eval_dir:
        return DataSources(train_dataset, worker_init_fn, None, _fixed_batch(train_dataset, 4, config.trainer.seed), 0)
    eval_set = EvalSet(data.eval_dir, max_images=data.eval_max_images)
    # read the metric weights now, so a wrong path fails before training starts
    scorers = PerceptualScorers.from_paths(data.eval_lpips_alexnet, data.eval_lpips_linear, data.eval_fid_inception)
    if scorers.fid is not None and len(eval_set) < 2:
        raise DataError(f"{data.eval_dir}: FID needs at least 2 evaluation images, the set has {len(eval_set)}")
    return DataSources(train_dataset, worker_init_fn, _evaluator(eval_set, data.eval_batch_size, scorers),
                       _fixed_batch(eval_set, 4, config.trainer.seed), len(eval_set))


def _evaluator(eval_set: EvalSet, batch_size: int, scorers: PerceptualScorers) -> EvalFunction:
    def evaluate(generator: nn.Module, device: torch.device) -> dict[str, float]:
        """In-hole L1 / PSNR / SSIM of the composited prediction (and LPIPS / FID when configured),
        overall and per mask policy."""
        return evaluate_generator(generator, eval_set, device, batch_size, scorers)

    return evaluate

