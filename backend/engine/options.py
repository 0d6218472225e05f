"""What a caller may ask of one inpainting pass; validated once, when built."""
from __future__ import annotations

import numbers
from dataclasses import dataclass

from .errors import InpaintError

STRATEGIES = ("crop", "whole", "subimage")
OUTPUTS = ("composite", "layer")
QUALITIES = ("fast", "refine")


@dataclass(frozen=True)
class InpaintOptions:
    """Options of `InpaintEngine.inpaint`; docs/ARCHITECTURE.md gives their exact meaning.

    grow: dilate the hole by this many pixels (Euclidean disk) before inpainting.
    feather: width in pixels of the blend ramp inside the hole (0 = hard edge).
    margin: context kept around each mask component in the crop strategy.
    strategy: "crop" (one model run per merged component box), "whole" (one run on the image), or
        "subimage" (DeepGIN's method: crops as for "crop", each split by strided sub-sampling into
        256 x 256 sub-images that are inpainted separately and re-interleaved).
    soft_mask: mask values are blend weights instead of a yes/no hole.
    output: "composite" (the full image) or "layer" (RGBA, prediction in the hole, 0 elsewhere).
    quality: "fast" (one network pass) or "refine" (multiscale feature refinement, much slower;
      models without it refuse).
    seamless: shift each fill by the smooth field that makes it meet the known pixels at the
      hole's edge (`seams.match_seams`); false pastes the network's fill as it is.
    """

    grow: int = 0
    feather: int = 0
    margin: int = 128
    strategy: str = "crop"
    soft_mask: bool = False
    output: str = "composite"
    quality: str = "fast"
    seamless: bool = True

    def __post_init__(self) -> None:
        for name in ("grow", "feather", "margin"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
                raise InpaintError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.strategy not in STRATEGIES:
            raise InpaintError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.output not in OUTPUTS:
            raise InpaintError(f"output must be one of {', '.join(OUTPUTS)}, got {self.output!r}")
        if self.quality not in QUALITIES:
            raise InpaintError(f"quality must be one of {', '.join(QUALITIES)}, got {self.quality!r}")
        for name in ("soft_mask", "seamless"):
            if not isinstance(getattr(self, name), bool):
                raise InpaintError(f"{name} must be true or false, got {getattr(self, name)!r}")
