"""Everything the loop reads from disk, built from `config.data`: the training set, the fixed
evaluation set with its in-hole metrics, and the batch drawn into sample grids."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..data import DataError, InpaintingTrainDataset, worker_init_fn
from .config import TrainConfig

__all__ = ["DataError", "DataSources", "build_sources", "make_eval_function"]

EvalFunction = Callable[[nn.Module, torch.device], dict[str, float]]
HoleMetrics = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


@dataclass
class DataSources:
    train_dataset: Dataset
    worker_init_fn: Callable[[int], None] | None
    evaluate: EvalFunction | None
    sample_batch: dict[str, torch.Tensor] | None
    eval_size: int


def make_eval_function(dataset: Dataset, batch_size: int, metrics: HoleMetrics) -> EvalFunction:
    """Mean over the evaluation images of `metrics(inpainted, image, mask)` (per-image values).

    The prediction is composited (known pixels from the image) before measuring, as the backend
    serves it; the metrics only look inside the hole anyway.
    """

    def evaluate(generator: nn.Module, device: torch.device) -> dict[str, float]:
        sums: dict[str, float] = {}
        count = 0
        for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
            image, mask = batch["image"].to(device), batch["mask"].to(device)
            prediction = generator(torch.cat([image * (1 - mask), mask], dim=1))
            inpainted = mask * prediction + (1 - mask) * image
            for name, values in metrics(inpainted, image, mask).items():
                sums[name] = sums.get(name, 0.0) + float(values.double().sum())
            count += image.shape[0]
        return {f"hole_{name}": total / count for name, total in sums.items()} | {"images": count}

    return evaluate


def _fixed_batch(dataset: Dataset, count: int, seed: int) -> dict[str, torch.Tensor]:
    """The first `count` items drawn under a fixed numpy seed (the same grid rows at every step)."""
    import numpy as np

    state = np.random.get_state()
    np.random.seed(seed)
    try:
        items = [dataset[i] for i in range(min(count, len(dataset)))]
    finally:
        np.random.set_state(state)
    return {key: torch.stack([item[key] for item in items]) for key in ("image", "mask")}


def build_sources(config: TrainConfig) -> DataSources:
    """The training set from `data.train_dir` and, with `data.eval_dir`, the evaluation set."""
    data = config.data
    train_dataset = InpaintingTrainDataset(data.train_dir, crop_size=data.crop_size, augment=data.augment,
                                           mask=data.mask)
    evaluate, sample_batch, eval_size = None, None, 0
    if data.eval_dir:
        eval_dataset: Dataset = _read_eval_set(data.eval_dir)
        if data.eval_max_images:
            eval_dataset = Subset(eval_dataset, range(min(data.eval_max_images, len(eval_dataset))))
        evaluate = make_eval_function(eval_dataset, data.eval_batch_size, _hole_metrics())
        sample_batch = _fixed_batch(eval_dataset, 4, config.trainer.seed)
        eval_size = len(eval_dataset)
    else:
        sample_batch = _fixed_batch(train_dataset, 4, config.trainer.seed)
    return DataSources(train_dataset, worker_init_fn, evaluate, sample_batch, eval_size)


def _read_eval_set(folder: str) -> Dataset:
    try:
        from ..evaluation import read_eval_set
    except ImportError:
        raise DataError("this lama-train has no evaluation-set reader (lama_training.evaluation)") from None
    return read_eval_set(folder)


def _hole_metrics() -> HoleMetrics:
    from ..evaluation import hole_metrics
    return hole_metrics
