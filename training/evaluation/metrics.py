"""Inpainting quality inside the hole: L1, PSNR and SSIM, per image, in torch (CPU or GPU).

Definitions (all on images in 0..1, `mask` > 0.5 marks the hole; images whose mask is empty get
NaN and are left out of averages):

* **L1 (hole)**: mean of |prediction - target| over the hole pixels and the 3 channels.
* **PSNR (hole)**: `10 * log10(1 / MSE)`, MSE over the hole pixels and the 3 channels (data range
  1); MSE is floored at 1e-10, so a perfect fill scores 100 dB.
* **SSIM (hole)**: the SSIM map of Wang et al. (2004) -- Gaussian window 11 x 11 with sigma 1.5,
  K1 = 0.01, K2 = 0.03, data range 1, population (not sample) statistics, per channel -- averaged
  over the 3 channels and the hole pixels. The map is computed over the whole image with mirror
  padding (`torch` "reflect": the border pixel is not repeated) so hole pixels at the border have a
  value; away from the border it equals scikit-image's `structural_similarity(..., gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, data_range=1)` map, whose image mean crops 5 px per side
  (`ssim_whole` reproduces that mean for comparisons).

Evaluating a generator, the prediction is first composited (`pred * mask + target * (1 - mask)`),
as users see it; L1 and PSNR do not depend on that, SSIM windows at the hole's edge do.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
PSNR_MSE_FLOOR = 1e-10


def _hole(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[0] != like.shape[0] or mask.shape[2:] != like.shape[2:]:
        raise ValueError(f"mask must be N x 1 x H x W matching {tuple(like.shape)}, got {tuple(mask.shape)}")
    return (mask > 0.5).to(like.dtype)


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"prediction and target must both be N x C x H x W, got {tuple(pred.shape)} and {tuple(target.shape)}")


def _mean_in_hole(values: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """Per-image mean of N x C x H x W `values` over the hole pixels and all channels (NaN if none)."""
    weight = hole.expand_as(values)
    total = weight.sum(dim=(1, 2, 3))
    sums = (values * weight).sum(dim=(1, 2, 3))
    return torch.where(total > 0, sums / total.clamp_min(1), torch.full_like(sums, math.nan))


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image L1 inside the hole (N values)."""
    _check_pair(pred, target)
    return _mean_in_hole((pred.float() - target.float()).abs(), _hole(mask, pred).float())


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR inside the hole in dB (N values, data range 1)."""
    _check_pair(pred, target)
    mse = _mean_in_hole((pred.float() - target.float()) ** 2, _hole(mask, pred).float())
    return 10.0 * torch.log10(1.0 / mse.clamp_min(PSNR_MSE_FLOOR))


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The normalised 1-D Gaussian of the SSIM window (the 2-D window is its outer product)."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    weights = torch.exp(-(offsets ** 2) / (2.0 * sigma ** 2))
    return weights / weights.sum()


def ssim_map(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The N x C x H x W SSIM map (mirror-padded at the borders; see the module docstring)."""
    _check_pair(pred, target)
    channels = pred.shape[1]
    radius = SSIM_WINDOW // 2
    if min(pred.shape[2:]) <= radius:
        raise ValueError(f"SSIM needs images larger than {radius} px, got {tuple(pred.shape[2:])}")
    x, y = pred.double(), target.double()
    window = gaussian_window().to(x.device)
    horizontal = window.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = window.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)

    # the five local moments in one padded tensor, blurred by one separable convolution
    moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    padded = F.pad(moments, (radius, radius, radius, radius), mode="reflect")
    groups = 5 * channels
    blurred = F.conv2d(F.conv2d(padded, horizontal.repeat(5, 1, 1, 1), groups=groups),
                       vertical.repeat(5, 1, 1, 1), groups=groups)
    mu_x, mu_y, xx, yy, xy = blurred.split(channels, dim=1)
    var_x = xx - mu_x ** 2
    var_y = yy - mu_y ** 2
    cov = xy - mu_x * mu_y
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM averaged over the hole pixels and channels (N values)."""
    return _mean_in_hole(ssim_map(pred, target), _hole(mask, pred).double()).float()


def ssim_whole(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM of the whole image, the map's mean without 5 px per border (scikit-image's
    convention with the Wang et al. settings)."""
    radius = SSIM_WINDOW // 2
    return ssim_map(pred, target)[..., radius:-radius, radius:-radius].mean(dim=(1, 2, 3)).float()


def hole_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"l1_hole", "psnr_hole", "ssim_hole"}: N values each (NaN for images without a hole)."""
    return {"l1_hole": masked_l1(pred, target, mask), "psnr_hole": masked_psnr(pred, target, mask),
            "ssim_hole": masked_ssim(pred, target, mask)}


class MetricAverages:
    """Running means of per-image metrics, overall and per group (e.g. per mask policy)."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def update(self, metrics: dict[str, torch.Tensor], groups: list[str] | None = None) -> None:
        for name, values in metrics.items():
            for i, value in enumerate(values.detach().cpu().tolist()):
                if math.isnan(value):
                    continue
                keys = [name] + ([f"{groups[i]}/{name}"] if groups is not None else [])
                for key in keys:
                    self._sums[key] = self._sums.get(key, 0.0) + value
                    self._counts[key] = self._counts.get(key, 0) + 1

    def compute(self) -> dict[str, float]:
        """Means by key (`l1_hole`, `thin-256/l1_hole`, ...); empty when nothing was added."""
        return {key: self._sums[key] / self._counts[key] for key in sorted(self._sums)}
