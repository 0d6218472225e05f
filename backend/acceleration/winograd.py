"""Winograd F(m x m, 3 x 3) convolutions for float32 on the CPU, written as matrix products.

Why: the FFC blocks' 3x3 convolutions are most of big-lama's multiply-adds, and on a CPU whose
float32 peak oneDNN's direct kernels already reach, only fewer multiply-adds make them faster.
Winograd's F(4x4, 3x3) makes a 4x4 output tile from a 6x6 input tile with 36 products per
input-output channel pair where a direct convolution needs 144. Written as

    input transform   V = (B^T (x) B^T) d        one product with a 36 x 36 matrix
    channel mixing    M[k] = V[k] @ U[k]         36 batched products (T tiles x Cin) @ (Cin x Cout)
    output transform  Y = (A^T (x) A^T) M        one product with a 16 x 36 matrix

on channels_last activations, every step is a BLAS product or a copy of whole channel vectors,
and the mixing (all but a few percent of the work) runs at the GEMM's speed. On a 2-core AVX-512
Xeon one 64 x 64 block convolution, 512 -> 128 channels, took 8 ms against 15-19 ms for oneDNN's
direct kernel or NNPACK (benchmarks/README.md).

The input is transformed once and shared by every kernel that reads it (an FFC layer's local
and global outputs both read the padded local part), and the map is processed in strips of tile
rows so that the transformed tiles stay bounded (under the allocator's reuse threshold)
whatever the map size.

The transforms themselves are a gather copy and products with mostly-zero matrices in torch;
where a C compiler is at hand they run as generated C instead (winograd_source.py, native.py),
which reads each tile once and writes the layout the products want, bias and ReLU included.

Rounding: the transforms mix values with weights up to 2^4 = 16 (points 0, +-1, +-2), so each
output carries about 30x a direct convolution's rounding (measured ~6e-5 absolute on unit-scale
outputs of a 512-channel convolution, NNPACK's F(6x6, 3x3): ~8e-5), far inside the fast path's
1e-4 bound on the generator output, which the tests check on the whole network.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F

from .folding import FoldedConv
from .geometry import even_part
from .native import NativeTransforms
from .native import load as load_native

log = logging.getLogger(__name__)

#: output tile side (F(4x4, 3x3)); 6 works too, with about twice the rounding and no gain (with the
#: compiled transforms, 512 px pass: 1.24-1.33 s against 1.13-1.23 s for 4; 64-cell maps also
#: waste a third of a tile row)
TILE = 4
#: target size of one strip's transformed input tiles. With the torch products 4-32 MiB ran
#: alike (2 MiB slower); with the compiled transforms larger strips won (fewer passes over the
#: weights): 512 px pass 1.19 s at 24 MiB against 1.27 s at 8 MiB, best of 5 alternating runs
#: (1024 px 4.43 / 4.65 s); kept under the allocator's 32 MiB reuse ceiling
STRIP_BYTES = 24 * 2**20
#: Toom-Cook interpolation points per output tile side (the point at infinity is added)
POINTS = {2: (0, 1, -1), 4: (0, 1, -1, 2, -2), 6: (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))}


def _poly_mul(p: list[Fraction], q: list[Fraction]) -> list[Fraction]:
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, x in enumerate(p):
        for j, y in enumerate(q):
            out[i + j] += x * y
    return out


@functools.lru_cache(maxsize=None)
def transform_matrices(tile: int, kernel: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T, G, B^T) of F(tile, kernel) in float64, built exactly from the Toom-Cook points:
    y = A^T [(G g) * (B^T d)] is the correlation of a (tile + kernel - 1)-long d with g."""
    points = [Fraction(p) for p in POINTS[tile]]
    if len(points) != tile + kernel - 2:
        raise ValueError(f"no Winograd points for F({tile}, {kernel})")
    size = tile + kernel - 1

    def others(i: int) -> list[Fraction]:  # prod over l != i of (x - p_l), low degree first
        poly = [Fraction(1)]
        for l, p in enumerate(points):
            if l != i:
                poly = _poly_mul(poly, [-p, Fraction(1)])
        return poly

    a_t = [[p ** j for p in points] + [Fraction(int(j == tile - 1))] for j in range(tile)]
    g = []
    for i, p in enumerate(points):
        norm = Fraction(1)
        for l, q in enumerate(points):
            if l != i:
                norm *= p - q
        g.append([p ** k / norm for k in range(kernel)])
    g.append([Fraction(int(k == kernel - 1)) for k in range(kernel)])
    b_t = [others(i) + [Fraction(0)] * (size - len(others(i))) for i in range(len(points))]
    b_t.append(others(-1))  # the product over all points
    as_tensor = functools.partial(torch.tensor, dtype=torch.float64)
    return (as_tensor([[float(v) for v in row] for row in a_t]), as_tensor([[float(v) for v in row] for row in g]),
            as_tensor([[float(v) for v in row] for row in b_t]))


