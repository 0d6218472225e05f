"""Named mask policies: the big-lama training policy and the paper's evaluation policies.

Parameters are those of the official LaMa configs (`configs/training/data/*` for training,
`configs/data_gen/random_{thin,medium,thick}_{256,512}.yaml` for evaluation); the 256 px ones and
the training policy are checked against `mask_statistics.json` by the tests.
"""
from __future__ import annotations

from dataclasses import replace

from .config import BoxMaskConfig, IrregularMaskConfig, MaskConfig

MASK_POLICIES: dict[str, MaskConfig] = {
    "big-lama": MaskConfig(
        irregular_proba=1.0, irregular=IrregularMaskConfig(max_angle=4, max_len=200, max_width=100, min_times=1, max_times=5),
        box_proba=1.0, box=BoxMaskConfig(margin=10, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=4)),
    "thin-256": MaskConfig(
        irregular_proba=1.0, irregular=IrregularMaskConfig(max_angle=4, max_len=40, max_width=10, min_times=4, max_times=50),
        box_proba=0.0),
    "medium-256": MaskConfig(
        irregular_proba=1.0, irregular=IrregularMaskConfig(max_angle=4, max_len=100, max_width=50, min_times=4, max_times=5),
        box_proba=0.3, box=BoxMaskConfig(margin=0, bbox_min_size=10, bbox_max_size=50, min_times=1, max_times=5)),
    "thick-256": MaskConfig(
        irregular_proba=1.0, irregular=IrregularMaskConfig(max_angle=4, max_len=200, max_width=100, min_times=1, max_times=5),
        box_proba=0.3, box=BoxMaskConfig(margin=10, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=3)),
    "thin-512": MaskConfig(
        irregular_proba=1.0, irregular=IrregularMaskConfig(max_angle=4, max_len=100, max_width=20, min_times=4, max_times=70),
        box_proba=0.0),
    "medium-512": MaskConfig(
        irregular_proba=1.0, irregular=IrregularMaskConfig(max_angle=4, max_len=200, max_width=100, min_times=4, max_times=10),
        box_proba=0.3, box=BoxMaskConfig(margin=0, bbox_min_size=30, bbox_max_size=150, min_times=1, max_times=5)),
    "thick-512": MaskConfig(
        irregular_proba=1.0, irregular=IrregularMaskConfig(max_angle=4, max_len=450, max_width=250, min_times=1, max_times=5),
        box_proba=0.3, box=BoxMaskConfig(margin=10, bbox_min_size=30, bbox_max_size=300, min_times=1, max_times=4)),
}

#: Evaluation policy names by image size, as accepted by `eval_policy_name`.
EVAL_POLICY_KINDS = ("thin", "medium", "thick")


def get_mask_policy(name: str) -> MaskConfig:
    """A fresh copy of a named policy; unknown names get an error listing the known ones."""
    try:
        policy = MASK_POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown mask policy {name!r}; known: {', '.join(MASK_POLICIES)}") from None
    return replace(policy, irregular=replace(policy.irregular), box=replace(policy.box))


def eval_policy_name(kind: str, size: int) -> str:
    """`("thin", 256)` -> `"thin-256"`; sizes other than 256 and 512 use the nearer of the two."""
    if kind not in EVAL_POLICY_KINDS:
        raise ValueError(f"unknown evaluation mask kind {kind!r}; known: {', '.join(EVAL_POLICY_KINDS)}")
    return f"{kind}-{256 if size < 384 else 512}"


def policy_size(name: str) -> int:
    """The crop size a named policy is defined for: its `-256` / `-512` suffix; big-lama's is 256."""
    suffix = name.rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else 256


def scaled_policy(config: MaskConfig, factor: float) -> MaskConfig:
    """`config` with every length, width, size and margin multiplied by `factor` (at least 1 px),
    e.g. a 256 px policy for 128 px crops with 0.5. Counts and probabilities stay."""
    def px(value: int) -> int:
        return max(1, int(round(value * factor)))

    irregular = replace(config.irregular, max_len=px(config.irregular.max_len), max_width=px(config.irregular.max_width))
    box = replace(config.box, margin=int(round(config.box.margin * factor)), bbox_min_size=px(config.box.bbox_min_size),
                  bbox_max_size=px(config.box.bbox_max_size))
    return replace(config, irregular=irregular, box=box)


def parse_mask_mixture(text: str, crop_size: int) -> list[tuple[float, MaskConfig]]:
    """`"thin-256:0.3,medium-256:0.2"` -> [(0.3, thin policy scaled to crop_size), ...].

    The named policies replace the configured mask with these probabilities (the rest keeps it);
    each is scaled from its own size to `crop_size`. An empty text is no mixture."""
    mixture: list[tuple[float, MaskConfig]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, proba = item.partition(":")
        if not sep:
            raise ValueError(f"mask mixture item {item!r} is not POLICY:PROBABILITY (for example thin-256:0.3)")
        try:
            probability = float(proba)
        except ValueError:
            raise ValueError(f"mask mixture item {item!r}: {proba!r} is not a probability") from None
        if not 0 < probability <= 1:
            raise ValueError(f"mask mixture item {item!r}: the probability must be in (0, 1]")
        mixture.append((probability, scaled_policy(get_mask_policy(name.strip()), crop_size / policy_size(name.strip()))))
    if sum(p for p, _ in mixture) > 1 + 1e-9:
        raise ValueError(f"mask mixture {text!r}: the probabilities add up to more than 1")
    return mixture
