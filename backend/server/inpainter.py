"""What the server's worker calls to inpaint: the engine behind a small callable interface.

The worker knows nothing about torch. It calls an `Inpainter` with a numpy image in RGB(A)
order, a mask and the validated options; the real one wraps `InpaintEngine`, and an identity
inpainter lets the transport be measured and tested without a network.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional, Protocol

import numpy as np

ProgressFn = Callable[[float, str], None]
CancelledFn = Callable[[], bool]


class JobCancelledError(Exception):
    """The job noticed its cancel flag and stopped."""


class JobFailedError(Exception):
    """The engine refused the input; the message is for the user."""


class Inpainter(Protocol):
    """`model_info` goes into the hello reply; calling it runs one job on the worker thread."""

    model_info: Dict[str, Any]

    def __call__(self, image: np.ndarray, mask: np.ndarray, options: Dict[str, Any],
                 progress: ProgressFn, cancelled: CancelledFn) -> np.ndarray: ...


def describe_model(model: Any) -> Dict[str, Any]:
    """The hello reply's `model` and `device`: which weights are serving, where, in what precision."""
    describe = getattr(model, "describe", None)
    if callable(describe):  # an `InpaintModel`
        return dict(describe())
    return {"family": getattr(model, "family", None), "preset": getattr(model, "preset", None),
            "source": getattr(model, "source", None), "device": str(getattr(model, "device", "cpu")),
            "precision": getattr(model, "precision", "fp32"), "bundled": bool(getattr(model, "bundled", False))}


class EngineInpainter:
    """The real thing: `lama_backend.engine.InpaintEngine` over a loaded `InpaintModel`."""

    def __init__(self, model: Any) -> None:
        from lama_backend.engine import InpaintEngine

        self.engine = InpaintEngine(model)

    @property
    def model_info(self) -> Dict[str, Any]:  # type: ignore[override]
        """Described when asked: `--precision` and `--max-memory` are applied after loading."""
        return describe_model(self.engine.model)

    def __call__(self, image: np.ndarray, mask: np.ndarray, options: Dict[str, Any],
                 progress: ProgressFn, cancelled: CancelledFn) -> np.ndarray:
        from lama_backend.engine import Cancelled, InpaintError, InpaintOptions

        try:
            return self.engine.inpaint(image, mask, InpaintOptions(**options), progress=progress, cancelled=cancelled)
        except Cancelled as exc:
            raise JobCancelledError(str(exc)) from exc
        except InpaintError as exc:
            raise JobFailedError(str(exc)) from exc


class IdentityInpainter:
    """Returns the image unchanged after an optional delay: measures and tests the transport alone."""

    def __init__(self, delay: float = 0.0, steps: int = 4) -> None:
        self.delay = delay
        self.steps = steps
        self.model_info = {"family": "identity", "preset": None, "source": "identity (transport test)",
                           "device": "cpu"}

    def __call__(self, image: np.ndarray, mask: np.ndarray, options: Dict[str, Any],
                 progress: ProgressFn, cancelled: CancelledFn) -> np.ndarray:
        for step in range(self.steps):
            if cancelled():
                raise JobCancelledError("cancelled")
            progress(step / self.steps, "identity")
            if self.delay:
                time.sleep(self.delay / self.steps)
        if cancelled():
            raise JobCancelledError("cancelled")
        return np.array(image, copy=True)


def load_inpainter(weights: Optional[str], device: str) -> EngineInpainter:
    """The inpainter `serve` runs: `--weights`, else what `discover_weights` finds, on `device`."""
    from lama_backend.weights import discover_weights, load_model

    return EngineInpainter(load_model(discover_weights(weights), device))
