"""The paper's large-mask policy: configs, named policies, generators, statistics and seeding."""
from .config import BoxMaskConfig, IrregularMaskConfig, MaskConfig
from .generators import MAX_SEGMENTS_PER_STROKE, MaskGenerator, sample_box_mask, sample_irregular_mask
from .policies import (
    EVAL_POLICY_KINDS, MASK_POLICIES, eval_policy_name, get_mask_policy, parse_mask_mixture, scaled_policy,
)
from .seeding import distributed_rank, seed_python_and_numpy, stream_seed
from .statistics import mask_coverage, mask_width

__all__ = [
    "BoxMaskConfig", "IrregularMaskConfig", "MaskConfig", "MAX_SEGMENTS_PER_STROKE", "MaskGenerator",
    "sample_box_mask", "sample_irregular_mask", "EVAL_POLICY_KINDS", "MASK_POLICIES", "eval_policy_name",
    "get_mask_policy", "parse_mask_mixture", "scaled_policy", "distributed_rank", "seed_python_and_numpy", "stream_seed", "mask_coverage", "mask_width",
]
