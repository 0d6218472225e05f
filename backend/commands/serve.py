"""`lama-backend serve`: the persistent backend the Krita and GIMP plugins talk to."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from lama_training.utils.cli import CommandError

from ..client.protocol import DEFAULT_ADDRESS
from .inpaint import MAX_MEMORY_HELP, PRECISION_HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the inpainting backend (ZeroMQ; protocol in docs/protocol.md)")
    parser.add_argument("--bind", default=DEFAULT_ADDRESS, help=f"address to listen on (default {DEFAULT_ADDRESS}); "
                        "anything but loopback needs --token or CURVE keys")
    parser.add_argument("--weights", default=None, help="weights file or directory (default: discovered)")
    parser.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--token", default=os.environ.get("LAMA_TOKEN"),
                        help="access token every request must carry (default $LAMA_TOKEN)")
    parser.add_argument("--curve-secret-file", type=Path, default=None,
                        help="ZeroMQ certificate file holding the server's CURVE secret key")
    parser.add_argument("--curve-clients", type=Path, default=None,
                        help="directory of the public key certificates of clients allowed to connect")
    parser.add_argument("--max-pixels", type=int, default=8192 * 8192, help="pixel budget per job")
    parser.add_argument("--max-queued", type=int, default=16, help="queued jobs allowed per client")
    parser.add_argument("--log-file", type=Path, default=None, help="also write the log to this file")
    parser.add_argument("--max-memory", default=None, metavar="SIZE", help=MAX_MEMORY_HELP)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto", help=PRECISION_HELP)
    parser.set_defaults(func=serve)


def serve(args: argparse.Namespace) -> int:
    if args.max_pixels < 1 or args.max_queued < 1:
        raise CommandError("--max-pixels and --max-queued must be at least 1")
    if args.max_memory is not None:
        from ..acceleration.memory import parse_memory_size
        try:
            parse_memory_size(args.max_memory)
        except ValueError as error:
            raise CommandError(f"--max-memory: {error}") from None
    server_log = logging.getLogger("lama_backend")
    if server_log.getEffectiveLevel() > logging.INFO:
        server_log.setLevel(logging.INFO)  # a daemon's log says what it serves and which jobs ran
    handler = None
    if args.log_file is not None:
        handler = logging.FileHandler(args.log_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
    try:
        return run_server(args)
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


def run_server(args: argparse.Namespace) -> int:
    from ..server import Server, ServerConfig, ServerError
    from ..server.inpainter import load_inpainter

    config = ServerConfig(bind=args.bind, token=args.token or None, curve_secret_file=args.curve_secret_file,
                          curve_clients_dir=args.curve_clients, max_pixels=args.max_pixels,
                          max_queued_per_client=args.max_queued)
    server = Server(config)
    try:
        address = server.bind()  # before loading weights: a busy port fails in milliseconds
    except ServerError as exc:
        server.close()
        raise CommandError(str(exc)) from None
    logging.getLogger("lama_backend.server").info("listening on %s; loading weights", address)
    try:
        server.inpainter = load_inpainter(args.weights, args.device)
        from ..acceleration import configure_model
        engine = getattr(server.inpainter, "engine", None)
        if engine is not None:
            try:
                configure_model(engine.model, args.max_memory, None if args.precision == "auto" else args.precision)
            except ValueError as exc:  # bf16 on a CPU without it, fp16 on a CPU
                raise CommandError(f"--precision: {exc}") from None
    except BaseException:
        server.close()
        raise
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: server.request_stop())
    try:
        server.serve_forever()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logging.getLogger("lama_backend.server").info("stopped")
    return 0
