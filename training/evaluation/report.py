"""A quality report: one model against two baselines on the same fixed evaluation set.

A number such as "28 dB in the hole" means little alone, so every report scores three methods in
the same run, on the same crops and masks:

* `model`: the weights under test, through the backend's `InpaintModel.predict` (so official
  checkpoints, TorchScript `big-lama.pt` and our safetensors are all measured the same way);
* `telea`: OpenCV's Telea inpainting (Telea 2004, radius `TELEA_RADIUS`), the classic
  non-learned method a trained network has to beat;
* `untrained`: a randomly initialised network of the model's own generator config (seeded),
  showing what the training added.

Metrics are the in-hole L1, PSNR and SSIM of `lama_training.evaluation.metrics`, averaged per mask
policy (thin/medium/thick) and over all items.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

from ..modules.generators import GENERATOR_PRESETS, GeneratorConfig, make_generator
from .eval_set import EvalSet
from .evaluate import evaluate_generator

REPORT_FORMAT = "lama-eval-report"
REPORT_VERSION = 1
TELEA_RADIUS = 3  # px; OpenCV's documented example value, the usual choice in comparisons
METRICS = ("psnr_hole", "ssim_hole", "l1_hole")
METHODS = ("model", "served", "telea", "untrained")  # table order
OPENCV_HINT = "pip install opencv-python-headless"


class TeleaInpainter(nn.Module):
    """OpenCV Telea behind the generator contract: input `cat([image * (1 - mask), mask])`,
    output N x 3 x H x W in 0..1. Works on 8-bit pixels, as OpenCV's inpainting requires
    (evaluation crops are 8-bit PNGs, so nothing is lost)."""

    def __init__(self, radius: int = TELEA_RADIUS) -> None:
        super().__init__()
        try:
            import cv2
        except ImportError:
            raise ImportError(f"the Telea baseline needs OpenCV: {OPENCV_HINT}") from None
        if radius < 1:
            raise ValueError(f"Telea radius must be >= 1, got {radius}")
        self._cv2 = cv2
        self.radius = radius

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if x.dim() != 4 or x.shape[1] != 4:
            raise ValueError(f"expected N x 4 x H x W (image and mask), got {tuple(x.shape)}")
        outputs = []
        for sample in x.detach().cpu():
            image = np.ascontiguousarray((sample[:3].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
            mask = (sample[3].numpy() > 0.5).astype(np.uint8)
            filled = self._cv2.inpaint(image, mask, self.radius, self._cv2.INPAINT_TELEA)
            outputs.append(torch.from_numpy(filled.astype(np.float32) / 255.0).permute(2, 0, 1))
        return torch.stack(outputs).to(x.device)


class PredictAdapter(nn.Module):
    """An `InpaintModel` (backend) behind the generator contract used by `evaluate_generator`."""

    def __init__(self, predict: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self._predict = predict

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self._predict(x[:, :3], x[:, 3:4])


class EngineAdapter(nn.Module):
    """The backend's whole inpainting pass (`InpaintEngine.inpaint` with its default options:
    seam matching, the model's mirror averaging) behind the generator contract, so the
    evaluation can score exactly what `lama-backend` hands a user, beside the bare network."""

    def __init__(self, engine: Any) -> None:
        super().__init__()
        self._engine = engine

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        outputs = []
        for sample in x.detach().float().cpu():
            image = np.ascontiguousarray(sample[:3].permute(1, 2, 0).numpy())  # hole zeroed: never read
            mask = sample[3].numpy() > 0.5
            result = self._engine.inpaint(image, mask)
            outputs.append(torch.from_numpy(np.ascontiguousarray(result.transpose(2, 0, 1))))
        return torch.stack(outputs).to(x.device)


def untrained_generator(config: GeneratorConfig, seed: int = 0) -> nn.Module:
    """A freshly initialised generator (eval mode: batch norms use their initial statistics)."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        return make_generator(config).eval().requires_grad_(False)
    finally:
        torch.random.set_rng_state(state)


def generator_config_of(model: Any) -> GeneratorConfig:
    """The generator config behind a backend model: our generators carry it; TorchScript
    `big-lama.pt` has none and is big-lama by construction."""
    config = getattr(getattr(model, "generator", None), "config", None)
    if isinstance(config, GeneratorConfig):
        return config
    if getattr(model, "preset", None) in GENERATOR_PRESETS:
        return GENERATOR_PRESETS[model.preset]
    raise ValueError(f"cannot tell the generator config of {getattr(model, 'source', model)!r} "
                     "(needed for the untrained baseline)")


