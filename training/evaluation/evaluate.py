"""Run a generator over a fixed evaluation set and average the in-hole metrics."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from .eval_set import EvalSet
from .metrics import MetricAverages, hole_metrics


@torch.no_grad()
def evaluate_generator(generator: nn.Module, eval_set: EvalSet, device: torch.device | str = "cpu",
                       batch_size: int = 8) -> dict[str, float]:
    """Mean `l1_hole`, `psnr_hole`, `ssim_hole` over the set, overall and as `<policy>/<metric>`,
    plus `images`. The generator follows the project contract: input cat([image * (1 - mask),
    mask]), output N x 3 x H x W in 0..1; its prediction is composited before scoring. The caller
    chooses train/eval mode."""
    device = torch.device(device)
    averages = MetricAverages()
    images = 0
    for batch in DataLoader(eval_set, batch_size=batch_size, shuffle=False):
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        prediction = generator(torch.cat([image * (1 - mask), mask], dim=1)).float().clamp(0, 1)
        composite = prediction * mask + image * (1 - mask)
        averages.update(hole_metrics(composite, image, mask), list(batch["policy"]))
        images += image.shape[0]
    return {**averages.compute(), "images": float(images)}


def make_evaluator(eval_dir: str | Path, batch_size: int = 8, max_images: int = 0
                   ) -> Callable[[nn.Module, torch.device], dict[str, float]]:
    """`evaluate(generator, device) -> metrics` over the set in `eval_dir` (read once, here, so a
    bad folder fails before training starts); `max_images` > 0 keeps that many per policy."""
    eval_set = EvalSet(eval_dir, max_images=max_images)

    def evaluate(generator: nn.Module, device: torch.device) -> dict[str, float]:
        return evaluate_generator(generator, eval_set, device, batch_size)

    return evaluate
