"""The two ways an inpainting call ends without a result."""
from __future__ import annotations


class InpaintError(ValueError):
    """The request cannot be served as given (wrong shape, dtype, option); the message says why."""


class Cancelled(Exception):
    """The caller's `cancelled()` turned true between two steps; no partial result is returned."""
