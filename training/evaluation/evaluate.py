"""Run a generator over a fixed evaluation set and average its metrics: in-hole L1 / PSNR / SSIM
always, LPIPS and FID when their networks are given (`PerceptualScorers`, loaded by path)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .eval_set import EvalSet
from .fid import FIDInceptionV3, fid_from_features, load_fid_inception
from .lpips import LPIPS, load_lpips
from .metrics import MetricAverages, hole_metrics


class PerceptualScorers:
    """The optional whole-image metrics of the composited prediction against the original:
    `lpips` (mean per image) and `fid` (per set, and per mask policy with >= 2 images). The
    originals' Inception features are computed once per evaluation set and kept."""

    def __init__(self, lpips: LPIPS | None = None, fid: FIDInceptionV3 | None = None) -> None:
        self.lpips = lpips
        self.fid = fid
        self._reference: dict[tuple[str, ...], np.ndarray] = {}

    @classmethod
    def from_paths(cls, lpips_alexnet: str | Path = "", lpips_linear: str | Path = "",
                   fid_inception: str | Path = "") -> "PerceptualScorers":
        """LPIPS when both of its files are given, FID when the Inception file is; an empty path
        leaves that metric out. A missing or foreign file is a `MetricWeightsError` naming it."""
        if bool(lpips_alexnet) != bool(lpips_linear):
            from .weights_file import MetricWeightsError
            raise MetricWeightsError("LPIPS needs both the AlexNet weights and the v0.1 calibration file; "
                                     f"got only {lpips_alexnet or lpips_linear}")
        return cls(load_lpips(lpips_alexnet, lpips_linear) if lpips_alexnet else None,
                   load_fid_inception(fid_inception) if fid_inception else None)

    def __bool__(self) -> bool:
        return self.lpips is not None or self.fid is not None

    def reference_features(self, eval_set: EvalSet) -> np.ndarray | None:
        return self._reference.get(self._key(eval_set))

    def keep_reference(self, eval_set: EvalSet, features: np.ndarray) -> None:
        self._reference[self._key(eval_set)] = features

    @staticmethod
    def _key(eval_set: EvalSet) -> tuple[str, ...]:
        return (str(eval_set.root.resolve()), *(item.image for item in eval_set.items))


@torch.no_grad()
def evaluate_generator(generator: nn.Module, eval_set: EvalSet, device: torch.device | str = "cpu",
                       batch_size: int = 8, scorers: PerceptualScorers | None = None) -> dict[str, float]:
    """Mean `l1_hole`, `psnr_hole`, `ssim_hole` (and `lpips`, `fid` with `scorers`) over the set,
    overall and as `<policy>/<metric>`, plus `images`. The generator follows the project contract:
    input cat([image * (1 - mask), mask]), output N x 3 x H x W in 0..1; its prediction is
    composited before scoring. The caller chooses train/eval mode."""
    device = torch.device(device)
    scorers = scorers or PerceptualScorers()
    lpips = scorers.lpips.to(device) if scorers.lpips is not None else None
    inception = scorers.fid.to(device) if scorers.fid is not None else None
    reference = scorers.reference_features(eval_set) if inception is not None else None
    fake_features, real_features, policies = [], [], []
    averages = MetricAverages()
    images = 0
    for batch in DataLoader(eval_set, batch_size=batch_size, shuffle=False):
        image, mask = batch["image"].to(device), batch["mask"].to(device)
        prediction = generator(torch.cat([image * (1 - mask), mask], dim=1)).float().clamp(0, 1)
        composite = prediction * mask + image * (1 - mask)
        metrics = hole_metrics(composite, image, mask)
        if lpips is not None:
            metrics["lpips"] = lpips(composite, image)
        averages.update(metrics, list(batch["policy"]))
        if inception is not None:
            fake_features.append(inception(composite).double().cpu().numpy())
            if reference is None:
                real_features.append(inception(image).double().cpu().numpy())
        policies.extend(batch["policy"])
        images += image.shape[0]
    results = {**averages.compute(), "images": float(images)}
    if inception is not None:  # fewer than 2 images: feature_statistics says FID needs 2
        if reference is None:
            reference = np.concatenate(real_features)
            scorers.keep_reference(eval_set, reference)
        fake = np.concatenate(fake_features)
        results["fid"] = fid_from_features(reference, fake)
        groups = np.asarray(policies)
        for policy in sorted(set(policies)):
            chosen = groups == policy
            if chosen.sum() >= 2:
                results[f"{policy}/fid"] = fid_from_features(reference[chosen], fake[chosen])
    return results


def make_evaluator(eval_dir: str | Path, batch_size: int = 8, max_images: int = 0,
                   scorers: PerceptualScorers | None = None
                   ) -> Callable[[nn.Module, torch.device], dict[str, float]]:
    """`evaluate(generator, device) -> metrics` over the set in `eval_dir` (read once, here, so a
    bad folder fails before training starts); `max_images` > 0 keeps that many per policy;
    `scorers` adds LPIPS / FID (the originals' FID features are computed at the first call)."""
    eval_set = EvalSet(eval_dir, max_images=max_images)

    def evaluate(generator: nn.Module, device: torch.device) -> dict[str, float]:
        return evaluate_generator(generator, eval_set, device, batch_size, scorers)

    return evaluate
