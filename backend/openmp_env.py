"""OpenMP's idle spinning, shortened for the backend process before torch loads.

After each parallel region, GNU OpenMP (torch's thread pool on Linux) keeps its worker threads
spinning for about 300,000 iterations in case more work comes. NNPACK, which runs some of the fast
fp32 path's convolutions, brings its own thread pool, and on a 2-core CPU the two pools' spinning
threads then take turns stealing each other's cores: the 512 px fp32 pass took 2.05-2.24 s with
the default against 1.78 s with a spin count of 10,000, when NNPACK ran the blocks
(benchmarks/README.md). libgomp reads the setting once, when it loads, so this must run before
`import torch`; a value the user set (GOMP_SPINCOUNT or OMP_WAIT_POLICY) always wins.
"""
from __future__ import annotations

import os
import sys
from typing import MutableMapping

#: spin iterations before an idle OpenMP thread sleeps (libgomp's default is 300,000)
OPENMP_SPIN_COUNT = "10000"


def shorten_openmp_spin(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set GOMP_SPINCOUNT in `environ` (default: this process's environment) unless the user chose
    a setting, or, for this process, torch is already loaded. Returns whether it was set."""
    own_process = environ is None
    environ = os.environ if environ is None else environ
    if own_process and "torch" in sys.modules:
        return False
    if "GOMP_SPINCOUNT" in environ or "OMP_WAIT_POLICY" in environ:
        return False
    environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT
    return True