@dataclass
class Report:
    """Per policy (and `all`), per method, the mean of each metric; plus what was compared."""

    results: dict[str, dict[str, dict[str, float]]]
    policies: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": REPORT_FORMAT, "version": REPORT_VERSION, **self.info,
                "policies": self.policies, "results": self.results}

    def write_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False) + "\n")
        return path

    def table(self) -> str:
        """A fixed-width table: one row per (policy, method); PSNR in dB, L1 in 0..1 units."""
        methods = [m for m in METHODS if any(m in row for row in self.results.values())]
        lines = [f"{'masks':<12} {'method':<10} {'PSNR':>7} {'SSIM':>7} {'L1':>7}   (inside the hole)"]
        for policy in self.policies + ["all"]:
            for method in methods:
                values = self.results[policy][method]
                lines.append(f"{policy:<12} {method:<10} {values['psnr_hole']:>7.2f} {values['ssim_hole']:>7.4f} "
                             f"{values['l1_hole']:>7.4f}")
        return "\n".join(lines)


def regroup(per_method: Mapping[str, Mapping[str, float]], policies: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """`{method: {"thin-256/psnr_hole": v, "psnr_hole": v, ...}}` -> `{policy|"all": {method: {metric: v}}}`."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    for policy in list(policies) + ["all"]:
        results[policy] = {}
        for method, values in per_method.items():
            prefix = "" if policy == "all" else f"{policy}/"
            row = {}
            for metric in METRICS:
                value = values.get(prefix + metric)
                if value is None or not math.isfinite(value):
                    raise ValueError(f"{method}: no finite {prefix + metric} (empty masks in the evaluation set?)")
                row[metric] = float(value)
            results[policy][method] = row
    return results


def build_report(methods: Mapping[str, nn.Module], eval_set: EvalSet, batch_size: int = 8,
                 device: torch.device | str = "cpu", info: Mapping[str, Any] | None = None) -> Report:
    """Score each method on `eval_set` (the same items, in the same order) and collect a report."""
    per_method: dict[str, dict[str, float]] = {}
    timings: dict[str, float] = {}
    for name, method in methods.items():
        started = time.perf_counter()
        per_method[name] = evaluate_generator(method, eval_set, device=device, batch_size=batch_size)
        timings[name] = round(time.perf_counter() - started, 3)
    details = dict(info or {})
    details["seconds"] = timings
    details["images"] = len(eval_set)
    return Report(regroup(per_method, eval_set.policies), list(eval_set.policies), details)


OVERLAY_COLOUR = (1.0, 0.15, 0.15)  # the hole as users see a selection: tinted, content still visible
OVERLAY_ALPHA = 0.6
LABEL_HEIGHT = 18


def mask_overlay(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """3 x H x W image with the hole tinted red (what a user selected for inpainting)."""
    colour = image.new_tensor(OVERLAY_COLOUR).view(3, 1, 1)
    hole = (mask > 0.5).to(image.dtype)
    return image * (1 - hole * OVERLAY_ALPHA) + colour * hole * OVERLAY_ALPHA


@torch.no_grad()
def before_after_grid(methods: Mapping[str, nn.Module], eval_set: EvalSet, indices: Sequence[int],
                      device: torch.device | str = "cpu") -> Image.Image:
    """One row per item: input with the hole tinted, each method's composited result, the original.
    Columns are labelled at the top; rows are named by their mask policy on the left column."""
    rows = []
    for index in indices:
        item = eval_set[index]
        image, mask = item["image"][None].to(device), item["mask"][None].to(device)
        tiles = [mask_overlay(image[0], mask[0])]
        for method in methods.values():
            prediction = method(torch.cat([image * (1 - mask), mask], dim=1)).float().clamp(0, 1)
            tiles.append((prediction * mask + image * (1 - mask))[0])
        tiles.append(image[0])
        rows.append(torch.cat([tile.cpu() for tile in tiles], dim=2))
    grid = (torch.cat(rows, dim=1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    size = eval_set.size
    canvas = Image.new("RGB", (grid.shape[1], grid.shape[0] + LABEL_HEIGHT), "white")
    canvas.paste(Image.fromarray(grid), (0, LABEL_HEIGHT))
    draw = ImageDraw.Draw(canvas)
    labels = ["input + mask", *methods, "original"]
    for column, label in enumerate(labels):
        draw.text((column * size + 4, 3), label, fill="black")
    for row, index in enumerate(indices):
        draw.text((4, LABEL_HEIGHT + row * size + 4), eval_set.items[index].policy, fill="white")
    return canvas


def nth_item_per_policy(eval_set: EvalSet, n: int = 0) -> list[int]:
    """The index of each policy's n-th item (item n of every policy shows the same crop)."""
    by_policy: dict[str, list[int]] = {policy: [] for policy in eval_set.policies}
    for index, item in enumerate(eval_set.items):
        by_policy[item.policy].append(index)
    fewest = min(len(indices) for indices in by_policy.values())
    if not 0 <= n < fewest:
        raise ValueError(f"item must be in 0..{fewest - 1} (items per policy), got {n}")
    return [by_policy[policy][n] for policy in eval_set.policies]
