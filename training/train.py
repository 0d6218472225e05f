"""`python -m lama_training.train` / `torchrun --nproc_per_node N -m lama_training.train ...`.

The same as `lama-train train ...`: this module only exists so torchrun has a module to run.
"""
from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
