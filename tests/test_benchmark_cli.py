"""The benchmark scripts answer bad arguments with a usage error, not a traceback or a long run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / name), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args", [("--sizes", "500"), ("--sizes", "512", "0"), ("--tiled", "4100")])
def test_generator_rejects_sizes_that_are_not_multiples_of_8(args):
    result = run_script("generator.py", *args)
    assert result.returncode == 2
    assert "multiples of 8" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, code, text", [(("--help",), 0, "usage"), (("abc",), 2, "invalid int value"),
                                              (("100",), 2, "multiples of 8")])
def test_profile_ops_parses_its_size(args, code, text):
    result = run_script("profile_ops.py", *args)
    assert result.returncode == code
    assert text in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
