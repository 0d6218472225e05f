"""Plain dataclass configs of the large-mask policy (Suvorov et al., WACV 2022, section 3.3).

The field names follow the official LaMa mask generator (`irregular_kwargs` -> `irregular`,
`box_kwargs` -> `box`), so an official YAML block converts with `MaskConfig.from_official`.
The defaults of `MaskConfig` are the big-lama training policy.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class IrregularMaskConfig:
    """Polygonal chains of thick lines ("irregular" masks).

    Each mask draws between `min_times` and `max_times + 1` strokes (both inclusive: the official
    sampler draws one stroke more than its parameter says, and the published statistics include
    that). A stroke starts at a uniform pixel and has 1 to 5 segments; each segment has an angle of
    `0.01 + randint(max_angle)` radians (mirrored for every other stroke), a length of
    `10 + randint(max_len)` px and a brush width of `5 + randint(max_width)` px, where `randint(n)`
    is uniform over 0..n-1.
    """

    max_angle: int = 4
    max_len: int = 200
    max_width: int = 100
    min_times: int = 1
    max_times: int = 5

    def __post_init__(self) -> None:
        for name in ("max_angle", "max_len", "max_width"):
            _check(int(getattr(self, name)) >= 1, f"irregular mask {name} must be >= 1, got {getattr(self, name)}")
        _check(0 <= self.min_times <= self.max_times + 1,
               f"irregular mask needs 0 <= min_times <= max_times + 1, got {self.min_times}, {self.max_times}")


@dataclass
class BoxMaskConfig:
    """Axis-aligned rectangles ("box" masks).

    Each mask draws between `min_times` and `max_times` boxes (inclusive); each side is uniform in
    `bbox_min_size..bbox_max_size` (inclusive, capped at the image side minus both margins minus 1)
    and the box keeps `margin` px from every image border.
    """

    margin: int = 10
    bbox_min_size: int = 30
    bbox_max_size: int = 150
    min_times: int = 1
    max_times: int = 4

    def __post_init__(self) -> None:
        _check(self.margin >= 0, f"box mask margin must be >= 0, got {self.margin}")
        _check(1 <= self.bbox_min_size <= self.bbox_max_size,
               f"box mask needs 1 <= bbox_min_size <= bbox_max_size, got {self.bbox_min_size}, {self.bbox_max_size}")
        _check(0 <= self.min_times <= self.max_times,
               f"box mask needs 0 <= min_times <= max_times, got {self.min_times}, {self.max_times}")


@dataclass
class MaskConfig:
    """A mixture of irregular and box masks: one kind is picked per mask with probability
    proportional to `irregular_proba` / `box_proba` (they need not sum to 1; a kind with
    probability 0 is never drawn). Defaults: the big-lama training policy.

    Nested fields also accept plain dicts (as read from YAML/TOML) and are converted.
    """

    irregular_proba: float = 1.0
    irregular: IrregularMaskConfig = field(default_factory=IrregularMaskConfig)
    box_proba: float = 1.0
    box: BoxMaskConfig = field(default_factory=BoxMaskConfig)

    def __post_init__(self) -> None:
        if isinstance(self.irregular, Mapping):
            self.irregular = IrregularMaskConfig(**self.irregular)
        if isinstance(self.box, Mapping):
            self.box = BoxMaskConfig(**self.box)
        _check(self.irregular_proba >= 0 and self.box_proba >= 0,
               f"mask probabilities must be >= 0, got irregular {self.irregular_proba}, box {self.box_proba}")
        _check(self.irregular_proba + self.box_proba > 0, "at least one mask kind needs a probability > 0")

    def probabilities(self) -> tuple[float, float]:
        """Normalised (irregular, box) probabilities."""
        total = self.irregular_proba + self.box_proba
        return self.irregular_proba / total, self.box_proba / total

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_official(cls, kwargs: Mapping[str, Any]) -> "MaskConfig":
        """Build from the official `mask_gen_kwargs` block (`irregular_proba`, `irregular_kwargs`,
        `box_proba`, `box_kwargs`). Segmentation, square, super-resolution and outpainting masks
        are not part of the large-mask policy: a non-zero probability for them is an error."""
        for name in ("segm_proba", "squares_proba", "superres_proba", "outpainting_proba", "invert_proba"):
            _check(not kwargs.get(name), f"mask kind {name!r} is not supported (only irregular and box masks)")
        known = {"irregular_proba", "irregular_kwargs", "box_proba", "box_kwargs", "segm_proba", "squares_proba",
                 "superres_proba", "outpainting_proba", "invert_proba", "variants_n"}
        unknown = sorted(set(kwargs) - known)
        _check(not unknown, f"unknown mask options: {', '.join(unknown)}")
        box_proba = float(kwargs.get("box_proba", 0.0))
        return cls(
            irregular_proba=float(kwargs.get("irregular_proba", 0.0)),
            irregular=IrregularMaskConfig(**(kwargs.get("irregular_kwargs") or {})),
            box_proba=box_proba,
            box=BoxMaskConfig(**(kwargs.get("box_kwargs") or {})) if box_proba > 0 else BoxMaskConfig(),
        )
