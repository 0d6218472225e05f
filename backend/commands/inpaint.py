"""`lama-backend inpaint`: fill the masked parts of one image, or of every image in a folder.

    lama-backend inpaint IMAGE MASK -o OUT
    lama-backend inpaint IMAGES_DIR MASKS_DIR -o OUT_DIR

Folder pairing: for every image in IMAGES_DIR (.png .jpg .jpeg .tif .tiff .webp), its mask is the
file in MASKS_DIR whose name without extension is the image's (`cat.png` <- `cat.png`,
`cat.jpg`...) or the image's plus `_mask` (`cat_mask.png`). When both folders are the same, only
`<name>_mask` files are masks. Zero or several candidates for an image is an error, found before
anything is processed. Results keep the image's file name and type, in OUT_DIR.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lama_training.utils.cli import CommandError

from ..engine.options import STRATEGIES

from ._image_files import (LOSSY_FORMATS, SUPPORTED_SUFFIXES, LoadedImage, check_writable, read_image, read_mask,
                           write_image)

if TYPE_CHECKING:  # torch and the engine load only when a command runs, not for `--help`
    from lama_backend.engine import InpaintEngine, InpaintOptions

log = logging.getLogger("lama_backend.inpaint")
MASK_SUFFIX = "_mask"


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inpaint", help="inpaint an image (or a folder of images) where its mask is non-zero",
        description="Fill the non-zero parts of MASK in IMAGE, or pair IMAGES_DIR with MASKS_DIR by file name "
                    "(mask named like the image, or <name>_mask). Pixels outside the (grown) mask are kept exactly.")
    parser.add_argument("image", type=Path, metavar="IMAGE", help="image file, or a folder of images")
    parser.add_argument("mask", type=Path, metavar="MASK", help="mask file (non-zero = hole), or a folder of masks")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help="output file, or folder when IMAGE and MASK are folders")
    parser.add_argument("--weights", default=None, help="weights file or directory (default: discovered)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1")
    parser.add_argument("--grow", type=non_negative_int, default=0, help="dilate the mask by N px (default 0)")
    parser.add_argument("--feather", type=non_negative_int, default=0,
                        help="blend the seam over N px inside the hole (default 0)")
    parser.add_argument("--margin", type=non_negative_int, default=128,
                        help="context in px around each masked region (crop strategy, default 128)")
    parser.add_argument("--strategy", choices=STRATEGIES, default="crop",
                        help="crop: one model run per masked region at full resolution; whole: one run on the "
                             "image; subimage: DeepGIN's strided 256x256 sub-images per region")
    parser.add_argument("--quality", choices=("fast", "refine"), default="fast",
                        help="fast: one network pass; refine: multiscale refinement for large holes at high "
                             "resolution (much slower)")
    parser.add_argument("--no-seamless", dest="seamless", action="store_false",
                        help="paste the network's fill as it is, without shifting it to meet the pixels "
                             "around the hole (default: seamless)")
    parser.add_argument("--max-memory", type=memory_size, default=None, metavar="SIZE", help=MAX_MEMORY_HELP)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help=PRECISION_HELP)
    parser.set_defaults(func=inpaint_command)


PRECISION_HELP = ("auto (default): bf16 on CPUs with AMX or AVX512-BF16, else fp32; bf16 (or fp16) on CUDA. "
                  "fp32 reproduces the plain float32 network (to float rounding, within 1e-4); bf16 is several "
                  "times faster (Fourier transforms stay fp32)")
MAX_MEMORY_HELP = ("memory budget for one pass of the network, e.g. 4G: weights, activations and image buffers; "
                   "the backend process itself needs about 0.3-0.6 GiB more (default: 60%% of free RAM, or of free "
                   "GPU memory). Large images are tiled to fit")


def memory_size(text: str) -> int:
    from lama_backend.acceleration.memory import parse_memory_size
    try:
        return parse_memory_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def same_file(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


def pair_folders(images_dir: Path, masks_dir: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs by the naming rule in the module docstring; CommandError if any is unclear."""
    shared = same_file(images_dir, masks_dir)
    masks = image_files(masks_dir)
    by_stem: dict[str, list[Path]] = {}
    for mask in masks:
        by_stem.setdefault(mask.stem, []).append(mask)
    images = image_files(images_dir)
    if shared:
        images = [p for p in images if not p.stem.endswith(MASK_SUFFIX)]
    if not images:
        raise CommandError(f"{images_dir}: no images ({', '.join(SUPPORTED_SUFFIXES)})")
    pairs: list[tuple[Path, Path]] = []
    missing: list[str] = []
    for image in images:
        candidates = by_stem.get(image.stem + MASK_SUFFIX, [])
        if not shared:
            candidates = by_stem.get(image.stem, []) + candidates
        if not candidates:
            missing.append(image.name)
        elif len(candidates) > 1:
            raise CommandError(f"{image}: several masks match ({', '.join(p.name for p in candidates)}); keep one")
        else:
            pairs.append((image, candidates[0]))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise CommandError(f"no mask in {masks_dir} for {len(missing)} image(s): {shown} "
                           f"(name a mask like its image, or <name>{MASK_SUFFIX})")
    return pairs


