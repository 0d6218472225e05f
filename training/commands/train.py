"""`lama-train train`: train a preset (or a YAML config) from a folder of images.

The same module runs under torchrun: `torchrun --nproc_per_node N -m lama_training.train train ...`
(`lama_training.train` is this CLI) gives one process per GPU; batch sizes are per process.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..trainer.checkpoint import CheckpointError
from ..trainer.config import ConfigError, load_config, preset_names
from ..utils.cli import CommandError

LOG = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train or fine-tune a LaMa model",
        description="Train a LaMa generator with the paper's recipe. Presets: " + ", ".join(preset_names()) +
                    ". Any config field can be overridden: --set trainer.lr_g=1e-4 --set data.batch_size=8.")
    parser.add_argument("--config", default="big-lama", help="preset name or YAML file (default: big-lama)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (dotted path; repeatable)")
    parser.add_argument("--train-dir", type=Path, help="folder of training images (sets data.train_dir)")
    parser.add_argument("--eval-dir", type=Path, help="evaluation set from make-eval-set (sets data.eval_dir)")
    parser.add_argument("--run-dir", type=Path, required=True,
                        help="where checkpoints, samples, metrics.jsonl and the exported generator go")
    parser.add_argument("--resume", type=Path, help="continue from a checkpoint (.pt or run directory); "
                                                    "its architecture wins over the config")
    parser.add_argument("--init-from", type=Path, help="fine-tune from the official big-lama-with-discr "
                                                       "best.ckpt (generator, discriminator, loss_segm_pl)")
    parser.add_argument("--init-generator", type=Path,
                        help="start the generator from these weights (a safetensors file from `lama-train export`, "
                             "e.g. the bundled lama-small); the discriminator starts fresh")
    parser.add_argument("--dry-run", action="store_true", help="validate the config and data, print them, exit")
    parser.set_defaults(func=run)


def resolve_config(args: argparse.Namespace):
    overrides = list(args.overrides)
    if args.train_dir is not None:
        overrides.append(f"data.train_dir={args.train_dir}")
    if args.eval_dir is not None:
        overrides.append(f"data.eval_dir={args.eval_dir}")
    try:
        return load_config(args.config, overrides)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def read_official_checkpoint(path: Path):
    """The official Lightning checkpoint, read without running pickled code (backend's safe reader)."""
    from lama_backend.weights.checkpoint import read_checkpoint
    from lama_backend.weights.errors import WeightsError

    try:
        checkpoint = read_checkpoint(path)
    except WeightsError as exc:
        raise CommandError(str(exc)) from None
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise CommandError(f"{path}: no state_dict (expected the official big-lama-with-discr best.ckpt)")
    return state


def read_generator_weights(path: Path) -> dict:
    """The generator state of an exported safetensors file (float32), for `--init-generator`."""
    from lama_backend.weights.errors import WeightsError
    from lama_backend.weights.format import load_safetensors_generator

    try:
        generator, metadata = load_safetensors_generator(path)
    except WeightsError as exc:
        raise CommandError(str(exc)) from None
    if metadata.get("family", "lama") != "lama":
        raise CommandError(f"{path}: a {metadata['family']} generator cannot start a LaMa run")
    return {key: value.float() for key, value in generator.state_dict().items()}


def run(args: argparse.Namespace) -> int:
    import yaml

    from ..trainer.data_sources import DataError, build_sources
    from .export import export_checkpoint

    config = resolve_config(args)
    starts = [name for name, value in (("--resume", args.resume), ("--init-from", args.init_from),
                                       ("--init-generator", args.init_generator)) if value is not None]
    if len(starts) > 1:
        raise CommandError(f"{' and '.join(starts)} exclude each other (each sets the starting weights)")
    if config.family == "deepgin":  # its own phases (L1 warm-up, then adversarial); same data and checkpoints
        if args.init_from is not None or args.init_generator is not None:
            raise CommandError("--init-from / --init-generator start LaMa generators; they cannot start a DeepGIN run")
        from ..deepgin.trainer import train
    else:
        from ..trainer.loop import train
    if not config.data.train_dir:
        raise CommandError("no training images: give --train-dir DIR (or data.train_dir in the config)")
    try:
        sources = build_sources(config)
    except DataError as exc:
        raise CommandError(str(exc)) from None
    if args.dry_run:
        print(yaml.safe_dump(config.to_dict(), sort_keys=False), end="")
        print(f"# {len(sources.train_dataset)} training images, "
              f"{sources.eval_size} evaluation images")
        return 0
    init_state = read_official_checkpoint(args.init_from) if args.init_from is not None else None
    generator_state = read_generator_weights(args.init_generator) if args.init_generator is not None else None
    try:
        family_arguments = {} if config.family == "deepgin" else {
            "init_state": init_state, "init_generator": generator_state,
            "init_source": str(args.init_from or args.init_generator or "")}
        result = train(config, args.run_dir, sources.train_dataset, evaluate=sources.evaluate,
                       sample_batch=sources.sample_batch, resume=args.resume, worker_init_fn=sources.worker_init_fn,
                       **family_arguments)
    except (CheckpointError, ValueError, FileNotFoundError) as exc:
        raise CommandError(" ".join(str(exc).split())) from None
    if result.last_checkpoint is not None:  # rank 0 only
        exported = export_checkpoint(result.last_checkpoint, args.run_dir / "generator.safetensors")
        LOG.info("step %d: exported the generator to %s", result.step, exported)
    return 0
