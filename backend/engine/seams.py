"""Seamless fills: shift the model's fill so it meets the known pixels at the hole's edge.

A network's fill rarely reproduces the colours right at the hole's border exactly (the small
bundled model's raw output is only ~27 dB on known pixels), and pasting it in then leaves a
visible seam. Poisson image editing (Perez et al. 2003) removes the seam without touching
the fill's detail: keep the fill's gradients inside the hole and take the boundary values from
the image. That equals adding to the fill the harmonic *offset* field `o` with

    laplacian(o) = 0 inside the hole,    o = image - fill on the known pixels around it,

a smooth field that is exactly the mismatch at the border and fades towards the hole's middle.
Pixels outside the hole are never changed (the composite keeps the originals there anyway).

The Laplace equation is solved by multigrid V-cycles (red-black over-relaxation sweeps, the
remaining error solved on ever coarser grids) over the hole's bounding box only, on the model's
device: each cycle costs about a dozen passes over that box, and a 1400 x 1500 px hole needs 6
(about 16 s on one CPU core; a 200 px hole takes a fraction of a second). The image border acts
as a mirror (zero normal derivative), so holes that touch it still work.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .crops import Box

# Multigrid settings: V-cycles until one changes no value by TOLERANCE, a tenth of an 8-bit
# step (3-6 cycles; holes along the image border converge slower), red-black SOR sweeps before
# and after each coarse correction, sweeps on the coarsest grid. tests/test_seams.py checks the result against an
# exact sparse solve (error far below one 8-bit step).
MAX_V_CYCLES = 12
TOLERANCE = 3e-4
SWEEPS_PER_LEVEL = 4
SWEEPS_COARSEST = 50
OVER_RELAXATION = 1.5
# the coarsest grid: recursion stops below this many pixels per side
COARSEST_SIDE = 8


def _neighbour_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of the 4 neighbours; replicate padding makes the image border a mirror (an outside
    neighbour equals the pixel itself, so the fixed point is the equation with the in-bounds
    neighbours only)."""
    padded = F.pad(values, (1, 1, 1, 1), mode="replicate")
    total = padded[..., :-2, 1:-1] + padded[..., 2:, 1:-1]
    total += padded[..., 1:-1, :-2]
    total += padded[..., 1:-1, 2:]
    return total.mul_(0.25)


def _relax(values: torch.Tensor, source: torch.Tensor | None, unknown: torch.Tensor, sweeps: int) -> torch.Tensor:
    """`sweeps` red-black over-relaxation sweeps of `x = mean of 4 neighbours + source` on the
    `unknown` pixels (the others stay fixed: they are the boundary condition). In place."""
    height, width = values.shape[-2:]
    rows = torch.arange(height, device=values.device)[:, None]
    cols = torch.arange(width, device=values.device)[None, :]
    red = ((rows + cols) % 2 == 0)[None, None]
    steps = [(unknown & colour).to(values.dtype).mul_(OVER_RELAXATION) for colour in (red, ~red)]
    for _ in range(sweeps):
        for step in steps:
            update = _neighbour_mean(values)
            if source is not None:
                update += source
            update -= values
            update *= step
            values += update
    return values


def _v_cycle(values: torch.Tensor, source: torch.Tensor | None, unknown: torch.Tensor) -> torch.Tensor:
    """One multigrid V-cycle for `x - mean4(x) = source` on `unknown`: smooth, solve for the
    remaining error on a 2x coarser grid (only blocks wholly inside the hole are unknown there,
    so the error stays 0 on known pixels), add it back, smooth again."""
    height, width = values.shape[-2:]
    if min(height, width) < 2 * COARSEST_SIDE:
        return _relax(values, source, unknown, SWEEPS_COARSEST)
    values = _relax(values, source, unknown, SWEEPS_PER_LEVEL)
    residual = _neighbour_mean(values)
    if source is not None:
        residual += source
    residual = torch.where(unknown, residual - values, torch.zeros_like(values))
    pad = (0, width % 2, 0, height % 2)
    # an odd last row / column is repeated (the border is a mirror), so holes reaching it keep
    # their coarse unknowns there
    coarse_unknown = F.avg_pool2d(F.pad(unknown.to(values.dtype), pad, mode="replicate"), 2) > 0.999
    if bool(coarse_unknown.any()):
        # x - mean4(x) approximates -laplacian / 4 in pixel units; on a grid twice as coarse the
        # same operator is 4 times larger, hence the factor on the restricted residual
        coarse_source = 4.0 * F.avg_pool2d(F.pad(residual, pad, mode="replicate"), 2)
        coarse_error = _v_cycle(torch.zeros_like(coarse_source), coarse_source, coarse_unknown)
        error = F.interpolate(coarse_error, scale_factor=2, mode="bilinear", align_corners=False)[..., :height, :width]
        values += error * unknown
    return _relax(values, source, unknown, SWEEPS_PER_LEVEL)


def _solve(values: torch.Tensor, unknown: torch.Tensor) -> torch.Tensor:
    """Harmonic values on `unknown` (N x 1 x H x W bool) given the others (N x C x H x W)."""
    values = torch.where(unknown, torch.zeros_like(values), values)
    for _ in range(MAX_V_CYCLES):
        before = values.clone()
        values = _v_cycle(values, None, unknown)
        if float((values - before).abs().max()) < TOLERANCE:
            break
    return values


def harmonic_offset(mismatch: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """The offset field: equals `mismatch` off the hole, harmonic inside it (N x C x H x W)."""
    if hole.dim() != 4 or hole.shape[1] != 1 or hole.shape[-2:] != mismatch.shape[-2:]:
        raise ValueError(f"hole must be N x 1 x H x W matching {tuple(mismatch.shape)}, got {tuple(hole.shape)}")
    if bool(hole.all()):  # no border to match: nothing to do
        return torch.zeros_like(mismatch)
    return _solve(mismatch, hole.bool())


def match_seams(prediction: np.ndarray, original: np.ndarray, hole: np.ndarray,
                device: torch.device | str = "cpu") -> np.ndarray:
    """Shift `prediction` (H x W x 3 float32, 0..1) inside `hole`, **in place**, so it meets
    `original` (same layout) at the hole's edge, and return it; values outside the hole keep
    theirs. Only the hole's bounding box and the 1 px ring of known pixels around it are read."""
    bounds = Box.bounding(hole)
    if bounds is None:
        return prediction
    window = bounds.expanded(1, *hole.shape).slices
    with torch.inference_mode():
        fill = torch.from_numpy(np.ascontiguousarray(prediction[window].transpose(2, 0, 1)))[None].to(device)
        known = torch.from_numpy(np.ascontiguousarray(original[window].transpose(2, 0, 1)))[None].to(device)
        inside = torch.from_numpy(np.ascontiguousarray(hole[window]))[None, None].to(device)
        offset = harmonic_offset((known - fill).float(), inside)
        shifted = torch.where(inside, (fill + offset).clamp(0, 1), fill).cpu().numpy()
    prediction[window] = shifted[0].transpose(1, 2, 0)
    return prediction
