"""The fast path is the same network: its fp32 output equals the plain eager pass within 1e-4.

Tolerance: folding batch norm into the convolution weights and oneDNN's fused kernels change
the order of float32 roundings; NNPACK's and our own (winograd.py) Winograd convolutions round about 10-30x
more than a direct convolution (relative ~1e-5). 1e-4 on a 0..1 sigmoid output is far above that rounding
(observed ~1e-7 to 1e-5) and far below any visible difference.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from lama_backend.acceleration import FastGenerator, UnsupportedGenerator
from lama_backend.acceleration.folding import batch_norm_affine, fold
from lama_backend.acceleration.kernels import NnpackKernel, mkldnn_fused_ops_available, nnpack_usable
from lama_backend.acceleration.memory import memory_budget, parse_memory_size
from lama_backend.acceleration.runtime import (
    configure_cpu_threads, configure_cuda, cpu_bf16_support, cudnn_autotune, resolve_precision,
)
from lama_training.modules.generators import FFCConvConfig, GeneratorConfig, make_generator

TOLERANCE = 1e-4
BACKENDS = [False] + ([True] if mkldnn_fused_ops_available() else [])
NNPACK = [False] + ([True] if nnpack_usable() else [])


def randomise_batch_norms(module: nn.Module, seed: int) -> nn.Module:
    """Random running statistics and affine parameters: folding must handle all four."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, nn.BatchNorm2d):
                shape = bn.running_mean.shape
                bn.running_mean.copy_(torch.randn(shape, generator=generator) * 0.5)
                bn.running_var.copy_(torch.rand(shape, generator=generator) * 1.5 + 0.5)
                bn.weight.copy_(1 + torch.randn(shape, generator=generator) * 0.3)
                bn.bias.copy_(torch.randn(shape, generator=generator) * 0.3)
    return module.eval()


def small_generator(seed: int = 0, **changes) -> nn.Module:
    torch.manual_seed(seed)
    config = GeneratorConfig(ngf=8, n_blocks=2, **changes)
    return randomise_batch_norms(make_generator(config), seed)


def network_input(height: int, width: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, height, width, generator=generator)
    mask = (torch.rand(1, 1, height, width, generator=generator) > 0.6).float()
    return torch.cat([image * (1 - mask), mask], dim=1)


