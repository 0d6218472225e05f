"""What the backend serves: an inpainting model behind one small interface.

The engine and the server only ever see `InpaintModel`; whether the weights came from an official
Lightning checkpoint, the TorchScript file other tools cache, or the project's own safetensors
export is the weight loader's business.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from lama_training.deepgin.generator import PAD_MODULO as DEEPGIN_PAD_MODULO


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` picks CUDA when present; asking for CUDA without one is a clear error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but PyTorch sees no CUDA GPU")
    if device == "mps":  # Apple GPUs: only on request, FFT support there varies by torch version
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device 'mps' was requested but PyTorch sees no Apple GPU (MPS)")
        return torch.device("mps")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda[:N] or mps")
    return torch.device(device)


class InpaintModel(ABC):
    """A network that predicts hole contents; the engine does padding and compositing."""

    family: str = "lama"
    pad_modulo: int = 8
    supports_refinement: bool = False  # has `refine(image, mask, progress, cancelled)`
    bundled: bool = False              # the package's own default model (set by the loader)
    # the engine averages the fills of this many mirror images of the input (1, 2 or 4); the
    # loader sets 4 for the bundled small model, whose single fills are blotchy (MODEL_CARD.md)
    mirror_average: int = 1

    def __init__(self, preset: str | None, source: str, device: torch.device) -> None:
        self.preset = preset
        self.source = source
        self.device = device

    @abstractmethod
    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """image N x 3 x H x W float32 in 0..1, mask N x 1 x H x W in {0, 1} -> N x 3 x H x W in 0..1."""

    def describe(self) -> dict[str, str | None]:
        """What `hello` replies and logs say about the serving model."""
        return {"family": self.family, "preset": self.preset, "source": self.source, "device": str(self.device),
                "precision": getattr(self, "precision", "fp32"), "bundled": bool(self.bundled),
                "mirror_average": int(self.mirror_average)}


class GeneratorModel(InpaintModel):
    """One of our generators (`lama_training.modules`), fed `cat([image * (1 - mask), mask])`.

    Predictions run on the fast path (`lama_backend.acceleration`) derived from the same module,
    tiled automatically to stay within `max_memory` (bytes; None = a share of the memory free now,
    on CUDA capped by the GPU's free memory). Generators the fast path does not know run eagerly.
    """

    def __init__(self, generator: nn.Module, preset: str | None, source: str, device: torch.device,
                 precision: str = "auto", max_memory: int | str | None = None) -> None:
        super().__init__(preset, source, device)
        self.generator = generator.to(device).eval().requires_grad_(False)
        self.max_memory = max_memory
        self.fast = None
        self.set_precision(precision)

    @property
    def supports_refinement(self) -> bool:  # type: ignore[override]
        """Refinement optimises the input of the FFC ResNet blocks; other generators have none."""
        from lama_training.modules.ffc import FFCResnetBlock
        return any(isinstance(layer, FFCResnetBlock) for layer in getattr(self.generator, "model", ()))

    def set_precision(self, precision: str = "auto") -> None:
        """Rebuild the fast path in `precision` ("auto", "fp32", "bf16", "fp16")."""
        from .acceleration import FastGenerator, UnsupportedGenerator
        from .acceleration.runtime import configure_cuda, resolve_precision
        resolved = resolve_precision(precision, self.device)
        if self.device.type == "cuda":
            configure_cuda(resolved)
        else:
            from .acceleration.allocator import reuse_freed_memory
            reuse_freed_memory()  # a pass's activations reuse freed heap instead of fresh zeroed pages
        try:
            self.fast = FastGenerator(self.generator, self.device, resolved)
        except UnsupportedGenerator:
            self.fast = None
        self.precision = resolved if self.fast is not None else "fp32"

    @torch.inference_mode()
    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        masked = image * (1 - mask)
        x = torch.cat([masked, mask], dim=1)
        if self.fast is None:
            return self.generator(x)
        from .acceleration.memory import memory_budget
        batch, _, height, width = x.shape
        tile = self.fast.choose_tile(batch, height, width, memory_budget(self.device, self.max_memory))
        return self.fast(x, tile=tile)

    def refine(self, image: torch.Tensor, mask: torch.Tensor, progress=None, cancelled=None) -> torch.Tensor:
        """High-resolution refinement (`lama_backend.refinement`): slower, sharper large fills."""
        from .acceleration.memory import memory_budget
        from .refinement import REFINE_BYTES_PER_PIXEL, Refiner
        encode = None
        if self.fast is not None and self.fast.precision == "fp32":
            encode = self.fast.encode
        budget = memory_budget(self.device, self.max_memory)
        max_pixels = None if budget is None else budget // REFINE_BYTES_PER_PIXEL
        return Refiner(self.generator, encode=encode).refine(image, mask, progress, cancelled, max_pixels)


class DeepGINModel(InpaintModel):
    """A DeepGIN generator (`lama_training.deepgin`): `forward(image, mask)`, sizes divisible by 16;
    the prediction is its completed image (refined output pasted into the known pixels)."""

    family = "deepgin"
    pad_modulo = DEEPGIN_PAD_MODULO

    def __init__(self, generator: nn.Module, preset: str | None, source: str, device: torch.device) -> None:
        super().__init__(preset, source, device)
        self.generator = generator.to(device).eval().requires_grad_(False)

    @torch.inference_mode()
    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.generator(image, mask).completed


class TorchScriptModel(InpaintModel):
    """The TorchScript `big-lama.pt` cached by IOPaint / lama-cleaner: `forward(image, mask)`.

    That file composites internally (`mask * pred + (1 - mask) * image`); the engine composites
    again, which changes nothing inside the hole and restores exact input pixels outside it.
    """

    def __init__(self, module: torch.jit.ScriptModule, source: str, device: torch.device) -> None:
        super().__init__("big-lama", source, device)
        self.module = module.to(device).eval()

    @torch.inference_mode()
    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.module(image, mask)
