"""Training data: listing, robust loading, the recipe's augmentations, the dataset and seeding."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from lama_training.data import (
    AugmentConfig, DataError, InpaintingTrainDataset, UnreadableImage, brightness_contrast, clahe,
    get_augment_preset, list_images, load_rgb, plan_geometry, random_geometry, random_photometric, resample,
    shift_hsv, source_coordinates, worker_init_fn,
)
from lama_training.data.geometry import affine_matrix, apply_projective, homography, optical_source
from lama_training.masks import MaskConfig

NONE = get_augment_preset("none")


def gradient_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image with some texture: every pixel different, so crops are traceable."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    return np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def image_dir(tmp_path):
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(gradient_image(300, 400, 1)).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(gradient_image(260, 260, 2)).save(tmp_path / "sub" / "b.PNG")
    Image.fromarray(gradient_image(280, 350, 3)).save(tmp_path / "sub" / "deeper" / "c.webp")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_list_images_is_recursive_sorted_and_case_insensitive(image_dir):
    names = [p.relative_to(image_dir).as_posix() for p in list_images(image_dir)]
    assert names == ["a.jpg", "sub/b.PNG", "sub/deeper/c.webp"]


def test_missing_or_empty_folders_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        list_images(tmp_path / "nope")
    with pytest.raises(DataError, match="no images"):
        list_images(tmp_path)


def test_load_rgb_resizes_the_shorter_side_and_converts_modes(tmp_path):
    Image.fromarray(gradient_image(200, 300)).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(gradient_image(1200, 900)).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(gradient_image(2048, 1536)).save(tmp_path / "big.jpg")
    grey = load_rgb(tmp_path / "grey.png", resize_to=512)
    assert grey.shape == (512, 768, 3) and grey.dtype == np.uint8
    assert load_rgb(tmp_path / "rgba.png", resize_to=512).shape == (683, 512, 3)
    assert load_rgb(tmp_path / "big.jpg", resize_to=512).shape == (683, 512, 3)  # JPEG draft + resize
    assert load_rgb(tmp_path / "grey.png").shape == (200, 300, 3)  # resize_to 0 keeps the size


def test_corrupt_truncated_and_tiny_files_are_unreadable(tmp_path):
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8 definitely not a jpeg")
    Image.fromarray(gradient_image(300, 300)).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(gradient_image(20, 40)).save(tmp_path / "tiny.png")
    for name in ("junk.jpg", "cut.jpg"):
        with pytest.raises(UnreadableImage, match="cannot read"):
            load_rgb(tmp_path / name, resize_to=256)
    with pytest.raises(UnreadableImage, match="smaller than 64"):
        load_rgb(tmp_path / "tiny.png", min_size=64)


def test_dataset_items_have_the_contract_shapes_and_ranges(image_dir):
    dataset = InpaintingTrainDataset(image_dir, crop_size=128)
    np.random.seed(0)
    for index in range(len(dataset)):
        item = dataset[index]
        assert set(item) == {"image", "mask"}
        assert item["image"].shape == (3, 128, 128) and item["image"].dtype == torch.float32
        assert item["mask"].shape == (1, 128, 128) and item["mask"].dtype == torch.float32
        assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
        assert set(torch.unique(item["mask"]).tolist()) <= {0.0, 1.0}
        assert float(item["mask"].mean()) > 0


def test_corrupt_and_tiny_files_are_skipped_with_a_warning(image_dir, caplog):
    (image_dir / "broken.jpg").write_bytes(b"garbage")
    Image.fromarray(gradient_image(30, 30)).save(image_dir / "small.png")
    dataset = InpaintingTrainDataset(image_dir, crop_size=64)
    broken = [i for i, p in enumerate(dataset.files) if p.name in ("broken.jpg", "small.png")]
    np.random.seed(1)
    with caplog.at_level(logging.WARNING, logger="lama_training.data.dataset"):
        items = [dataset[i] for i in range(len(dataset))] + [dataset[i] for i in broken]
    assert all(item["image"].shape == (3, 64, 64) for item in items)
    assert dataset.skipped == set(broken)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one warning per bad file, however often it is asked for
    assert any("broken.jpg" in w for w in warnings) and any("small.png" in w for w in warnings)


def test_repeat_lengthens_the_epoch_with_fresh_crops_of_the_same_files(image_dir):
    once = InpaintingTrainDataset(image_dir, crop_size=64)
    dataset = InpaintingTrainDataset(image_dir, crop_size=64, repeat=4)
    assert len(dataset) == 4 * len(once) == 12
    np.random.seed(2)
    items = [dataset[i] for i in range(len(dataset))]
    assert all(item["image"].shape == (3, 64, 64) for item in items)
    # index 0 and 3 read the same file (a.jpg) but draw their own crop and mask
    assert not torch.equal(items[0]["image"], items[3]["image"])
    with pytest.raises(DataError, match="repeat"):
        InpaintingTrainDataset(image_dir, crop_size=64, repeat=0)


def test_resize_to_max_draws_each_sample_s_scale_between_the_two_sides(image_dir, monkeypatch):
    augment = AugmentConfig(**{**NONE.to_dict(), "resize_to": 100, "resize_to_max": 250})
    dataset = InpaintingTrainDataset(image_dir, crop_size=64, augment=augment)
    sides = [dataset.shorter_side(np.random.default_rng(seed)) for seed in range(400)]
    assert min(sides) >= 100 and max(sides) <= 250
    assert min(sides) < 110 and max(sides) > 235  # the whole range is used
    assert np.median(sides) < 175  # log-uniform: the median is the geometric mean (158), not 175
    loaded = []
    monkeypatch.setattr("lama_training.data.dataset.load_rgb",
                        lambda path, side, min_size: loaded.append(side) or gradient_image(side, side))
    np.random.seed(0)
    for index in range(3):
        dataset[index]
    assert len(set(loaded)) == 3 and all(100 <= side <= 250 for side in loaded)
    fixed = InpaintingTrainDataset(image_dir, crop_size=64, augment=NONE)
    assert fixed.shorter_side(np.random.default_rng(0)) == NONE.resize_to


def test_a_folder_without_readable_images_is_a_clear_error(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b.png").write_bytes(b"y")
    dataset = InpaintingTrainDataset(tmp_path, crop_size=64)
    with pytest.raises(DataError, match="no readable image"):
        dataset[0]


def test_same_global_seed_same_sample_different_seed_different_sample(image_dir):
    dataset = InpaintingTrainDataset(image_dir, crop_size=96)
    np.random.seed(5)
    first = dataset[1]
    np.random.seed(5)
    again = dataset[1]
    np.random.seed(6)
    other = dataset[1]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])
    assert not torch.equal(first["image"], other["image"])


def test_workers_and_ranks_draw_different_samples_reproducibly(image_dir, monkeypatch):
    dataset = InpaintingTrainDataset(image_dir, crop_size=64, mask=MaskConfig())

    def samples(rank: int) -> list[torch.Tensor]:
        monkeypatch.setenv("RANK", str(rank))
        # every worker gets the same file: any difference comes from the seeds
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, [0] * 4), batch_size=1,
                                             num_workers=2, worker_init_fn=worker_init_fn,
                                             generator=torch.Generator().manual_seed(11))
        # image and mask together (a big-lama mask can cover a whole 64 px crop, so masks alone can tie)
        return [torch.cat([batch["image"][0], batch["mask"][0]]) for batch in loader]

    rank0, rank0_again, rank1 = samples(0), samples(0), samples(1)
    assert all(torch.equal(a, b) for a, b in zip(rank0, rank0_again))
    assert not torch.equal(rank0[0], rank0[1])  # worker 0 vs worker 1
    assert not any(torch.equal(a, b) for a, b in zip(rank0, rank1))


def test_without_augmentation_a_crop_is_an_exact_window_of_the_resized_image():
    image = gradient_image(80, 120)
    config = AugmentConfig(resize_to=0, flip_proba=0, perspective_proba=0, affine_proba=0, optical_proba=0)
    plan = plan_geometry(80, 120, 64, config, np.random.default_rng(3))
    crop = resample(image, *source_coordinates(plan))
    assert np.array_equal(crop, image[plan.crop_top:plan.crop_top + 64, plan.crop_left:plan.crop_left + 64])
    plan.flip = True
    flipped = resample(image, *source_coordinates(plan))
    assert np.array_equal(flipped, crop[:, ::-1])


def test_small_images_are_mirror_padded_to_the_crop_size():
    image = gradient_image(40, 50)
    crop = random_geometry(image, 64, NONE, np.random.default_rng(0))
    assert crop.shape == (64, 64, 3)
    # 12 rows of padding on top (centred): row 12 is the image's first row, row 11 mirrors row 1
    assert np.array_equal(crop[12, 7:57], image[0]) and np.array_equal(crop[11, 7:57], image[1])


@pytest.mark.parametrize("step", ["perspective", "affine", "optical", "flip"])
def test_each_geometric_step_follows_its_probability(step):
    on = AugmentConfig(**{f"{s}_proba": float(s == step) for s in ("perspective", "affine", "optical", "flip")})
    off = AugmentConfig(**{f"{s}_proba": 0.0 for s in ("perspective", "affine", "optical", "flip")})
    attribute = {"perspective": "perspective", "affine": "affine", "optical": "optical_k", "flip": "flip"}[step]
    rng = np.random.default_rng(0)

    def applied(config):
        value = getattr(plan_geometry(100, 100, 64, config, rng), attribute)
        return value is not None and value is not False

    assert all(applied(on) for _ in range(20))
    assert not any(applied(off) for _ in range(20))


def test_homography_maps_the_four_points():
    src = np.array([[0, 0], [99, 0], [99, 79], [0, 79]], float)
    dst = np.array([[3, 2], [95, 5], [90, 77], [1, 70]], float)
    x, y = apply_projective(homography(src, dst), src[:, 0], src[:, 1])
    np.testing.assert_allclose(np.stack([x, y], 1), dst, atol=1e-9)


def test_perspective_corners_move_inwards_by_the_configured_scale():
    config = AugmentConfig(perspective_proba=1.0, perspective_scale=0.06)
    for seed in range(20):
        plan = plan_geometry(200, 300, 64, config, np.random.default_rng(seed))
        corners = np.array([[0, 0], [299, 0], [299, 199], [0, 199]], float)
        x, y = apply_projective(plan.perspective, corners[:, 0], corners[:, 1])
        inward = np.stack([x, y], 1) - corners
        assert np.all(inward * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) >= -1e-9)
        assert np.abs(inward).max() <= 0.32 * 299 + 1e-9


def test_affine_matrix_scales_and_rotates_about_the_centre():
    matrix = affine_matrix(101, 101, 2.0, 2.0, 90.0, 0.0, 0.0)
    # output pixel 20 px right of the centre comes from 10 px above it (inverse of x2 and +90 deg)
    x, y = apply_projective(matrix, np.array([70.0, 50.0]), np.array([50.0, 50.0]))
    np.testing.assert_allclose([x[0], y[0]], [50.0, 40.0], atol=1e-9)
    np.testing.assert_allclose([x[1], y[1]], [50.0, 50.0], atol=1e-9)
    sheared = affine_matrix(101, 101, 1.0, 1.0, 0.0, 45.0, 0.0)
    x, y = apply_projective(sheared, np.array([50.0]), np.array([60.0]))
    np.testing.assert_allclose([x[0], y[0]], [40.0, 60.0], atol=1e-9)


def test_affine_ranges_are_read_from_the_config():
    config = AugmentConfig(affine_proba=1.0, scale_min=2.0, scale_max=2.0, rotate_degrees=0.0, shear_degrees=0.0)
    plan = plan_geometry(100, 100, 64, config, np.random.default_rng(0))
    np.testing.assert_allclose(plan.affine[:2, :2], np.eye(2) / 2.0)


def test_optical_distortion_is_radial_and_zero_at_the_centre():
    x, y = optical_source(np.array([100.0, 190.0]), np.array([50.0, 50.0]), 100, 200, 0.05)
    assert (x[0], y[0]) == (100.0, 50.0)
    assert x[1] > 190.0 and y[1] == 50.0  # k > 0 samples further out (barrel)
    limited = AugmentConfig(optical_proba=1.0, optical_distort_limit=0.01)
    ks = [plan_geometry(64, 64, 32, limited, np.random.default_rng(s)).optical_k for s in range(50)]
    assert max(abs(k) for k in ks) <= 0.01 and len(set(ks)) == 50


def test_brightness_contrast_known_values():
    image = np.array([[[0, 100, 200]]], np.uint8)
    assert brightness_contrast(image, 1.0, 0.1).tolist() == [[[26, 126, 226]]]
    assert brightness_contrast(image, 1.2, 0.0).tolist() == [[[0, 120, 240]]]
    assert brightness_contrast(image, 2.0, 0.0).tolist() == [[[0, 200, 255]]]


def test_hsv_shifts_change_hue_saturation_and_value():
    image = gradient_image(32, 32)
    unchanged = shift_hsv(image, 0.0, 0.0, 0.0)
    # OpenCV's 8-bit hue has 2-degree steps: a saturated colour can move by 255 * 2 / 60 / 2 ~ 4.3
    # levels, plus rounding, on the round trip through HSV
    assert np.abs(unchanged.astype(int) - image).max() <= 6
    brighter = shift_hsv(image, 0.0, 0.0, 20.0)
    assert brighter.max(axis=-1).astype(int).mean() > image.max(axis=-1).astype(int).mean() + 15
    grey = shift_hsv(image, 0.0, -255.0, 0.0)
    assert np.abs(grey.astype(int) - grey[..., :1]).max() <= 1
    hue = shift_hsv(image, 30.0, 0.0, 0.0)
    assert np.abs(hue.astype(int) - image).mean() > 10


def test_clahe_raises_the_contrast_of_a_flat_image_more_with_a_higher_clip_limit():
    noise = np.random.default_rng(0).normal(0, 3, (256, 256, 1))
    flat = np.repeat(np.clip(120 + noise, 0, 255).astype(np.uint8), 3, axis=-1)  # grey, std 3
    low, high = clahe(flat, 1.0).std(), clahe(flat, 4.0).std()
    assert 1.5 * flat.std() < low and 1.5 * low < high  # measured: 3.0 -> 6.0 (clip 1) -> 13.8 (clip 4)


def test_photometric_steps_follow_their_probabilities():
    image = gradient_image(48, 48)
    untouched = AugmentConfig(clahe_proba=0.0, brightness_contrast_proba=0.0, hsv_proba=0.0)
    assert np.array_equal(random_photometric(image, untouched, np.random.default_rng(0)), image)
    for name in ("clahe_proba", "brightness_contrast_proba", "hsv_proba"):
        config = AugmentConfig(**{"clahe_proba": 0.0, "brightness_contrast_proba": 0.0, "hsv_proba": 0.0, name: 1.0})
        assert not np.array_equal(random_photometric(image, config, np.random.default_rng(1)), image), name


def test_colour_ranges_are_read_from_the_config():
    image = gradient_image(48, 48)
    config = AugmentConfig(clahe_proba=0.0, brightness_contrast_proba=1.0, brightness_limit=0.0, contrast_limit=0.0,
                           hsv_proba=1.0, hue_shift=0.0, saturation_shift=0.0, value_shift=0.0)
    # zero ranges: only the 8-bit HSV round trip remains (see test_hsv_shifts_change_hue_saturation_and_value)
    assert np.abs(random_photometric(image, config, np.random.default_rng(0)).astype(int) - image).max() <= 6


@pytest.mark.parametrize("bad", [
    dict(resize_to=4), dict(min_image_size=0), dict(flip_proba=1.5), dict(scale_min=1.5, scale_max=1.0),
    dict(rotate_degrees=-1), dict(perspective_scale=0.3), dict(optical_distort_limit=0.6), dict(clahe_clip_limit=0.5),
    dict(resize_to=256, resize_to_max=128), dict(resize_to=0, resize_to_max=512),
])
def test_invalid_augment_configs_are_rejected(bad):
    with pytest.raises(ValueError):
        AugmentConfig(**bad)


def test_presets():
    assert get_augment_preset("distortions") == AugmentConfig()
    assert NONE.flip_proba == 0 and NONE.affine_proba == 0 and NONE.hsv_proba == 0
    with pytest.raises(ValueError, match="distortions"):
        get_augment_preset("heavy")


def test_the_default_recipe_changes_geometry_and_colour_of_real_photographs():
    skimage_data = pytest.importorskip("skimage.data")
    photo = skimage_data.astronaut()  # 512 x 512: no resize needed
    rng = np.random.default_rng(0)

    def is_window(crop: np.ndarray) -> bool:
        """The crop is a verbatim 256 x 256 window of the photo."""
        tops, lefts = np.nonzero(np.all(photo[:257, :257] == crop[0, 0], axis=-1))
        return any(np.array_equal(crop, photo[t:t + 256, l:l + 256]) for t, l in zip(tops, lefts))

    plain = [random_geometry(photo, 256, NONE, rng) for _ in range(8)]
    augmented = [random_photometric(random_geometry(photo, 256, AugmentConfig(), rng), AugmentConfig(), rng)
                 for _ in range(8)]
    assert all(is_window(crop) for crop in plain)
    # a crop stays a window only if none of the 7 steps with p = 0.5 ran: 1/128 per crop
    assert not any(is_window(crop) for crop in augmented)


def test_mask_mixture_draws_thin_masks_as_often_as_asked(image_dir):
    """A 50% thin-stroke mixture: about half the masks come from the thin policy (narrow strokes,
    many of them); without a mixture the samples are unchanged (no extra random draw)."""
    from lama_training.masks import mask_width, parse_mask_mixture

    plain = InpaintingTrainDataset(image_dir, crop_size=128, augment=NONE)
    mixed = InpaintingTrainDataset(image_dir, crop_size=128, augment=NONE,
                                   mask_mixture=parse_mask_mixture("thin-256:0.5", 128))
    sources = [mixed.mask_source(np.random.default_rng(seed)) for seed in range(400)]
    thin_share = np.mean([source is not mixed.mask_generator for source in sources])
    assert 0.42 < thin_share < 0.58
    widths = {"thin": [], "plain": []}
    for seed in range(60):
        rng = np.random.default_rng(seed)
        source = mixed.mask_source(rng)
        mask = source.sample(128, 128, rng)
        widths["plain" if source is mixed.mask_generator else "thin"].append(mask_width(mask))
    assert np.median(widths["thin"]) < 0.5 * np.median(widths["plain"])
    np.random.seed(3)
    masks = [mixed[index]["mask"][0].numpy() for index in range(40)]
    assert sum(mask_width(mask) < 8 for mask in masks) >= 12  # the dataset really serves thin strokes
    np.random.seed(4)
    before = plain[0]
    np.random.seed(4)
    again = InpaintingTrainDataset(image_dir, crop_size=128, augment=NONE, mask_mixture=[])[0]
    assert torch.equal(before["mask"], again["mask"]) and torch.equal(before["image"], again["image"])
    with pytest.raises(DataError, match="add up"):
        InpaintingTrainDataset(image_dir, crop_size=128, mask_mixture=parse_mask_mixture("thin-256:0.6", 128) * 2)
