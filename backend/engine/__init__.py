"""The inference engine: any image and mask in, the model's fill composited back out."""
from .engine import InpaintEngine
from .errors import Cancelled, InpaintError
from .options import InpaintOptions

__all__ = ["Cancelled", "InpaintEngine", "InpaintError", "InpaintOptions"]