def eager(generator: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return generator(x)


def test_batch_norm_folding_is_exact_affine():
    conv = nn.Conv2d(5, 7, 3, bias=True)
    bn = randomise_batch_norms(nn.Sequential(nn.BatchNorm2d(7)), seed=3)[0]
    x = torch.randn(2, 5, 9, 11)
    folded = fold(conv, bn).to_float32()
    got = nn.functional.conv2d(x, folded.weight, folded.bias)
    with torch.no_grad():
        want = bn(conv(x))
    assert (got - want).abs().max() < 1e-5
    scale, shift = batch_norm_affine(bn)
    assert scale.shape == shift.shape == (7,)


@pytest.mark.parametrize("use_winograd", [True, False])
@pytest.mark.parametrize("use_nnpack", NNPACK)
@pytest.mark.parametrize("use_mkldnn", BACKENDS)
@pytest.mark.parametrize("size", [(64, 64), (72, 104), (40, 96)])
def test_fast_fp32_equals_eager(use_mkldnn, use_nnpack, use_winograd, size):
    """Every way of running the convolutions; (72, 104) and (40, 96) give block maps of 9 x 13 and
    5 x 12 cells, which Winograd's 4 x 4 tiles do not divide."""
    generator = small_generator(seed=size[1])
    x = network_input(*size, seed=size[0])
    fast = FastGenerator(generator, precision="fp32", use_mkldnn=use_mkldnn, use_nnpack=use_nnpack,
                         use_winograd=use_winograd)
    assert fast.use_nnpack == use_nnpack
    assert fast.block_convs == ("winograd" if use_winograd else "nnpack" if use_nnpack else "direct")
    assert isinstance(fast.decoder[-1].kernel, NnpackKernel) == use_nnpack  # the 3-channel output conv
    want = eager(generator, x)
    got = fast(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert (got - want).abs().max().item() < TOLERANCE
    # a real difference is detected: the output is not trivially constant
    assert want.std() > 1e-3


@pytest.mark.parametrize("use_winograd", [True, False] if nnpack_usable() else [True])
def test_blocks_handle_a_batch(use_winograd):
    """Batch > 1: the local part of the padded block input is then a strided slice (NNPACK), and
    Winograd's tiles are gathered image by image."""
    generator = small_generator(seed=9)
    x = torch.cat([network_input(48, 56, seed=1), network_input(48, 56, seed=2)])
    got = FastGenerator(generator, use_nnpack=not use_winograd or None, use_winograd=use_winograd)(x)
    assert (got - eager(generator, x)).abs().max().item() < TOLERANCE


def test_nnpack_and_winograd_are_float32_on_cpu_only():
    with pytest.raises(ValueError, match="float32"):
        FastGenerator(small_generator(), precision="bf16", use_nnpack=True)
    with pytest.raises(ValueError, match="float32"):
        FastGenerator(small_generator(), precision="bf16", use_winograd=True)
    bf16 = FastGenerator(small_generator(), precision="bf16")
    assert not bf16.use_nnpack and not bf16.use_winograd and bf16.block_convs == "direct"
    fp32 = FastGenerator(small_generator())
    assert fp32.use_nnpack == nnpack_usable() and fp32.block_convs == "winograd"


def test_fast_path_matches_big_lama_structure_with_official_fixture(reference_dir):
    """The official implementation's own output on the small fixture, reproduced by the fast path."""
    import numpy as np
    data = np.load(reference_dir / "ffc_small_fixture.npz")
    generator = make_generator(GeneratorConfig(ngf=8, n_blocks=2)).eval()
    state = {key[len("state."):]: torch.from_numpy(data[key]) for key in data.files if key.startswith("state.")}
    generator.load_state_dict(state)
    got = FastGenerator(generator)(torch.from_numpy(data["input"]))
    assert (got - torch.from_numpy(data["output"])).abs().max().item() < TOLERANCE


def test_fast_path_leaves_the_module_untouched():
    generator = small_generator(seed=5)
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    FastGenerator(generator)
    after = generator.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_unsupported_generators_are_refused():
    with pytest.raises(UnsupportedGenerator):
        FastGenerator(nn.Sequential(nn.Conv2d(4, 3, 3)))
    lfu = small_generator(resnet_conv=FFCConvConfig(0.75, 0.75, enable_lfu=True))
    with pytest.raises(UnsupportedGenerator, match="LFU"):
        FastGenerator(lfu)


def test_blocks_winograd_does_not_cover_run_direct():
    """A ResNet block with dilated 3x3 convolutions (an FFCResnetBlock option) is outside
    F(4x4, 3x3): asked for Winograd, its layers run oneDNN / ATen convolutions, exactly as eager."""
    from lama_backend.acceleration.fast_generator import FastResnetBlock
    from lama_backend.acceleration.kernels import ConvKernel
    from lama_training.modules.ffc import FFCResnetBlock

    torch.manual_seed(2)
    results = {}
    for dilation in (1, 2):
        block = randomise_batch_norms(FFCResnetBlock(16, "reflect", nn.BatchNorm2d, dilation=dilation), seed=4).eval()
        fast = FastResnetBlock(block, lambda folded: ConvKernel(folded.to_float32(), torch.device("cpu"),
                                                               torch.float32, use_mkldnn=False),
                               torch.device("cpu"), torch.float32, "winograd")
        assert fast.conv1.winograd == fast.conv2.winograd == (dilation == 1)
        x_l, x_g = torch.randn(1, 4, 11, 9), torch.randn(1, 12, 11, 9)
        with torch.no_grad():
            want_l, want_g = block((x_l, x_g))
        got_l, got_g = fast(x_l.contiguous(memory_format=torch.channels_last),
                            x_g.contiguous(memory_format=torch.channels_last))
        results[dilation] = max((got_l - want_l).abs().max().item(), (got_g - want_g).abs().max().item())
    assert max(results.values()) < TOLERANCE, results  # measured 3e-6 (Winograd), 6e-7 (direct)


def test_bad_input_is_a_clear_error():
    fast = FastGenerator(small_generator())
    with pytest.raises(ValueError, match="multiples of 8"):
        fast(torch.zeros(1, 4, 60, 64))
    with pytest.raises(ValueError, match="N x 4 x H x W"):
        fast(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="precision"):
        FastGenerator(small_generator(), precision="int8")


@pytest.mark.skipif(cpu_bf16_support() is None, reason="this CPU has no native bf16 (AVX512-BF16/AMX)")
def test_bf16_stays_close_to_fp32():
    """bf16 keeps 8 mantissa bits: the sigmoid output differs from fp32 by well under 0.05."""
    generator = small_generator(seed=7)
    x = network_input(64, 64, seed=7)
    want = eager(generator, x)
    got = FastGenerator(generator, precision="bf16")(x)
    assert got.dtype == torch.float32
    difference = (got - want).abs()
    assert difference.max().item() < 0.05
    assert difference.max().item() > 0  # it really ran in reduced precision


@pytest.mark.skipif(not mkldnn_fused_ops_available(), reason="this torch build has no oneDNN fused convolutions")
def test_kernel_packs_weights_per_input_shape():
    """oneDNN's packed layout depends on the input shape; a kernel packs once per shape (a few kept),
    and every shape, new or seen before, gives F.conv2d's result."""
    import torch.nn.functional as F

    from lama_backend.acceleration.kernels import PACKED_SHAPES_KEPT, ConvKernel
    from lama_backend.acceleration.folding import FoldedConv

    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(24, 8, 3, 3, generator=generator) * 0.1
    bias = torch.randn(24, generator=generator)
    folded = FoldedConv(weight=weight, bias=bias, stride=1, padding=0, dilation=1, transposed=False,
                        output_padding=0)
    kernel = ConvKernel(folded, torch.device("cpu"), torch.float32, use_mkldnn=True)
    sizes = [(10, 12), (18, 18), (10, 12), (7, 30), (9, 9), (11, 5), (18, 18)]
    for height, width in sizes:
        x = torch.randn(1, 8, height, width, generator=generator).contiguous(memory_format=torch.channels_last)
        want = F.conv2d(x, weight, bias)
        assert (kernel(x) - want).abs().max().item() < 1e-5
        assert (kernel(x, relu=True) - want.relu()).abs().max().item() < 1e-5
    assert len(kernel._packed) == PACKED_SHAPES_KEPT
    assert (1, 8, 18, 18) in kernel._packed and (1, 8, 10, 12) not in kernel._packed


def test_pointwise_kernel_changes_layout_and_matches_conv(monkeypatch):
    """The spectral transform's 1x1 convolutions as matrix products: channels_last -> NCHW and back,
    batch > 1, fused residual add and ReLU, same result as F.conv2d."""
    import torch.nn.functional as F

    from lama_backend.acceleration import kernels
    from lama_backend.acceleration.folding import FoldedConv
    from lama_backend.acceleration.kernels import PointwiseKernel

    generator = torch.Generator().manual_seed(5)
    weight = torch.randn(6, 10, 1, 1, generator=generator)
    bias = torch.randn(6, generator=generator)
    x = torch.randn(2, 10, 5, 7, generator=generator).contiguous(memory_format=torch.channels_last)
    add = torch.randn(2, 6, 5, 7, generator=generator).contiguous(memory_format=torch.channels_last)
    with_bias = PointwiseKernel(FoldedConv(weight=weight, bias=bias), torch.device("cpu"), torch.float32)
    planes = with_bias.to_planes(x, relu=True)
    assert planes.is_contiguous()
    assert (planes - F.conv2d(x, weight, bias).relu()).abs().max().item() < 1e-5
    given = add.clone()
    back = with_bias.from_planes(x.contiguous(), relu=True, add=given)
    assert back.is_contiguous(memory_format=torch.channels_last)
    assert back.data_ptr() == given.data_ptr()  # summed into in place
    strided = with_bias.from_planes(x.contiguous(), relu=True, add=add.contiguous())  # NCHW add: copied
    assert (strided - back).abs().max().item() < 1e-6
    assert (back - (F.conv2d(x, weight, bias) + add).relu()).abs().max().item() < 1e-5
    plain = PointwiseKernel(FoldedConv(weight=weight, bias=None), torch.device("cpu"), torch.float32)
    assert (plain.from_planes(x.contiguous()) - F.conv2d(x, weight)).abs().max().item() < 1e-5
    # NCHW in, NCHW out: the planar blocks (NNPACK) use these
    planar = x.contiguous()
    assert (with_bias.to_planes(planar, relu=True) - planes).abs().max().item() < 1e-5
    for kernel, bias_term in ((with_bias, bias), (plain, None)):
        given = add.contiguous()
        out = kernel.from_planes(planar, relu=True, add=given, channels_last=False)
        assert out.is_contiguous() and out.data_ptr() == given.data_ptr()  # summed into in place
        strided = kernel.from_planes(planar, relu=True, add=add, channels_last=False)  # channels_last add: copied
        assert (strided - out).abs().max().item() < 1e-6
        assert (out - (F.conv2d(x, weight, bias_term) + add).relu()).abs().max().item() < 1e-5
        bare = kernel.from_planes(planar, channels_last=False)
        assert (bare - F.conv2d(x, weight, bias_term)).abs().max().item() < 1e-5
    # the NNPACK blocks' kernels: NCHW -> NCHW through F.conv2d; channels_last input still by products
    conv_calls = []
    real_conv2d, conv_limit = kernels.F.conv2d, kernels.CONV_ON_PLANES_MAX_CELLS
    monkeypatch.setattr(kernels.F, "conv2d", lambda *args: conv_calls.append(1) or real_conv2d(*args))
    for bias_term in (bias, None):
        conv = PointwiseKernel(FoldedConv(weight=weight, bias=bias_term), torch.device("cpu"), torch.float32,
                               conv_on_planes=True)
        expected = F.conv2d(x, weight, bias_term)
        conv_calls.clear()
        reduced = conv.to_planes(planar, relu=True)
        assert reduced.is_contiguous() and (reduced - expected.relu()).abs().max().item() < 1e-5
        assert len(conv_calls) == 1
        assert (conv.to_planes(x, relu=True) - expected.relu()).abs().max().item() < 1e-5
        assert len(conv_calls) == 1  # channels_last input: products
        summed = conv.from_planes(planar, relu=True, add=add.contiguous(), channels_last=False)
        assert summed.is_contiguous() and (summed - (expected + add).relu()).abs().max().item() < 1e-5
        assert (conv.from_planes(planar, channels_last=False) - expected).abs().max().item() < 1e-5
        assert len(conv_calls) == 3
        # a large map: products, the residual summed into in place (no third map-sized tensor)
        monkeypatch.setattr(kernels, "CONV_ON_PLANES_MAX_CELLS", 5 * 7 - 1)
        given = add.contiguous()
        summed_in_place = conv.from_planes(planar, relu=True, add=given, channels_last=False)
        assert summed_in_place.data_ptr() == given.data_ptr()
        assert (summed_in_place - (expected + add).relu()).abs().max().item() < 1e-5
        assert (conv.to_planes(planar, relu=True) - expected.relu()).abs().max().item() < 1e-5
        assert len(conv_calls) == 3
        monkeypatch.setattr(kernels, "CONV_ON_PLANES_MAX_CELLS", conv_limit)
    with pytest.raises(ValueError, match="1x1"):
        PointwiseKernel(FoldedConv(weight=torch.zeros(6, 10, 3, 3), bias=None), torch.device("cpu"), torch.float32)


@pytest.mark.skipif(not nnpack_usable(), reason="this torch build has no working NNPACK")
def test_nnpack_kernel_matches_conv(monkeypatch):
    """Winograd / FFT rounding: within 1e-5 of the output's scale (a direct conv: ~1e-6); fused
    bias, residual add and ReLU; channels_last input is accepted (copied to NCHW)."""
    import torch.nn.functional as F

    from lama_backend.acceleration import kernels
    from lama_backend.acceleration.folding import FoldedConv
    generator = torch.Generator().manual_seed(11)
    weight = torch.randn(24, 16, 3, 3, generator=generator) * 0.1
    bias = torch.randn(24, generator=generator)
    kernel = NnpackKernel(FoldedConv(weight=weight, bias=bias), torch.device("cpu"))
    for height, width in [(66, 66), (19, 37), (3, 3)]:
        x = torch.randn(2, 16, height, width, generator=generator)
        add = torch.randn(2, 24, height - 2, width - 2, generator=generator)
        want = F.conv2d(x.double(), weight.double(), bias.double())
        scale = want.abs().max().item()
        assert (kernel(x).double() - want).abs().max().item() < 1e-5 * scale
        fused = kernel(x.contiguous(memory_format=torch.channels_last), relu=True, add=add)
        assert (fused.double() - (want + add.double()).relu()).abs().max().item() < 1e-5 * scale
    plain = NnpackKernel(FoldedConv(weight=weight, bias=None), torch.device("cpu"))
    x = torch.randn(1, 16, 10, 12, generator=generator)
    assert (plain(x) - F.conv2d(x, weight)).abs().max().item() < 1e-4
    # a large map goes in strips of rows (bounded workspace): the same convolution (NNPACK picks
    # its tiling per call, so the rounding differs: same 1e-5 bound)
    x = torch.randn(2, 16, 30, 13, generator=generator)
    want = F.conv2d(x.double(), weight.double(), bias.double()).relu()
    scale = want.abs().max().item()
    calls = []
    convolve = torch._nnpack_spatial_convolution
    monkeypatch.setattr(torch, "_nnpack_spatial_convolution", lambda *args: calls.append(args[0].shape) or convolve(*args))
    # the default: a workspace budget per call, shared by the input and output channels
    assert kernel.cells_per_call == kernels.NNPACK_WORKSPACE_BYTES // (kernels.NNPACK_BYTES_PER_CELL_CHANNEL * 40)
    # 28 output rows of 11 cells: strips of 4 rows; one row per call; 9 rows allowed: 4 strips of 7
    for cells, strips, rows in ((4 * 11, 7, 4), (1, 28, 1), (9 * 11, 4, 7)):
        monkeypatch.setattr(kernel, "cells_per_call", cells)
        calls.clear()
        assert (kernel(x, relu=True).double() - want).abs().max().item() < 1e-5 * scale
        assert len(calls) == strips and {shape[-2] for shape in calls} == {rows + 2}
    for bad in (FoldedConv(weight=weight, bias=None, stride=2), FoldedConv(weight=weight, bias=None, transposed=True)):
        with pytest.raises(ValueError, match="stride-1"):
            NnpackKernel(bad, torch.device("cpu"))
    with pytest.raises(ValueError, match="CPU"):
        NnpackKernel(FoldedConv(weight=weight, bias=None), torch.device("cuda"))


def test_merged_local_convolution_and_planar_padding(monkeypatch):
    """l2l(x_l) + g2l(x_g) as one convolution over the concatenated, reflect-padded planes."""
    import torch.nn.functional as F

    from lama_backend.acceleration.fast_generator import _reflect_pad_concat
    from lama_backend.acceleration.folding import FoldedConv, concat_inputs

    generator = torch.Generator().manual_seed(4)
    x_l, x_g = torch.randn(2, 3, 9, 7, generator=generator), torch.randn(2, 5, 9, 7, generator=generator)
    for pads in [(1, 1, 1, 1), (3, 0, 2, 1), (0, 0, 0, 0)]:
        want = F.pad(torch.cat([x_l, x_g], dim=1), pads, mode="reflect")
        assert torch.equal(_reflect_pad_concat((x_l, x_g), pads), want)
        # channels_last, and larger than the padded map (Winograd's whole tiles): zeros past it,
        # even where the allocator hands out memory full of NaN (a NaN there would spread to the
        # valid outputs of the same tile)
        rows, cols = want.shape[-2] + 3, want.shape[-1] + 2
        real_empty = torch.empty
        with monkeypatch.context() as patch:
            patch.setattr(torch, "empty", lambda *args, **kwargs: real_empty(*args, **kwargs).fill_(float("nan")))
            wide = _reflect_pad_concat((x_l, x_g), pads, torch.channels_last, (rows, cols))
        assert wide.is_contiguous(memory_format=torch.channels_last) and wide.shape[-2:] == (rows, cols)
        assert torch.equal(wide[:, :, :want.shape[-2], :want.shape[-1]], want)
        assert torch.equal(wide, F.pad(want, (0, 2, 0, 3)))
    first = FoldedConv(weight=torch.randn(4, 3, 3, 3, generator=generator), bias=torch.randn(4, generator=generator))
    second = FoldedConv(weight=torch.randn(4, 5, 3, 3, generator=generator), bias=None)
    merged = concat_inputs(first, second)
    padded = _reflect_pad_concat((x_l, x_g), (1, 1, 1, 1))
    want = F.conv2d(padded[:, :3], first.weight, first.bias) + F.conv2d(padded[:, 3:], second.weight)
    assert (F.conv2d(padded, merged.weight, merged.bias) - want).abs().max().item() < 1e-5
    with pytest.raises(UnsupportedGenerator):
        concat_inputs(first, FoldedConv(weight=torch.randn(6, 5, 3, 3), bias=None))


def test_planes_of_is_an_exact_layout_copy():
    from lama_backend.acceleration.kernels import planes_of

    x = torch.randn(2, 6, 5, 7) * 1e3
    for given in (x.contiguous(memory_format=torch.channels_last), x, x.double()):
        planes = planes_of(given)
        assert planes.is_contiguous() and torch.equal(planes, given)


def test_memory_sizes_parse():
    assert parse_memory_size("6G") == 6 * 2**30
    assert parse_memory_size("512M") == 512 * 2**20
    assert parse_memory_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_memory_size(1000) == 1000
    for bad in ("", "six", "-1G", "0"):
        with pytest.raises(ValueError):
            parse_memory_size(bad)
    assert memory_budget(torch.device("cpu"), "3G") == 3 * 2**30


def test_precision_resolution_and_threads(monkeypatch):
    """auto is bf16 exactly where the CPU computes bf16 natively (emulated bf16 is 4x slower)."""
    from lama_backend.acceleration import runtime
    cpu = torch.device("cpu")
    for support, want in ((None, "fp32"), ("avx512_bf16", "bf16"), ("amx", "bf16")):
        monkeypatch.setattr(runtime, "cpu_bf16_support", lambda support=support: support)
        assert resolve_precision("auto", cpu) == want
    monkeypatch.setattr(runtime, "cpu_bf16_support", lambda: None)
    with pytest.raises(ValueError, match="AVX512-BF16 or AMX"):
        resolve_precision("bf16", cpu)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="CUDA only"):
        resolve_precision("fp16", cpu)
    previous = torch.get_num_threads()
    try:
        assert configure_cpu_threads(1) == 1
    finally:
        torch.set_num_threads(previous)


def test_cudnn_autotuning_is_for_the_half_precisions_only():
    """Measured on an H200 (benchmarks/README.md): autotuned fp32 took up to 37 GiB while tuning and
    left the eager pass's result by 8e-2; the half precisions gain 2.3-2.6x from it."""
    assert [cudnn_autotune(p) for p in ("fp32", "bf16", "fp16")] == [False, True, True]
    previous = torch.backends.cudnn.benchmark
    try:
        configure_cuda("bf16")
        assert torch.backends.cudnn.benchmark is True
        configure_cuda("fp32")
        assert torch.backends.cudnn.benchmark is False
    finally:
        torch.backends.cudnn.benchmark = previous


# ------------------------------------------------------------------------------------- CLI options
def _cli_files(tmp_path):
    import numpy as np
    from PIL import Image

    from tests.helpers.tiny_model import write_tiny_weights
    weights = write_tiny_weights(tmp_path / "tiny.safetensors", seed=1)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:50] = 255
    Image.fromarray(image).save(tmp_path / "in.png")
    Image.fromarray(mask).save(tmp_path / "m.png")
    return weights, tmp_path / "in.png", tmp_path / "m.png"


