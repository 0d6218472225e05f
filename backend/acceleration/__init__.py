"""Fast, memory-bounded inference for the LaMa generators (see docs/ARCHITECTURE.md)."""
from __future__ import annotations

from .fast_generator import PRECISIONS, FastGenerator, MemoryBudgetError
from .folding import UnsupportedGenerator
from .memory import parse_memory_size


def configure_model(model, max_memory: str | int | None = None, precision: str | None = None) -> None:
    """Apply `--max-memory` / `--precision` to a loaded model that runs on the fast path."""
    if max_memory is not None and hasattr(model, "max_memory"):
        model.max_memory = parse_memory_size(max_memory)
    if precision is not None and hasattr(model, "set_precision"):
        model.set_precision(precision)

__all__ = ["PRECISIONS", "FastGenerator", "MemoryBudgetError", "UnsupportedGenerator", "configure_model",
           "parse_memory_size"]
