"""Entry point of `lama-backend`; the subcommands live in `lama_backend.commands`."""
from __future__ import annotations

import sys
from typing import Sequence

from .openmp_env import shorten_openmp_spin

shorten_openmp_spin()  # before anything below loads torch

from lama_training.utils.cli import build_parser, run  # noqa: E402

from . import __version__, commands  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser("lama-backend", "LaMa inpainting backend for Krita and GIMP", commands, __version__)
    return run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
