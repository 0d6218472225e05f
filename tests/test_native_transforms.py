"""The compiled Winograd transforms (lama_backend.acceleration.native, winograd_source): built with
the machine's C compiler, checked against float64 direct convolutions, cached, and refused or
skipped cleanly where they cannot be had (the torch products then run)."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from lama_backend.acceleration import FastGenerator, native, winograd, winograd_source
from lama_backend.acceleration.folding import FoldedConv
from lama_backend.acceleration.winograd import WinogradProduct, WinogradWeights, native_transforms, transform_matrices
from tests.test_acceleration import eager, network_input, small_generator

CPU = torch.device("cpu")
needs_compiler = pytest.mark.skipif(native.find_compiler() is None,
                                    reason="no C compiler on this machine (CI has one): nothing to build")


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """A fresh cache directory, so that a test builds its own library."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    return tmp_path / "lama-backend" / "native"


def test_generated_transforms_factor_the_matrices_symmetry():
    """B^T's rows pair up as e +- o and A^T's columns as sums and differences: the generated code
    writes those once (fewer operations), and every coefficient is a float32 literal."""
    a_t, _, b_t = transform_matrices(6)
    rows = winograd_source.transform_function("input_rows", b_t.tolist())
    cols = winograd_source.transform_function("output_rows", a_t.tolist())
    assert rows.count("e1 + o1") == 1 and rows.count("e1 - o1") == 1
    assert "s1_2 = v1 + v2, d1_2 = v1 - v2" in cols and "s5_6" in cols
    assert "0.03125f * d5_6" in cols and "5.25f" in rows
    with pytest.raises(ValueError, match="not exact"):
        winograd_source.transform_function("bad", [[0.1, 1.0]])


@needs_compiler
@pytest.mark.parametrize("tile", [2, 4, 6])
@pytest.mark.parametrize("threads", [1, 2])
def test_native_convolution_matches_direct(tile, threads, private_cache, monkeypatch):
    """Odd map sizes, two parts whose channels cross the C code's 64-channel blocks, a channel
    offset, bias and ReLU, two images, one tile row per strip, and strips split between threads. Rounding as in
    test_winograd (the transforms mix values by up to the points' powers): 2e-5 of the output scale
    for F(4x4), more for F(6x6); a wrong coefficient or offset is of the order of the output."""
    monkeypatch.setattr(winograd, "STRIP_BYTES", 1)
    monkeypatch.setattr(native, "MIN_CELLS_PER_THREAD", 1)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a_t, _, b_t = transform_matrices(tile)
        transforms = native.load(tile, a_t, b_t)
        assert transforms is not None and transforms.path.parent == private_cache
        generator = torch.Generator().manual_seed(tile + threads)
        x = torch.randn(2, 130, 11, 17, generator=generator)
        weight = torch.randn(67, 126, 3, 3, generator=generator) / (3 * 126 ** 0.5)
        bias = torch.randn(67, generator=generator)
        products = [WinogradProduct(WinogradWeights(FoldedConv(weight, bias), CPU, tile), in_start=4, relu=True),
                    WinogradProduct(WinogradWeights(FoldedConv(weight[:5, :70], None), CPU, tile))]
        parts = tuple(part.contiguous(memory_format=torch.channels_last) for part in (x[:, :65], x[:, 65:]))
        got_relu, got_plain = winograd.convolve_reflected(parts, products, transforms)
    finally:
        torch.set_num_threads(previous)
    reflected = F.pad(x.double(), (1, 1, 1, 1), mode="reflect")
    want_relu = F.conv2d(reflected[:, 4:], weight.double(), bias.double()).relu()
    want_plain = F.conv2d(reflected[:, :70], weight[:5, :70].double())
    tolerance = {2: 1e-5, 4: 2e-5, 6: 1e-4}[tile]
    for got, want in ((got_relu, want_relu), (got_plain, want_plain)):
        assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
        assert (got.double() - want).abs().max().item() < tolerance * want.abs().max().item()


@needs_compiler
def test_build_is_cached_and_a_wrong_build_is_refused(private_cache, monkeypatch, caplog):
    """The second load reuses the library (no compiler run); a library built from wrong matrices
    loads, but native_transforms' check refuses it and the torch products run."""
    a_t, _, b_t = transform_matrices(4)
    first = native.load(4, a_t, b_t)
    assert first is not None
    built = sorted(private_cache.iterdir())
    assert [p.suffix for p in built] == [".c", first.path.suffix]

    def no_compiler_run(*args):
        raise AssertionError("compiled again")

    compile_library = native._compile
    monkeypatch.setattr(native, "_compile", no_compiler_run)
    assert native.load(4, a_t, b_t).path == first.path
    monkeypatch.setattr(native, "_compile", compile_library)
    # the input transform that reads the padding in place is checked too
    in_place = winograd.convolve_reflected
    monkeypatch.setattr(winograd, "convolve_reflected",
                        lambda *args: [y.mul_(1.001) for y in in_place(*args)])
    native_transforms.cache_clear()
    try:
        assert native_transforms() is None
    finally:
        native_transforms.cache_clear()
    monkeypatch.setattr(winograd, "convolve_reflected", in_place)
    assert native_transforms() is not None
    native_transforms.cache_clear()
    wrong = b_t.clone()
    wrong[1, 1] = 2.0
    monkeypatch.setattr(winograd, "load_native", lambda tile, a, b: native.load(tile, a, wrong))
    native_transforms.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="lama_backend.acceleration.winograd"):
            assert native_transforms() is None
        assert "the torch products run" in caplog.text
    finally:
        native_transforms.cache_clear()


