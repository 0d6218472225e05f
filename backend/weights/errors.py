"""The one error type of weight loading, discovery and fetching.

It subclasses `CommandError` so that any `lama-backend` command that loads weights turns it into
one line on stderr and exit code 2 without a conversion of its own.
"""
from __future__ import annotations

from lama_training.utils.cli import CommandError


class WeightsError(CommandError):
    """Weights missing, unreadable, of an unknown kind, or not matching the network: one line."""


def one_line(exc: BaseException | object) -> str:
    """An exception's text squeezed onto one line (torch errors span many)."""
    return " ".join(str(exc).split()) or type(exc).__name__
