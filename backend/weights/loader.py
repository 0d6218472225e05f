"""`load_model`: the one entry point that turns a weights file into an `InpaintModel`.

The kind of file is recognised from its bytes, not its name: safetensors (our format), a zip
holding TorchScript code (`big-lama.pt`), a `torch.save` checkpoint (official `best.ckpt`), or a
directory unpacked from the official archive (`big-lama/` with `models/best.ckpt`) or laid out like
the cache.
"""
from __future__ import annotations

import logging
import struct
import zipfile
from pathlib import Path

import torch

from ..models import DeepGINModel, GeneratorModel, InpaintModel, resolve_device
from .discovery import cache_candidates, is_bundled
from .errors import WeightsError
from .format import load_safetensors_generator

LOG = logging.getLogger(__name__)
BUNDLED_HINT = ("serving the small bundled default model, which fills worse than big-lama "
                "(see its MODEL_CARD.md): run `lama-backend fetch big-lama` for the real thing")

# The bundled small model's single fills are blotchy; the mean of its fills of the four mirror
# images is steadier (hole SSIM +0.02-0.03 on its evaluation set, MODEL_CARD.md) and, at 1.2 M
# parameters, still quick. Other models keep the plain single prediction.
BUNDLED_MIRROR_AVERAGE = 4

KIND_SAFETENSORS = "safetensors"
KIND_TORCHSCRIPT = "torchscript"
KIND_CHECKPOINT = "checkpoint"


def weights_in_directory(path: Path) -> Path:
    """An unpacked official archive (`big-lama/`) loads through its `models/best.ckpt`; a folder
    laid out like the cache (`big-lama/`, `big-lama.pt`, `*.safetensors`) through its first entry."""
    for candidate in (path / "models" / "best.ckpt", path / "best.ckpt"):
        if candidate.is_file():
            return candidate
    for candidate in cache_candidates(path):
        if candidate.is_file():
            return candidate
        if candidate.is_dir() and (candidate / "models" / "best.ckpt").is_file():
            return candidate / "models" / "best.ckpt"
    raise WeightsError(f"{path}: directory holds no weights (expected models/best.ckpt of an unpacked "
                       "big-lama archive, big-lama.pt or a .safetensors file)")


def detect_kind(path: Path) -> str:
    """Recognise the file from its first bytes and, for zips, from the names inside."""
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) >= 9 and head[8:9] == b"{":
        (header_length,) = struct.unpack("<Q", head[:8])
        if 0 < header_length < path.stat().st_size:
            return KIND_SAFETENSORS
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            raise WeightsError(f"{path}: damaged zip file (truncated download?)") from None
        if any(name.split("/", 1)[-1].startswith("code/") for name in names):
            return KIND_TORCHSCRIPT
        if any(name.endswith("data.pkl") for name in names):
            return KIND_CHECKPOINT
        raise WeightsError(f"{path}: a zip archive but neither a PyTorch checkpoint nor TorchScript "
                           "(unpack big-lama.zip first, or run `lama-backend fetch big-lama`)")
    if head[:1] == b"\x80":  # a pickle stream: torch.save's legacy (pre-1.6) format
        return KIND_CHECKPOINT
    raise WeightsError(f"{path}: unknown weights format (expected .safetensors, best.ckpt or big-lama.pt)")


def load_model(path: str | Path, device: str | torch.device = "auto") -> InpaintModel:
    """Load any supported weights file (or unpacked official archive) onto `device`."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = weights_in_directory(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        target = resolve_device(device)
    except ValueError as exc:
        raise WeightsError(str(exc)) from None
    kind = detect_kind(path)
    if kind == KIND_SAFETENSORS:
        generator, metadata = load_safetensors_generator(path)
        model_class = DeepGINModel if metadata["family"] == "deepgin" else GeneratorModel
        bundled = is_bundled(path)
        if bundled:
            LOG.warning(BUNDLED_HINT)
        kind_label = "bundled default model, safetensors" if bundled else "safetensors"
        model = model_class(generator, metadata["preset"], f"{path} ({kind_label})", target)
        model.bundled = bundled
        if bundled:
            model.mirror_average = BUNDLED_MIRROR_AVERAGE
        return model
    if kind == KIND_TORCHSCRIPT:
        from .torchscript import load_torchscript_model
        return load_torchscript_model(path, target)
    from .checkpoint import load_checkpoint_generator
    generator, preset = load_checkpoint_generator(path)
    return GeneratorModel(generator, preset, f"{path} (lightning checkpoint)", target)