def test_without_a_compiler_or_when_switched_off_the_torch_products_run(private_cache, monkeypatch, caplog):
    a_t, _, b_t = transform_matrices(4)
    monkeypatch.setenv("CC", str(private_cache / "no-such-compiler"))
    with caplog.at_level(logging.WARNING, logger="lama_backend.acceleration.native"):
        assert native.load(4, a_t, b_t) is None
    assert "could not compile" in caplog.text
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.load(4, a_t, b_t) is None
    native_transforms.cache_clear()
    try:
        generator = small_generator(seed=4)
        fast = FastGenerator(generator, use_winograd=True)
        assert fast.native is None
        with pytest.raises(RuntimeError, match="native kernels could not be built"):
            FastGenerator(generator, use_winograd=True, native_transforms=True)
        with pytest.raises(ValueError, match="fp32 Winograd blocks and the bf16 blocks"):
            FastGenerator(generator, use_winograd=False, native_transforms=True)
        x = network_input(40, 56, seed=3)
        assert (fast(x) - eager(generator, x)).abs().max().item() < 1e-4
    finally:
        native_transforms.cache_clear()


@needs_compiler
def test_fast_generator_with_native_transforms_equals_eager():
    """The whole network: compiled and torch transforms agree to float rounding, and both stay
    within the fast path's 1e-4 bound of the eager pass; the 13-cell block map is not a whole
    number of tiles."""
    generator = small_generator(seed=7)
    x = torch.cat([network_input(72, 104, seed=1), network_input(72, 104, seed=2)])
    with_native = FastGenerator(generator, use_winograd=True, native_transforms=True)
    without = FastGenerator(generator, use_winograd=True, native_transforms=False)
    assert with_native.native is not None and without.native is None
    got, plain, want = with_native(x), without(x), eager(generator, x)
    assert (got - plain).abs().max().item() < 1e-5
    assert (got - want).abs().max().item() < 1e-4


@needs_compiler
def test_views_the_c_code_would_overrun_are_refused(private_cache):
    """The C code trusts its pointers: maps too small for the tiles asked for never reach it."""
    a_t, _, b_t = transform_matrices(4)
    transforms = native.load(4, a_t, b_t)
    images = [torch.zeros(8, 12, 5), torch.zeros(8, 12, 3)]  # 2 x 3 tiles
    spectra = torch.zeros(36, 6, 8)
    transforms.input_transform_reflected(images, 0, 3, spectra)
    with pytest.raises(ValueError, match="do not hold"):
        transforms.input_transform_reflected(images, 1, 3, spectra)
    with pytest.raises(ValueError, match="do not hold"):
        transforms.input_transform_reflected([image[:1] for image in images], 0, 3, torch.zeros(36, 3, 8))
    with pytest.raises(ValueError, match="one size"):
        transforms.input_transform_reflected([images[0], images[1][:7]], 0, 3, spectra)
    with pytest.raises(ValueError, match="one size"):
        transforms.input_transform_reflected(images, 0, 3, torch.zeros(36, 6, 9))
    mixed, target = torch.zeros(36, 6, 5), torch.zeros(8, 12, 5)
    transforms.output_transform(mixed, torch.zeros(5), True, target, 3)
    for bad_target, bad_bias in ((target[:7], None), (target[:, :11], None), (target, torch.zeros(4))):
        with pytest.raises(ValueError, match="too small|contiguous"):
            transforms.output_transform(mixed, bad_bias, False, bad_target, 3)


@needs_compiler
@pytest.mark.parametrize("size", [(11, 17), (2, 2), (4, 9)])
def test_reflect_padding_read_in_place_matches_direct(size, private_cache, monkeypatch):
    """convolve_reflected reads two parts (channel counts across the 64-channel blocks) and their
    reflect padding in place: the same outputs as a direct convolution of the padded
    concatenation, with one tile row per strip; the smallest map it takes is 2 x 2."""
    monkeypatch.setattr(winograd, "STRIP_BYTES", 1)
    a_t, _, b_t = transform_matrices(4)
    transforms = native.load(4, a_t, b_t)
    generator = torch.Generator().manual_seed(sum(size))
    local = torch.randn(2, 70, *size, generator=generator).contiguous(memory_format=torch.channels_last)
    global_ = torch.randn(2, 45, *size, generator=generator).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(33, 115, 3, 3, generator=generator) / (3 * 115 ** 0.5)
    bias = torch.randn(33, generator=generator)
    part_weight = weight[:9, :70]
    products = [WinogradProduct(WinogradWeights(FoldedConv(weight, bias), CPU), relu=True),
                WinogradProduct(WinogradWeights(FoldedConv(part_weight, None), CPU))]
    got_relu, got_part = winograd.convolve_reflected((local, global_), products, transforms)
    reflected = F.pad(torch.cat([local, global_], 1).double(), (1, 1, 1, 1), mode="reflect")
    want_relu = F.conv2d(reflected, weight.double(), bias.double()).relu()
    want_part = F.conv2d(reflected[:, :70], part_weight.double())
    for got, want in ((got_relu, want_relu), (got_part, want_part)):
        assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
        assert (got.double() - want).abs().max().item() < 2e-5 * want.abs().max().item()
    with pytest.raises(ValueError, match="too small to reflect"):
        one_row = [part[:, :, :1].contiguous(memory_format=torch.channels_last) for part in (local, global_)]
        winograd.convolve_reflected(tuple(one_row), products, transforms)
    with pytest.raises(ValueError, match="one size"):
        winograd.convolve_reflected((local, global_[:, :, :, :-1]), products, transforms)