def test_cli_memory_quality_and_precision_options(tmp_path, capsys, monkeypatch):
    import numpy as np
    from PIL import Image

    from lama_backend.cli import main
    from tests.helpers.tiny_model import make_tiny_generator
    weights, image, mask = _cli_files(tmp_path)
    common = [str(image), str(mask), "--weights", str(weights), "--strategy", "whole"]
    assert main(["inpaint", *common, "-o", str(tmp_path / "fast.png"), "--precision", "fp32"]) == 0
    # a budget that the whole 64 x 48 pass exceeds and 4-cell (32 px) tiles fit
    planner = FastGenerator(make_tiny_generator(seed=1), precision="fp32")  # the weights written
    budget = planner.estimate_peak_bytes(1, 48, 64, 4)
    assert planner.choose_tile(1, 48, 64, budget) == 4
    chosen, choose_tile = [], FastGenerator.choose_tile
    monkeypatch.setattr(FastGenerator, "choose_tile", lambda *args: chosen.append(choose_tile(*args)) or chosen[-1])
    assert main(["inpaint", *common, "-o", str(tmp_path / "tiled.png"), "--precision", "fp32",
                 "--max-memory", str(budget)]) == 0
    assert chosen == [4]  # the CLI's pass did run in tiles
    monkeypatch.undo()
    fast = np.asarray(Image.open(tmp_path / "fast.png")).astype(int)
    tiled = np.asarray(Image.open(tmp_path / "tiled.png")).astype(int)
    assert np.abs(fast - tiled).max() <= 1  # 1e-4 apart before 8-bit rounding
    assert main(["inpaint", *common, "-o", str(tmp_path / "refined.png"), "--quality", "refine"]) == 0
    assert main(["inpaint", *common, "-o", str(tmp_path / "small.png"), "--max-memory", "1K"]) == 2
    assert "memory budget" in capsys.readouterr().err
    assert main(["inpaint", *common, "-o", str(tmp_path / "x.png"), "--precision", "fp16"]) == 2
    assert "CUDA only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["inpaint", *common, "-o", str(tmp_path / "x.png"), "--max-memory", "lots"])
    assert exit_info.value.code == 2
