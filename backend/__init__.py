"""lama_backend: the local inpainting backend (engine, weights, ZeroMQ server) and its client."""

__version__ = "0.1.0"
