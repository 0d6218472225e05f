"""The "subimage" strategy: DeepGIN's strided 256 x 256 sub-images, inpainted and re-interleaved."""
from __future__ import annotations

import numpy as np
import torch

from lama_backend.engine import InpaintEngine, InpaintOptions
from lama_backend.models import InpaintModel


class PixelwiseModel(InpaintModel):
    """Predicts a per-pixel function of the input, so sub-image and whole-image runs must agree."""

    def __init__(self) -> None:
        super().__init__(None, "pixelwise test model", torch.device("cpu"))
        self.input_shapes: list[tuple[int, ...]] = []

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.input_shapes.append(tuple(image.shape))
        return 1.0 - image * (1 - mask) * 0.5


def _case(height: int = 600, width: int = 700) -> tuple[np.ndarray, np.ndarray]:
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[100:450, 150:600] = 255
    return image, mask


def test_subimages_are_256_and_agree_with_whole_image_for_a_pixelwise_model() -> None:
    image, mask = _case()
    model = PixelwiseModel()
    result = InpaintEngine(model).inpaint(image, mask, InpaintOptions(strategy="subimage", margin=32))
    assert model.input_shapes and all(shape[-2:] == (256, 256) for shape in model.input_shapes)
    whole = InpaintEngine(PixelwiseModel()).inpaint(image, mask, InpaintOptions(strategy="whole"))
    assert np.array_equal(result, whole)
    assert np.array_equal(result[mask == 0], image[mask == 0])


def test_sub_images_without_hole_pixels_are_not_run() -> None:
    image = np.zeros((512, 512, 3), np.uint8)
    mask = np.zeros((512, 512), np.uint8)
    mask[0::2, 0::2] = 255  # every hole pixel falls into sub-image (0, 0) of a 2 x 2 split
    model = PixelwiseModel()
    InpaintEngine(model).inpaint(image, mask, InpaintOptions(strategy="subimage", margin=0))
    assert len(model.input_shapes) == 1


def test_small_crops_run_directly() -> None:
    image, mask = _case(200, 220)
    model = PixelwiseModel()
    InpaintEngine(model).inpaint(image, mask, InpaintOptions(strategy="subimage", margin=300))
    assert len(model.input_shapes) == 1 and model.input_shapes[0][-2:] == (200, 224)
