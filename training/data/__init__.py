"""Training data: image folders, the recipe's augmentations, random masks, worker seeding."""
from .config import AUGMENT_PRESETS, AugmentConfig, get_augment_preset
from .dataset import MAX_REPLACEMENTS, InpaintingTrainDataset, worker_init_fn
from .geometry import plan_geometry, random_geometry, resample, source_coordinates
from .images import IMAGE_SUFFIXES, DataError, UnreadableImage, list_images, load_rgb
from .photometric import brightness_contrast, clahe, random_photometric, shift_hsv

__all__ = [
    "AUGMENT_PRESETS", "AugmentConfig", "get_augment_preset", "MAX_REPLACEMENTS", "InpaintingTrainDataset",
    "worker_init_fn", "plan_geometry", "random_geometry", "resample", "source_coordinates",
    "IMAGE_SUFFIXES", "DataError", "UnreadableImage", "list_images", "load_rgb", "brightness_contrast", "clahe",
    "random_photometric", "shift_hsv",
]
