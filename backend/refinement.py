"""High-resolution refinement (Kulshreshtha et al. 2022, the official LaMa `refine` option).

A network trained at 256 px loses structure on large holes at high resolution. Refinement
builds an image pyramid (halving, min side `min_side`, at most `max_scales` levels), inpaints
the coarsest level normally, and at each finer level optimises the features after the encoder
(the input of the first FFC ResNet block) with Adam so that

    loss = mean |pred - image| over known pixels
         + mean |pyramid_down(pred) - previous level's result| inside the eroded, downscaled hole.

The weights never change; only that level's features do. Unlike the official code (CUDA, one
pass held on the GPU, ~24 GB), this version checkpoints every block and the decoder, so the
autograd memory stays a few times one forward pass, and it runs on CPU or GPU alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from lama_training.modules.ffc import FFCResnetBlock

ProgressCallback = Callable[[float, str], None]
EPS = 1e-8
#: float32 bytes refinement holds per image pixel at its finest scale with checkpointing (block
#: inputs at 1/64 of the pixels x 512 channels x 18 blocks, plus one decoder pass with autograd);
#: measured on big-lama at 1536 x 1536 (7.1 GiB peak RSS), see benchmarks/README.md
REFINE_BYTES_PER_PIXEL = 3300


@dataclass(frozen=True)
class RefineConfig:
    """The official defaults (`configs/prediction/default.yaml`, refiner section)."""

    n_iters: int = 15
    lr: float = 0.002
    min_side: int = 512
    max_scales: int = 3
    erode_size: int = 15     # elliptic structuring element for the hole of the lower level
    modulo: int = 8

    def __post_init__(self) -> None:
        if self.n_iters < 1 or self.max_scales < 1 or self.min_side < 1 or self.modulo < 1:
            raise ValueError("n_iters, max_scales, min_side and modulo must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class RefinementCancelled(Exception):
    """`cancelled()` turned true between two optimisation steps."""


def pyramid_scales(height: int, width: int, min_side: int, max_scales: int) -> int:
    """Number of pyramid levels: 1 + round(log2(min side / min_side)), clamped to 1..max_scales."""
    breadth = min(height, width)
    return min(1 + int(round(max(0.0, math.log2(breadth / min_side)))), max_scales)


def gaussian_blur5(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """5x5 Gaussian blur with reflect borders (what the pyramid uses before halving)."""
    taps = torch.arange(5, dtype=torch.float64, device=x.device) - 2
    window = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    window = (window / window.sum()).to(x.dtype)
    channels = x.shape[1]
    x = F.pad(x, (2, 2, 2, 2), mode="reflect")
    x = F.conv2d(x, window.view(1, 1, 1, 5).repeat(channels, 1, 1, 1), groups=channels)
    return F.conv2d(x, window.view(1, 1, 5, 1).repeat(channels, 1, 1, 1), groups=channels)


def pyramid_down(x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Blur, then bilinear resize to `size` (default: half)."""
    size = size or (x.shape[-2] // 2, x.shape[-1] // 2)
    return F.interpolate(gaussian_blur5(x), size=size, mode="bilinear", align_corners=False)


def mask_down(mask: torch.Tensor, blur: bool, round_up: bool) -> torch.Tensor:
    """Halve a {0,1} mask; round_up keeps any touched pixel a hole, else only fully covered ones."""
    small = F.interpolate(gaussian_blur5(mask) if blur else mask, size=(mask.shape[-2] // 2, mask.shape[-1] // 2),
                          mode="bilinear", align_corners=False)
    return (small >= (EPS if round_up else 1.0 - EPS)).to(mask.dtype)


def ellipse_element(size: int) -> torch.Tensor:
    """The elliptic structuring element OpenCV's getStructuringElement(MORPH_ELLIPSE) defines:
    row i spans columns c - dx .. c + dx with dx = round(c * sqrt(1 - (i - r)^2 / r^2))."""
    r = c = size // 2
    element = torch.zeros(size, size)
    for i in range(size):
        dy = i - r
        dx = int(round(c * math.sqrt(max(0.0, (r * r - dy * dy) / (r * r))))) if r else 0
        element[i, max(c - dx, 0):min(c + dx + 1, size)] = 1
    return element


def erode(mask: torch.Tensor, element: torch.Tensor) -> torch.Tensor:
    """Binary erosion; pixels outside the image do not erode (geodesic border)."""
    k = element.shape[-1]
    outside_hole = 1.0 - mask
    hits = F.conv2d(outside_hole, element.to(mask)[None, None], padding=k // 2)
    return (hits <= 0.5).to(mask.dtype) * mask


def build_pyramid(image: torch.Tensor, mask: torch.Tensor, config: RefineConfig
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(image, mask) levels, coarsest first."""
    levels = [(image, mask)]
    for _ in range(pyramid_scales(image.shape[-2], image.shape[-1], config.min_side, config.max_scales) - 1):
        image, mask = levels[-1]
        levels.append((pyramid_down(image), mask_down(mask, blur=True, round_up=True)))
    return levels[::-1]


def pad_to_modulo(x: torch.Tensor, modulo: int) -> torch.Tensor:
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % modulo, (-width) % modulo
    if not pad_h and not pad_w:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")


def split_generator(generator: nn.Module) -> tuple[nn.Sequential, list[nn.Module], nn.Sequential]:
    """front (encoder), the ResNet blocks, rear (decoder) of an FFCResNetGenerator's `model`."""
    layers = list(generator.model)
    block_indices = [i for i, layer in enumerate(layers) if isinstance(layer, FFCResnetBlock)]
    if not block_indices:
        raise ValueError("refinement needs a generator with FFC ResNet blocks")
    first, last = block_indices[0], block_indices[-1]
    return nn.Sequential(*layers[:first]), layers[first:last + 1], nn.Sequential(*layers[last + 1:])


class Refiner:
    """Refinement over one generator module (eval mode; its weights are never modified)."""

    def __init__(self, generator: nn.Module, config: RefineConfig = RefineConfig(),
                 encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None) -> None:
        self.generator = generator.eval()
        self.config = config
        self.front, self.blocks, self.rear = split_generator(generator)
        self.encode = encode  # a faster no-grad encoder (the fast path) if the caller has one
        self.element = ellipse_element(config.erode_size)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            if self.encode is not None:
                feats = self.encode(x)
            else:
                feats = self.front(x)
        feats = list(feats) if isinstance(feats, tuple) else [feats]
        return [f.detach().float().contiguous().requires_grad_(True) for f in feats]

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Blocks and decoder with autograd, checkpointed so only block inputs are kept."""
        x = tuple(feats) if len(feats) > 1 else feats[0]
        for block in self.blocks:
            x = checkpoint(block, x, use_reentrant=False)
        return checkpoint(self.rear, x, use_reentrant=False)

    def refine(self, image: torch.Tensor, mask: torch.Tensor, progress: ProgressCallback | None = None,
               cancelled: Callable[[], bool] | None = None, max_pixels: int | None = None) -> torch.Tensor:
        """image 1 x 3 x H x W in 0..1, mask 1 x 1 x H x W {0,1} -> 1 x 3 x H x W prediction in 0..1.

        Above `max_pixels` (what the memory budget allows, see `REFINE_BYTES_PER_PIXEL`) the image
        is refined at the largest size that fits and the result upscaled, as the official
        `px_budget` does.
        """
        if image.dim() != 4 or image.shape[0] != 1 or image.shape[1] != 3:
            raise ValueError(f"refinement takes one 1 x 3 x H x W image, got {tuple(image.shape)}")
        if mask.shape != (1, 1, *image.shape[-2:]):
            raise ValueError(f"mask must be 1 x 1 x H x W matching the image, got {tuple(mask.shape)}")
        height, width = image.shape[-2:]
        if max_pixels is not None and height * width > max_pixels:
            ratio = math.sqrt(max_pixels / (height * width))
            size = (max(self.config.modulo, int(height * ratio)), max(self.config.modulo, int(width * ratio)))
            small_image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
            small_mask = (F.interpolate(mask.to(image.dtype), size=size, mode="bilinear", align_corners=False) > EPS)
            refined = self.refine(small_image, small_mask.to(image.dtype), progress, cancelled)
            return F.interpolate(refined, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)
        report = progress or (lambda fraction, stage: None)
        mask = (mask > EPS).to(image.dtype)
        levels = build_pyramid(image, mask, self.config)
        total_steps = 1 + (len(levels) - 1) * self.config.n_iters
        done = 0
        previous: torch.Tensor | None = None
        prediction = image
        for level, (level_image, level_mask) in enumerate(levels):
            height, width = level_image.shape[-2:]
            padded_image = pad_to_modulo(level_image, self.config.modulo)
            padded_mask = (pad_to_modulo(level_mask, self.config.modulo) > EPS).to(image.dtype)
            x = torch.cat([padded_image * (1 - padded_mask), padded_mask], dim=1)
            feats = self.features(x)
            if previous is None:
                with torch.no_grad():
                    prediction = self.decode(feats)
                done += 1
                report(done / total_steps, f"refine: scale 1/{len(levels)} at {width}x{height}")
            else:
                prediction = self._optimise(feats, padded_image, padded_mask, previous, (height, width),
                                            level, len(levels), done, total_steps, report, cancelled)
                done += self.config.n_iters
            composed = padded_mask * prediction + (1 - padded_mask) * padded_image
            previous = composed[..., :height, :width].detach()
        return prediction[..., :image.shape[-2], :image.shape[-1]].detach()

    def _optimise(self, feats, image, mask, reference, size, level, levels, done, total, report, cancelled):
        height, width = size
        known = mask < EPS
        known3 = known.expand(-1, 3, -1, -1)
        small_hole = mask_down(mask[..., :height, :width], blur=False, round_up=False)
        small_hole = erode(small_hole, self.element) >= EPS
        small_hole3 = small_hole.expand(-1, 3, -1, -1)
        optimizer = torch.optim.Adam(feats, lr=self.config.lr)
        prediction = None
        for step in range(self.config.n_iters):
            if cancelled is not None and cancelled():
                raise RefinementCancelled(f"cancelled at scale {level + 1}/{levels}, step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            prediction = self.decode(feats)
            loss = (prediction[known3] - image[known3]).abs().mean()
            if bool(small_hole.any()):
                down = pyramid_down(prediction[..., :height, :width], reference.shape[-2:])
                loss = loss + (down[small_hole3] - reference[small_hole3]).abs().mean()
            report((done + step + 1) / total,
                   f"refine: scale {level + 1}/{levels} step {step + 1}/{self.config.n_iters} loss {loss.item():.4f}")
            if step < self.config.n_iters - 1:  # the last prediction is the result (as in the official code)
                loss.backward()
                optimizer.step()
        return prediction.detach()