@functools.lru_cache(maxsize=None)
def tile_transforms(tile: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(B^T (x) B^T, A^T (x) A^T) in float32 on `device`: the input and output transforms of a
    whole tile as single matrices, made once instead of on every convolution."""
    a_t, _, b_t = (m.to(dtype=torch.float32, device=device) for m in transform_matrices(tile))
    return torch.kron(b_t, b_t), torch.kron(a_t, a_t)


class WinogradWeights:
    """One 3x3 stride-1 convolution's weights in the Winograd domain: U[k] = (G w G^T)[k], laid out
    (tile positions, in, out) for the channel-mixing products; computed in float64, stored float32."""

    def __init__(self, folded: FoldedConv, device: torch.device, tile: int = TILE) -> None:
        if folded.transposed or folded.stride != 1 or folded.dilation != 1 or folded.kernel != 3:
            raise ValueError("a Winograd kernel needs an ordinary 3x3 convolution with stride 1")
        if device.type != "cpu":
            raise ValueError("the Winograd kernels are for the CPU (cuDNN has its own)")
        _, g, _ = transform_matrices(tile)
        size = tile + 2
        # U[(a, b), i, o] = sum over (k, l) of (G (x) G)[(a, b), (k, l)] w[o, i, k, l]: one float64
        # product over the weight laid out (k, l, i, o), which gives U's layout directly (an einsum
        # or a transposed copy of U took ~10x longer: seconds for big-lama's 72 convolutions)
        taps = folded.weight.permute(2, 3, 1, 0).to(torch.float64, memory_format=torch.contiguous_format)
        u = torch.kron(g, g) @ taps.view(9, -1)
        self.tile = tile
        self.u = u.view(size * size, folded.in_channels, folded.out_channels).to(device=device, dtype=torch.float32)
        self.bias = None if folded.bias is None else folded.bias.to(device=device, dtype=torch.float32)
        self.in_channels, self.out_channels = folded.in_channels, folded.out_channels

    @property
    def nbytes(self) -> int:
        total = self.u.numel() * self.u.element_size()
        return total + (0 if self.bias is None else self.bias.numel() * self.bias.element_size())


@dataclass(frozen=True)
class WinogradProduct:
    """A convolution of input channels [in_start, in_start + weights.in_channels) of a shared input."""

    weights: WinogradWeights
    in_start: int = 0
    relu: bool = False


def _tile_row_bytes(tile_cols: int, channels: int, tile: int) -> int:
    """float32 bytes of one row of transformed input tiles (what STRIP_BYTES bounds)."""
    return (tile + 2) ** 2 * tile_cols * channels * 4


def _strip_rows(tile_rows: int, tile_cols: int, channels: int, tile: int) -> int:
    """Tile rows per strip: equal strips, each's transformed tiles at most STRIP_BYTES."""
    return even_part(tile_rows, STRIP_BYTES // _tile_row_bytes(tile_cols, channels, tile))


def workspace_bytes(width: int, channels: int, out_channels: int, tile: int = TILE) -> int:
    """Upper bound of the temporaries `convolve` holds at once for one strip: the gathered and the
    transformed tiles, and one product's mixed and output-transformed values."""
    per_row = _tile_row_bytes(-(-width // tile), channels, tile)
    strip_in = max(1, STRIP_BYTES // per_row) * per_row
    return 2 * strip_in + 2 * strip_in * out_channels // channels


def padded_size(size: int, tile: int = TILE) -> int:
    """The padded side the tiles need for `size` outputs: whole tiles plus the 3x3 halo."""
    return -(-size // tile) * tile + 2


def convolve(padded: torch.Tensor, height: int, width: int, products: list[WinogradProduct],
             tile: int = TILE) -> list[torch.Tensor]:
    """relu?(conv3x3(padded channels) + bias) for each product, channels_last outputs of
    height x width, from one float32 channels_last input of padded_size(height) x padded_size(width)
    (rows and columns past the halo only feed outputs that are cut off); the transforms as torch
    products (`convolve_reflected` has the compiled ones)."""
    batch, channels, rows_in, cols_in = padded.shape
    if (rows_in, cols_in) != (padded_size(height, tile), padded_size(width, tile)):
        raise ValueError(f"input of {rows_in}x{cols_in} does not fit {height}x{width} outputs in {tile}-tiles")
    _check_products(products, tile, channels)
    padded = padded.to(torch.float32).contiguous(memory_format=torch.channels_last)
    to_tiles, _ = tile_transforms(tile, padded.device)  # (size^2, size^2)
    size = tile + 2
    tile_rows, tile_cols = (rows_in - 2) // tile, (cols_in - 2) // tile
    strip = _strip_rows(tile_rows, tile_cols, channels, tile)
    outs = [torch.empty(batch, p.weights.out_channels, tile_rows * tile, tile_cols * tile, device=padded.device,
                        dtype=padded.dtype, memory_format=torch.channels_last) for p in products]
    for index in range(batch):
        image = padded[index].permute(1, 2, 0)  # (rows, cols, channels), contiguous
        s_row, s_col, _ = image.stride()
        for first in range(0, tile_rows, strip):
            count = min(strip, tile_rows - first)
            tiles = image.as_strided(
                (size, size, count, tile_cols, channels), (s_row, s_col, tile * s_row, tile * s_col, 1),
                image.storage_offset() + first * tile * s_row)
            cells = count * tile_cols
            spectra = torch.mm(to_tiles, tiles.reshape(size * size, cells * channels))
            spectra = spectra.view(size * size, cells, channels)
            _emit(spectra, products, outs, index, first, count, tile_cols, tile, None)
    return _cropped(outs, height, width)


def convolve_reflected(parts: tuple[torch.Tensor, ...], products: list[WinogradProduct],
                       native: NativeTransforms) -> list[torch.Tensor]:
    """`convolve` of the parts' channels concatenated and reflect-padded by 1, with the compiled
    input transform reading the padding in place: no padded copy of the map is made (one pass
    over a 512-channel block map less per FFC layer). The parts are float32 channels_last maps of
    one size, at least 2 x 2 (as reflect padding needs)."""
    tile = native.tile
    batch, _, height, width = parts[0].shape
    channels = sum(part.shape[1] for part in parts)
    if any(part.shape[0] != batch or part.shape[2:] != parts[0].shape[2:] or part.dtype != torch.float32
           or not part.is_contiguous(memory_format=torch.channels_last) for part in parts):
        raise ValueError("parts must be float32 channels_last maps of one size")
    if height < 2 or width < 2:
        raise ValueError(f"a {height}x{width} map is too small to reflect-pad")
    _check_products(products, tile, channels)
    size = tile + 2
    tile_rows, tile_cols = -(-height // tile), -(-width // tile)
    strip = _strip_rows(tile_rows, tile_cols, channels, tile)
    outs = [torch.empty(batch, p.weights.out_channels, tile_rows * tile, tile_cols * tile, device=parts[0].device,
                        dtype=torch.float32, memory_format=torch.channels_last) for p in products]
    for index in range(batch):
        images = [part[index].permute(1, 2, 0) for part in parts]  # (rows, cols, channels), contiguous
        for first in range(0, tile_rows, strip):
            count = min(strip, tile_rows - first)
            spectra = parts[0].new_empty(size * size, count * tile_cols, channels)
            native.input_transform_reflected(images, first, tile_cols, spectra)
            _emit(spectra, products, outs, index, first, count, tile_cols, tile, native)
    return _cropped(outs, height, width)


def _check_products(products: list[WinogradProduct], tile: int, channels: int) -> None:
    if any(p.weights.tile != tile for p in products):
        raise ValueError(f"weights transformed for other tiles than {tile}x{tile}")
    if any(p.in_start < 0 or p.in_start + p.weights.in_channels > channels for p in products):
        raise ValueError(f"a product reads channels outside the input's {channels}")


def _emit(spectra: torch.Tensor, products: list[WinogradProduct], outs: list[torch.Tensor], index: int, first: int,
          count: int, tile_cols: int, tile: int, native: NativeTransforms | None) -> None:
    """One strip's channel mixing and output transforms, into image `index` of each product's output."""
    size = tile + 2
    cells = count * tile_cols
    for product, out in zip(products, outs):
        weights = product.weights
        mixed = torch.bmm(spectra[:, :, product.in_start:product.in_start + weights.in_channels], weights.u)
        target = out[index].permute(1, 2, 0)[first * tile:(first + count) * tile]
        if native is not None:
            native.output_transform(mixed, weights.bias, product.relu, target, tile_cols)
            continue
        _, from_tiles = tile_transforms(tile, spectra.device)  # (tile^2, size^2)
        mixed = mixed.view(size * size, cells * weights.out_channels)
        if weights.bias is None:
            values = torch.mm(from_tiles, mixed)
        else:  # the bias rides along in the output transform's product
            values = torch.addmm(weights.bias.repeat(cells), from_tiles, mixed)
        del mixed
        values = values.view(tile, tile, count, tile_cols, weights.out_channels).permute(2, 0, 3, 1, 4)
        target = target.view(count, tile, tile_cols, tile, weights.out_channels)
        if product.relu:  # the layout copy and the ReLU in one pass
            torch.clamp_min(values, 0, out=target)
        else:
            target.copy_(values)


def _cropped(outs: list[torch.Tensor], height: int, width: int) -> list[torch.Tensor]:
    """The outputs cut from whole tiles to height x width."""
    if tuple(outs[0].shape[-2:]) != (height, width):
        outs = [out[:, :, :height, :width].contiguous(memory_format=torch.channels_last) for out in outs]
    return outs


@functools.lru_cache(maxsize=None)
def native_transforms(tile: int = TILE) -> NativeTransforms | None:
    """The compiled transforms (native.py) if they build, load and pass a check, else None (the
    torch products run). The check: on a small map in two parts (odd sizes, channels past the C
    code's 64-channel blocks, bias and ReLU, an input channel offset, a second image) the error of
    `convolve_reflected` against a float64 direct convolution is at most twice the torch
    products' (the two round differently, ~1e-5 here; a wrong build is off by the outputs' own
    size)."""
    a_t, _, b_t = transform_matrices(tile)
    native = load_native(tile, a_t, b_t)
    if native is None:
        return None
    generator = torch.Generator().manual_seed(0)
    height, width = 9, 13
    x = torch.randn(2, 70, height, width, generator=generator)
    reflected = F.pad(x.double(), (1, 1, 1, 1), mode="reflect")
    padded = F.pad(F.pad(x, (1, 1, 1, 1), mode="reflect"),
                   (0, padded_size(width, tile) - width - 2, 0, padded_size(height, tile) - height - 2))
    padded = padded.contiguous(memory_format=torch.channels_last)
    parts = tuple(part.contiguous(memory_format=torch.channels_last) for part in (x[:, :40], x[:, 40:]))
    products, exact = [], []
    for in_start, in_channels, out_channels, with_bias, relu in ((0, 70, 5, True, True), (3, 60, 66, False, False)):
        weight = torch.randn(out_channels, in_channels, 3, 3, generator=generator) / (3 * in_channels ** 0.5)
        bias = torch.randn(out_channels, generator=generator) if with_bias else None
        products.append(WinogradProduct(WinogradWeights(FoldedConv(weight, bias), padded.device, tile), in_start, relu))
        expected = F.conv2d(reflected[:, in_start:in_start + in_channels], weight.double(),
                            None if bias is None else bias.double())
        exact.append(expected.relu() if relu else expected)

    def error(outputs: list[torch.Tensor]) -> float:
        return max(float((y.double() - e).abs().max()) for y, e in zip(outputs, exact))

    torch_error = error(convolve(padded, height, width, products, tile))
    try:
        native_error = error(convolve_reflected(parts, products, native))
    except (OSError, ValueError) as failure:
        log.warning("the native Winograd transforms failed their check (%s); the torch products run", failure)
        return None
    if not native_error <= 2 * torch_error + 1e-6:
        log.warning("the native Winograd transforms are off by %.3g (the torch products by %.3g; built %s): "
                    "the torch products run", native_error, torch_error, native.path)
        return None
    return native
