"""Where `serve` and `inpaint` look for weights when the user names none.

Order: `--weights PATH`, `$LAMA_WEIGHTS`, the project cache dir (what `lama-backend fetch`
installs, then any `*.safetensors` there), the IOPaint / lama-cleaner torch-hub cache
(`big-lama.pt`), then a model bundled as package data. An explicit path or `$LAMA_WEIGHTS` that
does not exist is an error rather than a silent fall-through to some other model.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import WeightsError
from .registry import REGISTRY

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "default_model"  # lama_backend/default_model (package data)


def is_bundled(path: str | os.PathLike[str]) -> bool:
    """Whether `path` is the model shipped inside the package (logs and `hello` then say so)."""
    return Path(path).resolve().parent == BUNDLED_DIR


def cache_dir() -> Path:
    """`$XDG_CACHE_HOME/lama-backend`, default `~/.cache/lama-backend` (on every OS)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "lama-backend"


def torch_hub_checkpoints_dir() -> Path:
    """Where torch.hub (and so IOPaint) caches downloads: $TORCH_HOME/hub, else $XDG_CACHE_HOME/torch/hub."""
    torch_home = os.environ.get("TORCH_HOME")
    if torch_home:
        hub = Path(torch_home).expanduser() / "hub"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        hub = Path(base).expanduser() / "torch" / "hub"
    return hub / "checkpoints"


def cache_candidates(directory: Path) -> list[Path]:
    """What `fetch` installs (in registry order), then our own exports, sorted by name."""
    found = [directory / entry.installed for entry in REGISTRY.values() if (directory / entry.installed).exists()]
    if directory.is_dir():
        found += sorted(directory.glob("*.safetensors"))
    return found


def search_locations() -> list[tuple[str, Path]]:
    """Every place discovery looks, in order (for error messages and `fetch --list`)."""
    return [
        ("project cache", cache_dir()),
        ("IOPaint cache", torch_hub_checkpoints_dir() / "big-lama.pt"),
        ("bundled model", BUNDLED_DIR),
    ]


def discover_weights(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The weights path to load, or a `WeightsError` that says how to get weights."""
    if explicit is not None and str(explicit) != "":
        path = Path(explicit).expanduser()
        if not path.exists():
            raise WeightsError(f"weights not found: {path}")
        return path
    from_env = os.environ.get("LAMA_WEIGHTS")
    if from_env:
        path = Path(from_env).expanduser()
        if not path.exists():
            raise WeightsError(f"LAMA_WEIGHTS points to {path}, which does not exist")
        return path
    candidates = cache_candidates(cache_dir())
    if candidates:
        return candidates[0]
    iopaint = torch_hub_checkpoints_dir() / "big-lama.pt"
    if iopaint.is_file():
        return iopaint
    bundled = sorted(BUNDLED_DIR.glob("*.safetensors")) if BUNDLED_DIR.is_dir() else []
    if bundled:
        return bundled[0]
    raise WeightsError(
        "no LaMa weights found: run `lama-backend fetch big-lama` (about 410 MB), or pass --weights PATH "
        f"or set LAMA_WEIGHTS, or put big-lama.pt or a .safetensors file into {cache_dir()}")
