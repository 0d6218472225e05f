"""Fixed evaluation sets and the in-hole metrics (L1, PSNR, SSIM)."""
from .eval_set import EvalItem, EvalSet, EvalSetError, make_eval_set, resolve_policies
from .evaluate import evaluate_generator, make_evaluator
from .metrics import (
    MetricAverages, gaussian_window, hole_metrics, masked_l1, masked_psnr, masked_ssim, ssim_map, ssim_whole,
)

__all__ = [
    "EvalItem", "EvalSet", "EvalSetError", "make_eval_set", "resolve_policies", "evaluate_generator", "make_evaluator",
    "MetricAverages", "gaussian_window", "hole_metrics", "masked_l1", "masked_psnr", "masked_ssim", "ssim_map",
    "ssim_whole",
]
