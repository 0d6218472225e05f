"""Fixed evaluation sets, the in-hole metrics (L1, PSNR, SSIM) and LPIPS / FID from weights given by path."""
from .eval_set import EvalItem, EvalSet, EvalSetError, make_eval_set, resolve_policies
from .evaluate import PerceptualScorers, evaluate_generator, make_evaluator
from .fid import FIDInceptionV3, fid_from_features, frechet_distance, load_fid_inception
from .lpips import LPIPS, load_lpips
from .weights_file import MetricWeightsError
from .metrics import (
    MetricAverages, gaussian_window, hole_metrics, masked_l1, masked_psnr, masked_ssim, ssim_map, ssim_whole,
)

__all__ = [
    "EvalItem", "EvalSet", "EvalSetError", "make_eval_set", "resolve_policies", "evaluate_generator", "make_evaluator",
    "MetricAverages", "gaussian_window", "hole_metrics", "masked_l1", "masked_psnr", "masked_ssim", "ssim_map",
    "ssim_whole", "PerceptualScorers", "FIDInceptionV3", "fid_from_features", "frechet_distance", "load_fid_inception",
    "LPIPS", "load_lpips", "MetricWeightsError",
]
