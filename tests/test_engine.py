"""The inference engine: dtypes, alpha, padding, grow/feather, crops, compositing, progress, cancel.

Most tests use `ScriptedModel`, a fake `InpaintModel` that records what it is given and returns a
chosen prediction, so expected pixels can be computed exactly; `tiny_model` is the real FFC
generator (ngf 8, one block) for the end-to-end checks.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from lama_backend.engine import Cancelled, InpaintEngine, InpaintError, InpaintOptions
from lama_backend.engine.engine import MIN_MODEL_SIDE, hole_weights
from lama_backend.models import GeneratorModel, InpaintModel
from tests.helpers.tiny_model import make_tiny_generator

# these tests check how the model's fill is pasted, so they take it as it is (no seam matching,
# which tests/test_seams.py covers)
RAW_FILL = InpaintOptions(seamless=False)


class ScriptedModel(InpaintModel):
    """Returns `value` everywhere (or `fill(image)`), recording inputs and the autograd state."""

    def __init__(self, value: float = 0.5) -> None:
        super().__init__(None, "scripted test model", torch.device("cpu"))
        self.value = value
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []
        self.grad_enabled: list[bool] = []

    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.calls.append((image[0].permute(1, 2, 0).numpy().copy(), mask[0, 0].numpy().copy()))
        self.grad_enabled.append(torch.is_grad_enabled())
        return torch.full_like(image, self.value)


@pytest.fixture(scope="module")
def tiny_model() -> GeneratorModel:
    return GeneratorModel(make_tiny_generator(seed=0), None, "tiny test generator", torch.device("cpu"))


def random_image(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype is np.float32:
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


def two_blob_mask(height: int = 120, width: int = 160) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    mask[10:25, 12:30] = 255
    mask[90:110, 120:150] = 1
    return mask


# --- input checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("image, message", [
    (np.zeros((8, 8), np.uint8), "H x W x 3"),
    (np.zeros((8, 8, 2), np.uint8), "H x W x 3"),
    (np.zeros((8, 8, 3), np.int32), "dtype"),
    (np.zeros((8, 8, 3), np.float64), "dtype"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
    ([[0]], "numpy array"),
])
def test_bad_images_are_clear_errors(image, message: str) -> None:
    with pytest.raises(InpaintError, match=message):
        InpaintEngine(ScriptedModel()).inpaint(image, np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize("mask, message", [
    (np.zeros((8, 9), np.uint8), "9x8 but the image is 8x8"),
    (np.zeros((8, 8, 3), np.uint8), "one channel"),
    (np.zeros((8, 8), np.int64), "dtype"),
])
def test_bad_masks_are_clear_errors(mask: np.ndarray, message: str) -> None:
    with pytest.raises(InpaintError, match=message):
        InpaintEngine(ScriptedModel()).inpaint(np.zeros((8, 8, 3), np.uint8), mask)


@pytest.mark.parametrize("changes", [{"grow": -1}, {"feather": 1.5}, {"margin": True}, {"strategy": "tiles"},
                                     {"output": "mask"}, {"soft_mask": 1}])
def test_bad_options_are_clear_errors(changes: dict) -> None:
    with pytest.raises(InpaintError):
        InpaintOptions(**changes)


def test_numpy_integers_are_accepted_as_options() -> None:
    assert InpaintOptions(grow=np.int64(3)).grow == 3


def test_a_mask_with_a_channel_axis_is_accepted() -> None:
    image = random_image((20, 20, 3), np.uint8)
    mask = np.zeros((20, 20, 1), np.uint8)
    mask[5:8, 5:8] = 1
    out = InpaintEngine(ScriptedModel(0.0)).inpaint(image, mask, RAW_FILL)
    assert (out[5:8, 5:8] == 0).all() and np.array_equal(out[mask[..., 0] == 0], image[mask[..., 0] == 0])


# --- dtypes and alpha ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, expected", [(np.uint8, 128), (np.uint16, 32768), (np.float32, np.float32(0.5))])
def test_hole_pixels_get_the_rounded_prediction_in_the_input_dtype(dtype: type, expected) -> None:
    # 0.5 x 255 = 127.5 and 0.5 x 65535 = 32767.5: both round half to even upwards here.
    image = random_image((40, 50, 4), dtype)
    mask = np.zeros((40, 50), np.uint8)
    mask[10:20, 10:30] = 7
    out = InpaintEngine(ScriptedModel(0.5)).inpaint(image, mask, RAW_FILL)
    hole = mask != 0
    assert out.dtype == image.dtype and out.shape == image.shape
    assert (out[hole][:, :3] == expected).all()
    assert np.array_equal(out[hole][:, 3], image[hole][:, 3]), "alpha of hole pixels stays the input's"
    assert np.array_equal(out[~hole], image[~hole])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_predictions_outside_0_1_are_clipped_for_integer_outputs(dtype: type) -> None:
    image = random_image((16, 16, 3), dtype)
    mask = np.ones((16, 16), bool)
    assert (InpaintEngine(ScriptedModel(1.7)).inpaint(image, mask) == np.iinfo(dtype).max).all()
    assert (InpaintEngine(ScriptedModel(-0.3)).inpaint(image, mask) == 0).all()


def test_float_input_is_clipped_for_the_model_only() -> None:
    image = random_image((24, 24, 3), np.float32) * 3 - 1  # -1 .. 2
    image[0, 0] = [np.nan, np.inf, -np.inf]
    mask = np.zeros((24, 24), np.uint8)
    mask[8:16, 8:16] = 1
    model = ScriptedModel(0.25)
    out = InpaintEngine(model).inpaint(image, mask, InpaintOptions(strategy="whole", seamless=False))
    seen = model.calls[0][0][:24, :24]
    expected = np.clip(np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0), 0, 1)
    assert seen.min() >= 0 and seen.max() <= 1 and np.array_equal(seen, expected)
    assert np.array_equal(out[mask == 0], image[mask == 0], equal_nan=True)
    assert (out[mask != 0] == np.float32(0.25)).all()


def test_model_sees_rgb_not_alpha() -> None:
    image = random_image((32, 32, 4), np.uint8)
    mask = two_blob_mask(32, 32)
    model = ScriptedModel()
    InpaintEngine(model).inpaint(image, mask, InpaintOptions(strategy="whole"))
    assert model.calls[0][0].shape[2] == 3
    assert np.array_equal(model.calls[0][0], image[..., :3].astype(np.float32) / 255)


# --- padding ------------------------------------------------------------------------------------

def test_padding_is_symmetric_at_bottom_right_like_the_official_predictor() -> None:
    image = random_image((21, 30, 3), np.uint16)
    mask = np.zeros((21, 30), np.uint8)
    mask[3:6, 4:9] = 1
    model = ScriptedModel()
    InpaintEngine(model).inpaint(image, mask, InpaintOptions(strategy="whole"))
    seen_image, seen_mask = model.calls[0]
    assert seen_image.shape == (32, 32, 3)  # max(21, 30, MIN_MODEL_SIDE=32) rounded up to 8
    unit = image.astype(np.float32) / 65535
    # numpy "symmetric" repeats the edge: row 21 is row 20, row 22 is row 19, ...
    assert np.array_equal(seen_image, np.pad(unit, ((0, 11), (0, 2), (0, 0)), mode="symmetric"))
    assert np.array_equal(seen_image[21, :30], unit[20]) and np.array_equal(seen_image[22, :30], unit[19])
    assert np.array_equal(seen_image[:21, 30], unit[:, 29]) and np.array_equal(seen_image[:21, 31], unit[:, 28])
    assert np.array_equal(seen_mask, np.pad((mask != 0).astype(np.float32), ((0, 11), (0, 2)), mode="symmetric"))
    assert set(np.unique(seen_mask)) == {0.0, 1.0}


def test_sizes_already_a_multiple_are_not_padded() -> None:
    model = ScriptedModel()
    mask = np.zeros((40, 48), np.uint8)
    mask[1, 1] = 1
    InpaintEngine(model).inpaint(random_image((40, 48, 3), np.uint8), mask, InpaintOptions(strategy="whole"))
    assert model.calls[0][0].shape == (40, 48, 3)


def test_images_smaller_than_the_network_minimum_work(tiny_model: GeneratorModel) -> None:
    image = random_image((5, 7, 3), np.uint8)
    mask = np.zeros((5, 7), np.uint8)
    mask[2, 3] = 1
    out = InpaintEngine(tiny_model).inpaint(image, mask)
    assert out.shape == image.shape and np.array_equal(out[mask == 0], image[mask == 0])


# --- grow and feather ---------------------------------------------------------------------------

@pytest.mark.parametrize("grow", [1, 2, 5, 9])
def test_grow_is_a_euclidean_disk_dilation(grow: int) -> None:
    rng = np.random.default_rng(grow)
    mask = (rng.random((45, 60)) > 0.985).astype(np.uint8)
    grown = hole_weights(mask, InpaintOptions(grow=grow)) > 0
    within_reach = ndimage.distance_transform_edt(mask == 0) <= grow
    assert np.array_equal(grown, within_reach)


def test_grow_of_a_soft_mask_is_a_grey_dilation_with_a_disk() -> None:
    rng = np.random.default_rng(1)
    mask = np.where(rng.random((40, 50)) > 0.97, rng.integers(1, 256, (40, 50)), 0).astype(np.uint8)
    radius = 4
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disk = yy ** 2 + xx ** 2 <= radius ** 2
    expected = ndimage.grey_dilation(mask, footprint=disk, mode="constant", cval=0).astype(np.float32) / 255
    got = hole_weights(mask, InpaintOptions(grow=radius, soft_mask=True))
    assert np.allclose(got, expected, atol=1e-7)


def test_feather_ramp_rises_from_the_border_inside_the_hole_only() -> None:
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 1
    weight = hole_weights(mask, InpaintOptions(feather=4))
    assert (weight[mask == 0] == 0).all()
    # row 20 crosses the hole: distances to the known column 9 are 1, 2, 3, ... -> d / (4 + 1)
    assert np.allclose(weight[20, 10:16], [0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert weight[20, 29] == pytest.approx(0.2)
    assert (weight[15:25, 15:25] == 1).all()


def test_feather_does_not_treat_the_image_border_as_a_seam() -> None:
    mask = np.zeros((30, 30), np.uint8)
    mask[:, :12] = 1  # touches the left image border
    weight = hole_weights(mask, InpaintOptions(feather=3))
    assert (weight[:, 0] == 1).all() and weight[15, 11] == pytest.approx(0.25)


def test_feather_on_a_mask_covering_the_whole_image_is_full_weight() -> None:
    assert (hole_weights(np.ones((9, 9), np.uint8), InpaintOptions(feather=3)) == 1).all()


def test_feathered_hole_pixels_blend_prediction_and_original() -> None:
    image = np.zeros((40, 40, 3), np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 10:30] = 1
    options = InpaintOptions(feather=4, grow=2, seamless=False)
    weight = hole_weights(mask, options)
    out = InpaintEngine(ScriptedModel(1.0)).inpaint(image, mask, options)
    assert np.array_equal(out[..., 0], np.rint(weight.astype(np.float64) * 255).astype(np.uint8))
    assert out[8, 20, 0] > 0 and out[7, 20, 0] == 0, "grown by 2 px: row 8 is hole, row 7 is not"


# --- soft masks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mask_dtype, values, expected", [
    (np.uint8, [0, 51, 255], [0.0, 0.2, 1.0]),
    (np.uint16, [0, 13107, 65535], [0.0, 0.2, 1.0]),
    (np.float32, [-0.5, 0.2, 3.0], [0.0, 0.2, 1.0]),
    (np.bool_, [False, True, True], [0.0, 1.0, 1.0]),
])
def test_soft_mask_values_are_blend_weights(mask_dtype: type, values: list, expected: list) -> None:
    mask = np.array([values] * 3, dtype=mask_dtype)
    assert np.allclose(hole_weights(mask, InpaintOptions(soft_mask=True)), [expected] * 3, atol=1e-7)
    hard = hole_weights(mask, InpaintOptions())
    assert np.array_equal(hard, (mask != 0).astype(np.float32)), "without soft_mask any non-zero is a full hole"


def test_nan_in_a_float_mask_is_not_hole() -> None:
    mask = np.array([[np.nan, 0.5, 0.0]], np.float32)
    for soft in (False, True):
        assert (hole_weights(mask, InpaintOptions(soft_mask=soft)) > 0).tolist() == [[False, True, False]]


def test_soft_mask_is_multiplied_with_the_feather_ramp_and_blended() -> None:
    image = np.full((30, 30, 3), 200, np.uint8)
    mask = np.zeros((30, 30), np.uint8)
    mask[5:25, 5:25] = 128
    options = InpaintOptions(soft_mask=True, feather=2, seamless=False)
    weight = hole_weights(mask, options)
    ramp = hole_weights(mask, InpaintOptions(feather=2))
    assert np.allclose(weight, ramp * 128 / 255)
    out = InpaintEngine(ScriptedModel(0.0)).inpaint(image, mask, options)
    assert np.array_equal(out[..., 1], np.rint(200 * (1 - weight.astype(np.float64))).astype(np.uint8))


# --- layer output -------------------------------------------------------------------------------

def test_layer_output_is_prediction_with_weighted_alpha_and_zero_elsewhere() -> None:
    image = random_image((30, 30, 4), np.uint8)
    mask = np.zeros((30, 30), np.uint8)
    mask[5:25, 5:25] = 1
    options = InpaintOptions(output="layer", feather=3, seamless=False)
    weight = hole_weights(mask, options).astype(np.float64)
    layer = InpaintEngine(ScriptedModel(0.5)).inpaint(image, mask, options)
    assert layer.shape == (30, 30, 4) and layer.dtype == np.uint8
    assert (layer[mask == 0] == 0).all()
    assert (layer[mask != 0][:, :3] == 128).all()
    assert np.array_equal(layer[..., 3], np.rint(weight * image[..., 3]).astype(np.uint8))


def test_layer_of_an_rgb_image_is_rgba_with_full_alpha_in_the_hole() -> None:
    image = random_image((20, 20, 3), np.uint16)
    mask = np.zeros((20, 20), bool)
    mask[4:9, 4:9] = True
    layer = InpaintEngine(ScriptedModel(0.5)).inpaint(image, mask, InpaintOptions(output="layer"))
    assert layer.shape == (20, 20, 4) and layer.dtype == np.uint16
    assert (layer[mask][:, 3] == 65535).all() and (layer[~mask] == 0).all()


def test_layer_over_an_opaque_original_gives_the_composite() -> None:
    image = random_image((32, 32, 4), np.float32)
    image[..., 3] = 1.0
    mask = np.zeros((32, 32), np.uint8)
    mask[6:26, 6:26] = 200
    options = InpaintOptions(feather=5, soft_mask=True)
    engine = InpaintEngine(ScriptedModel(0.3))
    composite = engine.inpaint(image, mask, options)
    layer = engine.inpaint(image, mask, InpaintOptions(feather=5, soft_mask=True, output="layer"))
    alpha = layer[..., 3:4].astype(np.float64)
    over = layer[..., :3] * alpha + image[..., :3] * (1 - alpha)  # "over" onto an opaque backdrop
    # float32 storage of the blend on both paths: equal to float32 rounding
    assert np.allclose(over, composite[..., :3], atol=1e-6)


# --- crops --------------------------------------------------------------------------------------

def test_crop_strategy_runs_one_native_resolution_box_per_blob() -> None:
    model = ScriptedModel()
    image = random_image((120, 160, 3), np.uint8)
    InpaintEngine(model).inpaint(image, two_blob_mask(), InpaintOptions(margin=8))
    # half-open boxes: blob 1 rows 10:25, cols 12:30 + 8 -> 2:33 x 4:38 (31 x 34), widened to 32 rows
    # (2:34), padded to 32 x 40; blob 2 rows 90:110, cols 120:150 + 8 -> 82:118 x 112:158, padded to 40 x 48
    assert [call[0].shape for call in model.calls] == [(32, 40, 3), (40, 48, 3)]
    first = model.calls[0][0]
    assert np.array_equal(first[:32, :34], image[2:34, 4:38].astype(np.float32) / 255)


def test_crops_of_nearby_blobs_merge_into_one() -> None:
    model = ScriptedModel()
    InpaintEngine(model).inpaint(random_image((120, 160, 3), np.uint8), two_blob_mask(), InpaintOptions(margin=50))
    assert len(model.calls) == 1


def test_whole_strategy_runs_once_on_the_whole_image() -> None:
    model = ScriptedModel()
    InpaintEngine(model).inpaint(random_image((120, 160, 3), np.uint8), two_blob_mask(),
                                 InpaintOptions(strategy="whole", margin=0))
    assert [call[0].shape for call in model.calls] == [(120, 160, 3)]


@pytest.mark.parametrize("strategy", ["crop", "whole"])
def test_real_generator_fills_only_the_hole(tiny_model: GeneratorModel, strategy: str) -> None:
    image = random_image((120, 160, 4), np.uint8, seed=5)
    mask = two_blob_mask()
    out = InpaintEngine(tiny_model).inpaint(image, mask, InpaintOptions(strategy=strategy, margin=16))
    hole = mask != 0
    assert np.array_equal(out[~hole], image[~hole])
    assert np.array_equal(out[..., 3], image[..., 3])
    assert (out[hole][:, :3] != image[hole][:, :3]).mean() > 0.9, "random pixels are replaced by the prediction"


def test_crop_and_whole_agree_when_the_crop_is_the_whole_image(tiny_model: GeneratorModel) -> None:
    image = random_image((64, 64, 3), np.float32, seed=2)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 1
    engine = InpaintEngine(tiny_model)
    by_crop = engine.inpaint(image, mask, InpaintOptions(margin=64))
    whole = engine.inpaint(image, mask, InpaintOptions(strategy="whole"))
    assert np.array_equal(by_crop, whole)


# --- progress, cancel, autograd, empty masks ----------------------------------------------------

def test_progress_is_reported_per_crop() -> None:
    events: list[tuple[float, str]] = []
    InpaintEngine(ScriptedModel()).inpaint(random_image((120, 160, 3), np.uint8), two_blob_mask(),
                                           InpaintOptions(margin=8), progress=lambda f, s: events.append((f, s)))
    assert events == [(0.0, "inpainting region 1/2"), (0.5, "inpainting region 2/2"), (1.0, "done")]


def test_cancel_between_crops_raises_cancelled() -> None:
    model = ScriptedModel()
    with pytest.raises(Cancelled):
        InpaintEngine(model).inpaint(random_image((120, 160, 3), np.uint8), two_blob_mask(),
                                     InpaintOptions(margin=8), cancelled=lambda: len(model.calls) >= 1)
    assert len(model.calls) == 1


def test_no_autograd_during_inference() -> None:
    model = ScriptedModel()
    InpaintEngine(model).inpaint(random_image((20, 20, 3), np.uint8), np.ones((20, 20), np.uint8))
    assert model.grad_enabled == [False]


@pytest.mark.parametrize("output", ["composite", "layer"])
def test_an_empty_mask_changes_nothing_and_runs_no_model(output: str) -> None:
    model = ScriptedModel()
    image = random_image((20, 20, 4), np.uint16)
    events: list[tuple[float, str]] = []
    out = InpaintEngine(model).inpaint(image, np.zeros((20, 20), np.float32), InpaintOptions(output=output, grow=5),
                                       progress=lambda f, s: events.append((f, s)))
    assert model.calls == [] and events == [(1.0, "done")]
    assert np.array_equal(out, image if output == "composite" else np.zeros_like(image))
    assert out is not image


def test_a_model_returning_the_wrong_shape_is_an_inpaint_error() -> None:
    class Broken(ScriptedModel):
        def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return image[:, :, :8, :8]

    with pytest.raises(InpaintError, match="shape"):
        InpaintEngine(Broken()).inpaint(random_image((20, 20, 3), np.uint8), np.ones((20, 20), np.uint8))


def test_min_model_side_fits_the_generator(tiny_model: GeneratorModel) -> None:
    x = torch.rand(1, 3, MIN_MODEL_SIDE, MIN_MODEL_SIDE)
    assert tiny_model.predict(x, torch.ones(1, 1, MIN_MODEL_SIDE, MIN_MODEL_SIDE)).shape == x.shape
