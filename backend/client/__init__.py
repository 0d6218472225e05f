"""The plugin-side client of the LaMa backend (stdlib only, Python 3.8+).

Copied as-is into each plugin bundle, so every import inside this package is relative. Uses
pyzmq + msgpack when the editor's Python has them, else a built-in ZMTP 3.1 / msgpack subset.
"""
from .autostart import ensure_backend, start_detached
from .client import InpaintRequest, InpaintResult, LamaClient
from .errors import BackendError, BackendUnavailable, JobCancelled, LamaClientError
from .protocol import DEFAULT_ADDRESS, PROTOCOL_VERSION

__all__ = [
    "BackendError", "BackendUnavailable", "DEFAULT_ADDRESS", "InpaintRequest", "InpaintResult", "JobCancelled",
    "LamaClient", "LamaClientError", "PROTOCOL_VERSION", "ensure_backend", "start_detached",
]
