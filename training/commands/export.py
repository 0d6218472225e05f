"""`lama-train export`: a training checkpoint's generator -> the backend's safetensors weights file."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..trainer.checkpoint import CheckpointError
from ..trainer.export import generator_from_checkpoint
from ..utils.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export the generator of a training checkpoint for lama-backend",
        description="Write the generator of a lama-train checkpoint (a .pt file or a run directory, which "
                    "means its checkpoints/last.pt) to one .safetensors file that `lama-backend serve "
                    "--weights FILE` loads. The generator config and provenance travel inside the file.")
    parser.add_argument("checkpoint", type=Path, help="checkpoint .pt file or run directory")
    parser.add_argument("output", type=Path, help="destination .safetensors file")
    parser.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    parser.set_defaults(func=run)


def export_checkpoint(checkpoint: Path, output: Path, half: bool = False) -> Path:
    """Used by `export` and at the end of `train`."""
    import torch
    from lama_backend.weights import save_weights

    try:
        generator, config, info = generator_from_checkpoint(checkpoint)
    except CheckpointError as exc:
        raise CommandError(str(exc)) from None
    if output.suffix != ".safetensors":
        raise CommandError(f"{output}: the exported file must end in .safetensors")
    return save_weights(generator, config.generator, output, preset=config.generator_preset(),
                        provenance={"tool": "lama-train", "checkpoint": str(checkpoint), "step": info["step"],
                                    "config_name": config.name},
                        dtype=torch.float16 if half else torch.float32)


def run(args: argparse.Namespace) -> int:
    path = export_checkpoint(args.checkpoint, args.output, args.half)
    print(f"exported {args.checkpoint} -> {path}")
    return 0
