"""The ZeroMQ server behind `lama-backend serve` (protocol: docs/protocol.md)."""
from .config import ServerConfig
from .inpainter import EngineInpainter, IdentityInpainter, Inpainter, JobCancelledError, JobFailedError
from .server import Server, ServerError

__all__ = ["EngineInpainter", "IdentityInpainter", "Inpainter", "JobCancelledError", "JobFailedError", "Server",
           "ServerConfig", "ServerError"]
