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
