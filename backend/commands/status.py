"""`lama-backend status`: is a backend answering at this address, and what is it serving?"""
from __future__ import annotations

import argparse
import os
import sys

from ..client.protocol import DEFAULT_ADDRESS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("status", help="ask a running backend who it is (exit 0 when it answers)")
    parser.add_argument("--address", default=DEFAULT_ADDRESS, help=f"backend address (default {DEFAULT_ADDRESS})")
    parser.add_argument("--token", default=os.environ.get("LAMA_TOKEN"), help="access token (default $LAMA_TOKEN)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    parser.set_defaults(func=status)


def status(args: argparse.Namespace) -> int:
    from ..client import BackendError, BackendUnavailable, LamaClient

    with LamaClient(args.address, token=args.token or None, timeout=args.timeout) as client:
        try:
            info = client.hello()
        except BackendUnavailable as exc:
            print(f"lama-backend status: no backend answering: {exc}", file=sys.stderr)
            return 1
        except BackendError as exc:
            print(f"lama-backend status: the backend at {args.address} refused: {exc}", file=sys.stderr)
            return 1
    model = info.get("model") or {}
    limits = info.get("limits") or {}
    print(f"backend at {args.address}: lama-backend {info.get('server_version')}, protocol {info.get('protocol')}")
    print(f"model: {model.get('family')} (preset {model.get('preset')}) from {model.get('source')}")
    print(f"device: {info.get('device')}; queued jobs: {info.get('queued')}; auth: {info.get('auth')}")
    print(f"limits: {limits.get('max_pixels')} pixels per job, tiles {limits.get('min_tile')}..{limits.get('max_tile')}")
    return 0
