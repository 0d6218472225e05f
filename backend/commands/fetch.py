"""`lama-backend fetch NAME`: download official weights into the cache, verified and unpacked."""
from __future__ import annotations

import argparse

from lama_training.utils.cli import CommandError

from lama_backend.weights.discovery import cache_dir, search_locations
from lama_backend.weights.fetch import DEFAULT_TIMEOUT, fetch
from lama_backend.weights.registry import REGISTRY


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fetch", help="download official LaMa weights into the cache",
        description="Download, verify and unpack a known weights file into $XDG_CACHE_HOME/lama-backend "
                    "(default ~/.cache/lama-backend), where `serve` and `inpaint` find it.")
    parser.add_argument("name", nargs="?", choices=sorted(REGISTRY), help="which weights (omit with --list)")
    parser.add_argument("--list", action="store_true", help="show the known weights and where weights are looked for")
    parser.add_argument("--url", default=None,
                        help="download from this URL (a mirror) or take this local file instead of the published one")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"network timeout in seconds (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--force", action="store_true", help="download again even if already installed")
    parser.set_defaults(func=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    if args.list:
        for entry in REGISTRY.values():
            print(f"{entry.name:<22} ~{entry.approx_size_mb} MB  {entry.description}\n{'':<22} {entry.url}")
        for label, path in search_locations():
            print(f"{label + ':':<22} {path}")
        return 0
    if args.name is None:
        raise CommandError(f"say which weights to fetch: {' or '.join(REGISTRY)} (see --list)")
    if args.timeout <= 0:
        raise CommandError("--timeout must be positive")
    result = fetch(args.name, url=args.url, directory=cache_dir(), timeout=args.timeout, force=args.force)
    if result.already_present:
        print(f"{args.name} is already installed: {result.installed} (use --force to download again)")
    else:
        detail = f"generator preset {result.preset}" if result.preset else "verified"
        print(f"installed {args.name}: {result.installed} ({detail}; SHA-256 {result.sha256})")
    return 0
