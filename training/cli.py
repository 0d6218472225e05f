"""Entry point of `lama-train`; the subcommands live in `lama_training.commands`."""
from __future__ import annotations

import sys
from typing import Sequence

from . import __version__, commands
from .utils.cli import build_parser, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("lama-train", "Train, evaluate and export LaMa inpainting models", commands, __version__)
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
