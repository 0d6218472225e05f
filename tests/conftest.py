"""Shared fixtures: where the reference data measured from the official LaMa lives."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def reference_dir_path() -> Path:
    """`../shared/reference` beside the checkout (CI has it there), or $LAMA_REFERENCE_DIR."""
    return Path(os.environ.get("LAMA_REFERENCE_DIR", REPO_ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    path = reference_dir_path()
    if not path.is_dir():
        pytest.fail(f"reference data not found at {path}; set LAMA_REFERENCE_DIR")
    return path
