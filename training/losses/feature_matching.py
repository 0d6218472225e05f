"""Feature matching on discriminator activations (pix2pixHD): the generator matches real statistics."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def feature_matching_loss(fake_features: Sequence[torch.Tensor], real_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the MSE between fake and real activations (real ones are targets, detached)."""
    if len(fake_features) != len(real_features) or not fake_features:
        raise ValueError(f"feature lists differ in length or are empty: {len(fake_features)} vs {len(real_features)}")
    return torch.stack([F.mse_loss(fake, real.detach()) for fake, real in zip(fake_features, real_features)]).mean()
