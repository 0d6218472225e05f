"""Winograd F(m x m, 3 x 3) convolutions (lama_backend.acceleration.winograd) against float64
direct convolutions: transform matrices, odd sizes, strips, shared inputs, bias and ReLU."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lama_backend.acceleration import winograd
from lama_backend.acceleration.folding import FoldedConv
from lama_backend.acceleration.winograd import (WinogradProduct, WinogradWeights, convolve, padded_size,
                                                transform_matrices)

CPU = torch.device("cpu")


@pytest.mark.parametrize("tile", sorted(winograd.POINTS))
def test_transform_matrices_compute_a_correlation_exactly(tile):
    """In float64 the transforms reproduce a 1-D correlation to rounding (1e-12): they are exact."""
    a_t, g, b_t = transform_matrices(tile)
    size = tile + 2
    assert a_t.shape == (tile, size) and g.shape == (size, 3) and b_t.shape == (size, size)
    generator = torch.Generator().manual_seed(tile)
    d = torch.randn(size, dtype=torch.float64, generator=generator)
    k = torch.randn(3, dtype=torch.float64, generator=generator)
    want = torch.stack([(d[i:i + 3] * k).sum() for i in range(tile)])
    assert (a_t @ ((g @ k) * (b_t @ d)) - want).abs().max().item() < 1e-12


def _padded_input(x: torch.Tensor, tile: int) -> torch.Tensor:
    """x reflect-padded by 1, then zero-padded to whole tiles, channels_last (as the executor does)."""
    height, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    padded = F.pad(padded, (0, padded_size(width, tile) - width - 2, 0, padded_size(height, tile) - height - 2))
    return padded.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("tile", [2, 4, 6])
@pytest.mark.parametrize("size", [(8, 8), (13, 7), (3, 21), (2, 2)])
def test_convolution_matches_direct(tile, size):
    """Rounding: the transforms mix values with weights up to tile-dependent powers of the
    points, so the error is a few 1e-6 of the output scale for F(4x4) (1e-5 for F(6x6)); a wrong
    tap or tile offset would be of the order of the output itself."""
    generator = torch.Generator().manual_seed(sum(size) + tile)
    x = torch.randn(2, 5, *size, generator=generator)
    weight = torch.randn(7, 5, 3, 3, generator=generator) / 15 ** 0.5
    bias = torch.randn(7, generator=generator)
    want = F.conv2d(F.pad(x.double(), (1, 1, 1, 1), mode="reflect"), weight.double(), bias.double())
    products = [WinogradProduct(WinogradWeights(FoldedConv(weight, bias), CPU, tile), relu=True),
                WinogradProduct(WinogradWeights(FoldedConv(weight, None), CPU, tile))]
    with_relu, plain = convolve(_padded_input(x, tile), *size, products, tile)
    for got, expected in ((with_relu, want.relu()), (plain, want - bias.double()[:, None, None])):
        assert got.shape == expected.shape and got.is_contiguous(memory_format=torch.channels_last)
        assert (got.double() - expected).abs().max().item() < 2e-5 * expected.abs().max().item()


def test_strips_and_a_shared_input(monkeypatch):
    """Tiny strips (one tile row each) and a product reading a channel range of the shared input
    give the same result as one strip over the whole map (to the products' rounding)."""
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(1, 12, 18, 10, generator=generator)
    part_weight, part_bias = torch.randn(9, 4, 3, 3, generator=generator), torch.randn(9, generator=generator)
    whole = WinogradWeights(FoldedConv(torch.randn(6, 12, 3, 3, generator=generator), None), CPU)
    part = WinogradWeights(FoldedConv(part_weight, part_bias), CPU)
    products = [WinogradProduct(whole), WinogradProduct(part, in_start=8)]
    padded = _padded_input(x, 4)
    one_strip = convolve(padded, 18, 10, products)
    monkeypatch.setattr(winograd, "STRIP_BYTES", 1)
    strips = convolve(padded, 18, 10, products)
    # BLAS blocks products of other sizes differently, and the transformed values are ~10x the
    # output: rounding of a few 1e-6 of the output scale; a misplaced strip would be of order 1
    for a, b in zip(one_strip, strips):
        assert (a - b).abs().max().item() < 1e-5 * a.abs().max().item()
    reflected = F.pad(x.double(), (1, 1, 1, 1), mode="reflect")
    want = F.conv2d(reflected[:, 8:], part_weight.double(), part_bias.double())
    assert (strips[1].double() - want).abs().max().item() < 2e-5 * want.abs().max().item()


def test_bad_input_is_refused():
    weight = torch.zeros(2, 3, 3, 3)
    for bad in (FoldedConv(weight, None, stride=2), FoldedConv(torch.zeros(2, 3, 5, 5), None),
                FoldedConv(weight, None, transposed=True)):
        with pytest.raises(ValueError, match="3x3"):
            WinogradWeights(bad, CPU)
    with pytest.raises(ValueError, match="CPU"):
        WinogradWeights(FoldedConv(weight, None), torch.device("cuda"))
    weights = WinogradWeights(FoldedConv(weight, None), CPU)
    with pytest.raises(ValueError, match="does not fit"):
        convolve(torch.zeros(1, 3, 10, 10).contiguous(memory_format=torch.channels_last), 9, 8,
                 [WinogradProduct(weights)])
    with pytest.raises(ValueError, match="other tiles"):
        convolve(torch.zeros(1, 3, 10, 10), 8, 8, [WinogradProduct(weights)], tile=2)
    with pytest.raises(ValueError, match="outside"):
        convolve(torch.zeros(1, 3, 10, 10), 8, 8, [WinogradProduct(weights, in_start=1)])