@needs_compiler
@pytest.mark.parametrize("pad", [1, 2])
def test_bf16_epilogue_equals_torch_bit_for_bit(pad, private_cache):
    """ReLU, residual add and reflect padding in one compiled pass give torch's bf16 results
    exactly (the sum rounded to nearest even), on odd sizes and a batch of two."""
    from lama_backend.acceleration import block_epilogue
    a_t, _, b_t = transform_matrices(4)
    kernels = native.load(4, a_t, b_t)
    generator = torch.Generator().manual_seed(pad)
    x = torch.randn(2, 67, 5, 9, generator=generator).bfloat16().contiguous(memory_format=torch.channels_last)
    residual = torch.randn(2, 67, 5, 9, generator=generator).bfloat16().contiguous(memory_format=torch.channels_last)
    for relu in (False, True):
        for add in (None, residual):
            got_map, got_padded = kernels.relu_add_reflect_pad(x.clone(), add, relu, pad)
            want_map, want_padded = block_epilogue.relu_add_reflect_pad(x.clone(), add, relu, pad)
            assert torch.equal(got_map, want_map) and torch.equal(got_padded, want_padded)
            assert got_padded.shape == (2, 67, 5 + 2 * pad, 9 + 2 * pad)
            assert got_map.is_contiguous(memory_format=torch.channels_last)
    same = x.clone()
    assert kernels.relu_add_reflect_pad(same, None, True, pad)[0] is same  # computed in place
    with pytest.raises(ValueError, match="bf16 channels_last"):
        kernels.relu_add_reflect_pad(x.float(), None, True, pad)
    with pytest.raises(ValueError, match="needs more than"):
        kernels.relu_add_reflect_pad(x, None, True, 5)


@needs_compiler
def test_bf16_blocks_with_the_compiled_epilogue_equal_torchs_passes(monkeypatch):
    """The whole bf16 network with the compiled epilogue gives the same bits as with torch's
    ReLU, add and pad; a kernel that disagrees with torch is refused by its check."""
    from lama_backend.acceleration import block_epilogue
    generator = small_generator(seed=5)
    x = network_input(48, 72, seed=2)
    fused = FastGenerator(generator, precision="bf16")
    plain = FastGenerator(generator, precision="bf16", native_transforms=False)
    assert all(layer.epilogue is not None for block in fused.blocks for layer in (block.conv1, block.conv2))
    assert all(layer.epilogue is None for block in plain.blocks for layer in (block.conv1, block.conv2))
    assert torch.equal(fused(x), plain(x))
    with torch.inference_mode():  # the padded maps a layer hands on are taken out of the list (freed once read)
        x_l, x_g = fused.encode(x)
        y_l, y_g, handed = fused.blocks[0].run(x_l, x_g)
        assert len(handed) == 2
        fused.blocks[1].run(y_l, y_g, handed)
        assert handed == []
    kernels = fused.native
    monkeypatch.setattr(type(kernels), "relu_add_reflect_pad",
                        lambda self, x, residual, relu, pad: block_epilogue.relu_add_reflect_pad(x.clone(), None, False, pad))
    block_epilogue.checked.cache_clear()
    try:
        assert block_epilogue.checked(kernels) is None
    finally:
        block_epilogue.checked.cache_clear()


@needs_compiler
def test_bf16_epilogue_does_not_hang_on_the_winograd_check(monkeypatch):
    """The bf16 blocks use the library's epilogue only: a Winograd transform that fails its check
    turns the fp32 transforms off and leaves the bf16 epilogue (checked on its own) in use."""
    from lama_backend.acceleration import block_epilogue
    in_place = winograd.convolve_reflected
    monkeypatch.setattr(winograd, "convolve_reflected", lambda *args: [y.mul_(1.001) for y in in_place(*args)])
    native_transforms.cache_clear()
    block_epilogue.compiled.cache_clear()
    try:
        assert native_transforms() is None
        fast = FastGenerator(small_generator(seed=6), precision="bf16", native_transforms=True)
        assert fast.native is not None
        assert all(layer.epilogue is fast.native for block in fast.blocks for layer in (block.conv1, block.conv2))
    finally:
        native_transforms.cache_clear()
        block_epilogue.compiled.cache_clear()
