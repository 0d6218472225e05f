"""Fast, memory-bounded inference for the LaMa generators (see docs/ARCHITECTURE.md)."""
from .fast_generator import PRECISIONS, FastGenerator, MemoryBudgetError
from .folding import UnsupportedGenerator

__all__ = ["PRECISIONS", "FastGenerator", "MemoryBudgetError", "UnsupportedGenerator"]
