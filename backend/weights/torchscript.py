"""The TorchScript `big-lama.pt` that IOPaint / lama-cleaner download and cache.

It is a scripted module with `forward(image, mask)`, both N x C x H x W in 0..1. torch.jit.load
runs no pickled Python: TorchScript archives hold code in TorchScript, interpreted by torch.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..models import TorchScriptModel
from .errors import WeightsError, one_line

BIG_LAMA_TORCHSCRIPT_MD5 = "e3aa4aaa15225a33ec84f9f4bc47e500"


def load_torchscript_model(path: Path, device: torch.device) -> TorchScriptModel:
    """Load onto the CPU first (the file may have been saved on CUDA), then move."""
    try:
        with warnings.catch_warnings():  # torch.jit is deprecated, yet it is the only reader of this file
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        raise WeightsError(f"{path}: not a loadable TorchScript file ({one_line(exc)[:200]})") from None
    forward = getattr(module, "forward", None)
    try:
        arguments = [arg.name for arg in forward.schema.arguments][1:] if forward is not None else []
    except AttributeError:
        arguments = []
    if len(arguments) != 2:
        raise WeightsError(f"{path}: TorchScript module must have forward(image, mask); it has "
                           f"forward({', '.join(arguments)})")
    return TorchScriptModel(module, f"{path} (torchscript)", device)