def load_pair(image_path: Path, mask_path: Path) -> tuple[LoadedImage, np.ndarray]:
    """Read and check one image/mask pair: same size, and something to inpaint."""
    image = read_image(image_path)
    mask = read_mask(mask_path)
    if mask_path.suffix.lower() in (".jpg", ".jpeg"):
        log.warning("%s: JPEG noise makes near-black pixels non-zero, so they count as hole; prefer PNG masks",
                    mask_path)
    height, width = image.pixels.shape[:2]
    if mask.shape != (height, width):
        raise CommandError(f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but {image_path} is {width}x{height}")
    if not mask.any():
        raise CommandError(f"{mask_path}: mask is empty (no non-zero pixel), nothing to inpaint")
    return image, mask


def inpaint_command(args: argparse.Namespace) -> int:
    folders = args.image.is_dir(), args.mask.is_dir()
    if folders == (True, True):
        jobs = plan_folder_jobs(args.image, args.mask, args.output)
    elif folders == (False, False):
        jobs = [plan_file_job(args.image, args.mask, args.output)]
    else:
        raise CommandError("IMAGE and MASK must both be files or both be folders")
    from lama_backend.engine import InpaintOptions
    options = InpaintOptions(grow=args.grow, feather=args.feather, margin=args.margin, strategy=args.strategy,
                             quality=args.quality, seamless=args.seamless)
    if folders == (False, False):
        # one pair: read and check it before the (slow) weights, so a bad file fails in milliseconds
        pair = load_pair(*jobs[0][:2])
        check_writable(jobs[0][2], pair[0].mode)
        engine = load_engine(args.weights, args.device, args.max_memory, args.precision)
        run_job(engine, options, jobs[0], pair)
        log.info("wrote %s", jobs[0][2])
        return 0
    engine = load_engine(args.weights, args.device, args.max_memory, args.precision)
    from tqdm import tqdm
    with tqdm(jobs, unit="image", file=sys.stderr, desc="inpaint") as bar:
        for job in bar:
            bar.set_postfix_str(job[0].name)
            run_job(engine, options, job, load_pair(*job[:2]))
    log.info("wrote %d images to %s", len(jobs), args.output)
    return 0


def plan_file_job(image: Path, mask: Path, output: Path) -> tuple[Path, Path, Path]:
    for source in (image, mask):
        if output.exists() and same_file(output, source):
            raise CommandError(f"{output}: refusing to overwrite an input; choose another output file")
    if output.is_dir():
        raise CommandError(f"{output} is a folder; give an output file name (or pass folders as IMAGE and MASK)")
    return image, mask, output


def plan_folder_jobs(images_dir: Path, masks_dir: Path, output_dir: Path) -> list[tuple[Path, Path, Path]]:
    if output_dir.exists() and not output_dir.is_dir():
        raise CommandError(f"{output_dir} is a file; with folders as IMAGE and MASK, -o must be a folder")
    for source in (images_dir, masks_dir):
        if output_dir.exists() and same_file(output_dir, source):
            raise CommandError(f"{output_dir}: refusing to write into an input folder; choose another output folder")
    return [(image, mask, output_dir / image.name) for image, mask in pair_folders(images_dir, masks_dir)]


def load_engine(weights: str | None, device: str, max_memory: int | None = None,
                precision: str = "auto") -> InpaintEngine:
    """Find and load the weights (WeightsError is already a one-line CommandError) and log which serve."""
    from lama_backend.acceleration import configure_model
    from lama_backend.engine import InpaintEngine
    from lama_backend.weights import discover_weights, load_model

    path = discover_weights(weights)
    model = load_model(path, device)
    try:
        configure_model(model, max_memory, precision)
    except ValueError as error:
        raise CommandError(str(error)) from None
    log.info("weights: %s (preset %s) on %s in %s, mirror average %d", model.source, model.preset or "custom",
             model.device, getattr(model, "precision", "fp32"), model.mirror_average)
    return InpaintEngine(model)


def run_job(engine: InpaintEngine, options: InpaintOptions, job: tuple[Path, Path, Path],
            pair: tuple[LoadedImage, np.ndarray]) -> None:
    import torch

    from lama_backend.engine import InpaintError

    image_path, mask_path, output = job
    image, mask = pair
    fmt = check_writable(output, image.mode)
    if fmt in LOSSY_FORMATS:
        log.warning("%s: %s is lossy; pixels outside the mask will not stay exact", output, fmt)
    try:
        result = engine.inpaint(image.pixels, mask, options)
    except InpaintError as exc:
        raise CommandError(f"{image_path}: {exc}") from None
    except torch.OutOfMemoryError:
        raise CommandError(f"{image_path}: out of memory; try --strategy crop with a smaller --margin, "
                           "or --device cpu") from None
    write_image(output, result, image.mode, image.icc_profile)
    log.debug("wrote %s", output)
