"""`lama-train export`: a training checkpoint's generator -> the backend's safetensors weights file."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..trainer.checkpoint import CheckpointError
from ..trainer.export import averaged_generator
from ..utils.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export the generator of a training checkpoint for lama-backend",
        description="Write the generator of a lama-train checkpoint (a .pt file or a run directory, which "
                    "means its checkpoints/last.pt) to one .safetensors file that `lama-backend serve "
                    "--weights FILE` loads. The generator config and provenance travel inside the file.")
    parser.add_argument("checkpoint", type=Path, nargs="+",
                        help="checkpoint .pt file or run directory; several: their generators' weights are "
                             "averaged (checkpoints of one run or fine-tunes of one parent)")
    parser.add_argument("output", type=Path, help="destination .safetensors file")
    parser.add_argument("--half", action="store_true", help="store float16 weights (half the size)")
    parser.set_defaults(func=run)


def export_checkpoint(checkpoint: Path | list[Path], output: Path, half: bool = False) -> Path:
    """Used by `export` and at the end of `train`; a list of checkpoints is averaged."""
    import torch
    from lama_backend.weights import save_weights

    checkpoints = checkpoint if isinstance(checkpoint, list) else [checkpoint]
    if output.suffix != ".safetensors":
        raise CommandError(f"{output}: the exported file must end in .safetensors")
    try:
        generator, config, info = averaged_generator(checkpoints)
    except CheckpointError as exc:
        raise CommandError(str(exc)) from None
    provenance = {"tool": "lama-train", "checkpoint": str(checkpoints[0]), "step": info["step"],
                  "config_name": config.name}
    if len(checkpoints) > 1:
        provenance["averaged_checkpoints"] = [str(path) for path in checkpoints]
        provenance["averaged_steps"] = info["averaged_steps"]
    return save_weights(generator, config.generator, output, preset=config.generator_preset(),
                        provenance=provenance, dtype=torch.float16 if half else torch.float32)


def run(args: argparse.Namespace) -> int:
    path = export_checkpoint(list(args.checkpoint), args.output, args.half)
    sources = ", ".join(map(str, args.checkpoint))
    print(f"exported {sources} -> {path}" + (f" (mean of {len(args.checkpoint)})" if len(args.checkpoint) > 1 else ""))
    return 0
