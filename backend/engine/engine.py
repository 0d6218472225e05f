"""One inpainting pass: check input, shape the hole, run the model per crop, paste back.

The model only ever sees RGB in 0..1 padded to its size multiple; everything about dtypes,
alpha, masks and which pixels may change is decided here, so every model family gets the same
guarantees (above all: pixels outside the hole come back bit-identical).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from lama_training.deepgin.subimage import merge, split, stride_for

from ..acceleration import MemoryBudgetError
from ..models import InpaintModel
from .compositing import composite_into, layer_into
from .crops import Box, plan_crops
from .errors import Cancelled, InpaintError
from .mask_ops import dilate_disk, feather_ramp
from .options import InpaintOptions
from .padding import pad_to_modulo
from .pixels import check_image, check_mask, mask_weights, to_unit
from .seams import match_seams

ProgressCallback = Callable[[float, str], None]

# the flips behind `model.mirror_average` = 1, 2 or 4: none, left-right, up-down, both
MIRROR_FLIPS: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))

# The generators downsample three times and reflect-pad by 1 at the bottleneck, so they need
# at least 16 px per side; 32 leaves room and costs nothing.
MIN_MODEL_SIDE = 32
# side of the sub-images of the "subimage" strategy (DeepGIN's training size)
SUBIMAGE_SIDE = 256


def hole_weights(mask: np.ndarray, options: InpaintOptions) -> np.ndarray:
    """Blend weight per pixel (float32, H x W) after grow and feather; the hole is weight > 0.

    Grow and feather only look at the hole's bounding box plus grow + 1 px, which is exact:
    beyond it there is no hole pixel, and its outer ring is all known pixels.
    """
    weight = mask_weights(mask, options.soft_mask)
    if options.grow == 0 and options.feather == 0:
        return weight
    bounds = Box.bounding(weight)
    if bounds is None:
        return weight
    window = bounds.expanded(options.grow + 1, *weight.shape)
    local = weight[window.slices]
    if options.grow:
        local = dilate_disk(local, options.grow)
    if options.feather:
        local = local * feather_ramp(local > 0, options.feather)
    weight[window.slices] = local
    return weight


class InpaintEngine:
    """Runs an `InpaintModel` on images of any size, dtype and alpha; see docs/ARCHITECTURE.md."""

    def __init__(self, model: InpaintModel) -> None:
        self.model = model

    def inpaint(self, image: np.ndarray, mask: np.ndarray, options: InpaintOptions = InpaintOptions(),
                progress: ProgressCallback | None = None,
                cancelled: Callable[[], bool] | None = None) -> np.ndarray:
        """Fill the hole (mask != 0) of `image`; composite: same shape/dtype, layer: H x W x 4.

        An empty mask is not an error here: the result is the unchanged image (or an empty layer).
        """
        if not isinstance(options, InpaintOptions):
            raise InpaintError(f"options must be InpaintOptions, got {type(options).__name__}")
        image = check_image(image)
        mask = check_mask(mask, image.shape[:2])
        report = progress or (lambda fraction, stage: None)
        weight = hole_weights(mask, options)
        hole = weight > 0
        height, width = hole.shape
        if options.output == "composite":
            out = image.copy()
            write = composite_into
        else:
            out = np.zeros((height, width, 4), dtype=image.dtype)
            write = layer_into
        if not hole.any():
            boxes: list[Box] = []
        elif options.strategy == "whole":
            boxes = [Box(0, 0, height, width)]
        else:
            boxes = plan_crops(hole, options.margin, MIN_MODEL_SIDE)
        if options.quality == "refine" and not getattr(self.model, "supports_refinement", False):
            raise InpaintError(f"quality 'refine' is not available for {self.model.family} models; use 'fast'")
        for index, box in enumerate(boxes):
            if cancelled is not None and cancelled():
                raise Cancelled(f"cancelled before region {index + 1} of {len(boxes)}")
            report(index / len(boxes), f"inpainting region {index + 1}/{len(boxes)}")
            if options.quality == "refine":
                prediction = self.refine(image[box.slices], hole[box.slices], index, len(boxes), report, cancelled)
            else:
                prediction = self.predict(image[box.slices], hole[box.slices], options.strategy == "subimage")
            if options.seamless:
                prediction = self.match_seams(prediction, image, hole, box)
            write(out[box.slices], image[box.slices], prediction, weight[box.slices])
        report(1.0, "done")
        return out

    def predict(self, pixels: np.ndarray, hole: np.ndarray, subimages: bool = False) -> np.ndarray:
        """The model's H x W x 3 float32 prediction for one crop (RGB of `pixels`, boolean hole)."""
        height, width = hole.shape
        if subimages and max(height, width) > SUBIMAGE_SIDE:
            return self._predict_subimages(pixels, hole)
        modulo = self.model.pad_modulo
        rgb = pad_to_modulo(to_unit(pixels[..., :3]), modulo, MIN_MODEL_SIDE)
        mask = pad_to_modulo(hole.astype(np.float32), modulo, MIN_MODEL_SIDE)
        device = self.model.device
        with torch.inference_mode():
            rgb_tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)
            mask_tensor = torch.from_numpy(np.ascontiguousarray(mask))[None, None].to(device)
            try:
                predicted = self._mirror_average(rgb_tensor, mask_tensor)
            except MemoryBudgetError as error:
                raise InpaintError(str(error)) from None
            if tuple(predicted.shape) != tuple(rgb_tensor.shape):
                raise InpaintError(f"the model returned shape {tuple(predicted.shape)} "
                                   f"for input {tuple(rgb_tensor.shape)}")
            result = predicted[0, :, :height, :width].float().cpu().numpy()
        return np.ascontiguousarray(result.transpose(1, 2, 0))

    def match_seams(self, prediction: np.ndarray, image: np.ndarray, hole: np.ndarray, box: Box) -> np.ndarray:
        """`seams.match_seams` for one crop's own prediction array (changed in place where it can
        be). Where the hole reaches the crop's edge (margin 0) inside the image, the crop is grown
        by 1 px so the fill still meets the known pixels just outside it; the prediction is
        extended there by repeating its edge."""
        window = box.expanded(1, *hole.shape)
        inner = Box.bounding(hole[box.slices])
        if inner is None or (inner.top > 0 and inner.left > 0
                             and inner.bottom < box.height and inner.right < box.width):
            window = box  # the known ring around the hole lies inside the crop
        pads = ((box.top - window.top, window.bottom - box.bottom), (box.left - window.left, window.right - box.right))
        grown = np.pad(prediction, (*pads, (0, 0)), mode="edge") if window != box else prediction
        match_seams(grown, to_unit(image[window.slices][..., :3]), hole[window.slices], self.model.device)
        return grown[pads[0][0]:pads[0][0] + box.height, pads[1][0]:pads[1][0] + box.width]

    def _mirror_average(self, rgb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The model's prediction, averaged over `model.mirror_average` mirror images of the input
        (1 = the plain prediction): a model whose single fills are noisy gets a steadier one."""
        count = getattr(self.model, "mirror_average", 1)
        if count not in (1, 2, 4):
            raise InpaintError(f"mirror_average must be 1, 2 or 4, got {count!r}")
        total = None
        for dims in MIRROR_FLIPS[:count]:
            if dims:
                predicted = self.model.predict(rgb.flip(dims), mask.flip(dims)).flip(dims).float()
            else:
                predicted = self.model.predict(rgb, mask).float()
            total = predicted if total is None else total + predicted
        return total / count if count > 1 else total

    def refine(self, pixels: np.ndarray, hole: np.ndarray, index: int, count: int, report: ProgressCallback,
               cancelled: Callable[[], bool] | None) -> np.ndarray:
        """Like `predict`, through the model's high-resolution refinement (needs autograd)."""
        from ..refinement import RefinementCancelled
        height, width = hole.shape
        modulo = self.model.pad_modulo
        rgb = pad_to_modulo(to_unit(pixels[..., :3]), modulo, MIN_MODEL_SIDE)
        mask = pad_to_modulo(hole.astype(np.float32), modulo, MIN_MODEL_SIDE)
        rgb_tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(self.model.device)
        mask_tensor = torch.from_numpy(np.ascontiguousarray(mask))[None, None].to(self.model.device)

        def step(fraction: float, stage: str) -> None:
            report((index + fraction) / count, f"region {index + 1}/{count}: {stage}")

        try:
            predicted = self.model.refine(rgb_tensor, mask_tensor, step, cancelled)
        except RefinementCancelled as error:
            raise Cancelled(str(error)) from None
        result = predicted[0, :, :height, :width].float().cpu().numpy()
        return np.ascontiguousarray(result.transpose(1, 2, 0))

    def _predict_subimages(self, pixels: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """Inpaint the crop as strided 256 x 256 sub-images, one at a time, and re-interleave."""
        height, width = hole.shape
        stride = stride_for(height, width, SUBIMAGE_SIDE)
        rgb = torch.from_numpy(np.ascontiguousarray(to_unit(pixels[..., :3]).transpose(2, 0, 1)))[None]
        mask = torch.from_numpy(hole.astype(np.float32))[None, None]
        rgb_parts, mask_parts = split(rgb, stride, SUBIMAGE_SIDE), split(mask, stride, SUBIMAGE_SIDE)
        predicted = torch.empty_like(rgb_parts)
        for index in range(rgb_parts.shape[0]):
            if mask_parts[index].any():
                sub_pixels = rgb_parts[index].permute(1, 2, 0).numpy()
                sub_hole = mask_parts[index, 0].numpy() > 0
                predicted[index] = torch.from_numpy(self.predict(sub_pixels, sub_hole).transpose(2, 0, 1))
            else:
                predicted[index] = rgb_parts[index]
        return np.ascontiguousarray(merge(predicted, stride, height, width)[0].permute(1, 2, 0).numpy())
