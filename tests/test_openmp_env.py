"""The backend shortens OpenMP's idle spinning before torch loads, unless the user chose a setting."""
from __future__ import annotations

import os
import subprocess
import sys

from lama_backend.openmp_env import OPENMP_SPIN_COUNT, shorten_openmp_spin


def test_spin_count_is_set_only_where_the_user_chose_nothing():
    environ: dict[str, str] = {}
    assert shorten_openmp_spin(environ) and environ["GOMP_SPINCOUNT"] == OPENMP_SPIN_COUNT
    chosen = {"GOMP_SPINCOUNT": "500"}
    assert not shorten_openmp_spin(chosen) and chosen == {"GOMP_SPINCOUNT": "500"}
    passive = {"OMP_WAIT_POLICY": "PASSIVE"}
    assert not shorten_openmp_spin(passive) and passive == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_cli_sets_it_before_torch_loads():
    """libgomp reads the setting once, when torch loads it: the CLI module must not import torch first."""
    code = ("import os, sys; import lama_backend.cli; "
            "print('torch' in sys.modules, os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["False", OPENMP_SPIN_COUNT]
    env["GOMP_SPINCOUNT"] = "123"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["False", "123"]
