"""`lama-train make-eval-set`: write a fixed evaluation set (crops + masks + index.json)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..utils.cli import CommandError

LOG = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-eval-set", help="write a fixed evaluation set from a folder of images",
        description="Resize each image's shorter side to --size, crop a random square, draw one mask per "
                    "policy (masks over --max-coverage are redrawn) and write PNGs plus index.json.")
    parser.add_argument("--images", type=Path, required=True, help="folder of images (searched recursively)")
    parser.add_argument("--out", type=Path, required=True, help="new or empty output folder")
    parser.add_argument("--size", type=int, default=256, help="crop size in px, a multiple of 8 (default 256)")
    parser.add_argument("--policy", default="thin,medium,thick",
                        help="comma-separated mask policies: thin, medium, thick (sized to --size) or full "
                             "names such as thick-512 (default: thin,medium,thick)")
    parser.add_argument("--count", type=int, default=100, help="items per policy (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--max-coverage", type=float, default=0.5,
                        help="largest hole fraction kept (default 0.5, as in the paper's evaluation)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.eval_set import EvalSetError, make_eval_set
    from ..data.images import DataError

    if args.seed < 0:
        raise CommandError(f"--seed must be >= 0, got {args.seed}")

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            LOG.info("%d / %d masks written", done, total)

    try:
        index = make_eval_set(args.images, args.out, size=args.size, policies=args.policy.split(","),
                              count=args.count, seed=args.seed, max_coverage=args.max_coverage, progress=progress)
    except (EvalSetError, DataError) as exc:
        raise CommandError(str(exc)) from None
    print(index)
    return 0
