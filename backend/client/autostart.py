"""Start a backend that outlives the plug-in that started it, and wait until it answers.

GIMP kills a plug-in's whole process group when the user presses Cancel, so the backend gets
its own session (POSIX) or a detached process group (Windows).
"""
import os
import subprocess
import sys
import time
from typing import Any, Dict, Optional, Sequence

from .client import LamaClient
from .errors import BackendUnavailable
from .protocol import DEFAULT_ADDRESS


def detached_popen_kwargs() -> Dict[str, Any]:
    """Popen arguments that detach the child from our session / console and process group."""
    if sys.platform == "win32":
        flags = getattr(subprocess, "DETACHED_PROCESS", 0x00000008) | getattr(
            subprocess, "CREATE_NEW_PROCESS_GROUP", 0x00000200)
        return {"creationflags": flags}
    return {"start_new_session": True}


def start_detached(command: Sequence[str], log_path: Optional[str] = None) -> "subprocess.Popen[bytes]":
    """Launch `command` detached, output to `log_path` (or nowhere)."""
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                close_fds=True, cwd=os.path.expanduser("~"), **detached_popen_kwargs())
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]


def ensure_backend(address: str = DEFAULT_ADDRESS, command: Optional[Sequence[str]] = None,
                   timeout: float = 120.0, token: Optional[str] = None, log_path: Optional[str] = None,
                   implementation: str = "auto") -> Dict[str, Any]:
    """The `hello` reply of the backend at `address`, starting `command` first when none answers.

    `command` is an argv list such as ["lama-backend", "serve", "--bind", address]. Raises
    BackendUnavailable when the started backend exits or does not answer within `timeout` s
    (loading large weights takes a while).
    """
    client = LamaClient(address, token=token, timeout=1.0, implementation=implementation)
    try:
        try:
            return client.hello()
        except BackendUnavailable:
            if command is None:
                raise
        process = start_detached(command, log_path)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return client.hello()
            except BackendUnavailable:
                pass
            code = process.poll()
            if code is not None:
                try:  # another plug-in may have started one on this port first
                    return client.hello()
                except BackendUnavailable:
                    where = (" (see %s)" % log_path) if log_path else ""
                    raise BackendUnavailable("the backend exited with code %d before answering%s" % (code, where)) from None
            if time.monotonic() > deadline:
                raise BackendUnavailable("the backend started by %r did not answer within %.0f s" % (command[0], timeout))
            time.sleep(0.2)
    finally:
        client.close()
