"""LPIPS (AlexNet, v0.1): the published files' layouts load by path, and the distance behaves.

No published weights are available offline, so files are written here in the published layouts
with random values; the key tables below are written from the published architectures
(torchvision's AlexNet, the lpips package's calibration), not read from our modules.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lama_training.evaluation import LPIPS, MetricWeightsError, PerceptualScorers, load_lpips
from lama_training.evaluation.lpips import AlexNetFeatures

# torchvision alexnet-owt-7be5be79.pth: features.{0,3,6,8,10} convs, classifier.{1,4,6} linears
ALEXNET_FILE_LAYOUT = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}
# lpips weights/v0.1/alex.pth: one bias-free 1x1 conv per tapped layer, behind a Dropout (index 0)
LPIPS_FILE_LAYOUT = {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}
# the published ScalingLayer constants (inputs in [-1, 1])
SHIFT = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
SCALE = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)


def write_random_lpips_files(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Random weights in both published layouts. The classifier tensors (not used by LPIPS, 220 MB
    as real values) are stride-0 expansions of one zero, which `torch.save` stores as one value."""
    generator = torch.Generator().manual_seed(seed)
    alexnet = {}
    for key, shape in ALEXNET_FILE_LAYOUT.items():
        if key.startswith("classifier."):
            alexnet[key] = torch.zeros(1).expand(*shape)
        elif key.endswith("weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            alexnet[key] = torch.randn(shape, generator=generator) * (2.0 / fan_in) ** 0.5
        else:
            alexnet[key] = torch.randn(shape, generator=generator) * 0.01
    # the published calibration weights are non-negative
    linear = {key: torch.rand(shape, generator=generator) for key, shape in LPIPS_FILE_LAYOUT.items()}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(alexnet, folder / "alexnet-owt-7be5be79.pth")
    torch.save(linear, folder / "alex.pth")
    return folder / "alexnet-owt-7be5be79.pth", folder / "alex.pth"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    return write_random_lpips_files(tmp_path_factory.mktemp("lpips"))


@pytest.fixture(scope="module")
def metric(files) -> LPIPS:
    torch.set_num_threads(1)
    return load_lpips(*files)


def shapes(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def test_modules_have_the_published_key_names_and_shapes() -> None:
    features = {k: v for k, v in ALEXNET_FILE_LAYOUT.items() if k.startswith("features.")}
    assert shapes(AlexNetFeatures().state_dict()) == features
    lpips = LPIPS()
    assert shapes(lpips.state_dict()) == {**{f"net.{k}": v for k, v in features.items()}, **LPIPS_FILE_LAYOUT}


def test_the_files_load_by_path_with_their_values(files, metric) -> None:
    alexnet, linear = (torch.load(path, weights_only=True) for path in files)
    loaded = metric.state_dict()
    for key in ("features.0.weight", "features.10.bias"):
        assert torch.equal(loaded[f"net.{key}"], alexnet[key])
    assert all(torch.equal(loaded[key], value) for key, value in linear.items())
    assert not metric.training and not any(p.requires_grad for p in metric.parameters())


def reference_lpips(image_a: torch.Tensor, image_b: torch.Tensor, alexnet: dict, linear: dict) -> torch.Tensor:
    """The published definition written out with functional ops on the file's tensors."""
    def taps(x: torch.Tensor) -> list[torch.Tensor]:
        x = (x * 2 - 1 - SHIFT) / SCALE
        relu1 = F.relu(F.conv2d(x, alexnet["features.0.weight"], alexnet["features.0.bias"], stride=4, padding=2))
        relu2 = F.relu(F.conv2d(F.max_pool2d(relu1, 3, 2), alexnet["features.3.weight"], alexnet["features.3.bias"],
                                padding=2))
        relu3 = F.relu(F.conv2d(F.max_pool2d(relu2, 3, 2), alexnet["features.6.weight"], alexnet["features.6.bias"],
                                padding=1))
        relu4 = F.relu(F.conv2d(relu3, alexnet["features.8.weight"], alexnet["features.8.bias"], padding=1))
        relu5 = F.relu(F.conv2d(relu4, alexnet["features.10.weight"], alexnet["features.10.bias"], padding=1))
        return [relu1, relu2, relu3, relu4, relu5]

    total = 0
    for index, (a, b) in enumerate(zip(taps(image_a), taps(image_b))):
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        total = total + ((a - b) ** 2 * linear[f"lin{index}.model.1.weight"]).sum(dim=1).mean(dim=(1, 2))
    return total


def test_distance_follows_the_published_definition(files, metric) -> None:
    alexnet, linear = (torch.load(path, weights_only=True) for path in files)
    generator = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 3, 64, 64, generator=generator), torch.rand(2, 3, 64, 64, generator=generator)
    expected = reference_lpips(a, b, alexnet, linear)
    # float32 convolutions summed in another order: agreement to ~1e-6 relative
    torch.testing.assert_close(metric(a, b), expected, rtol=1e-4, atol=1e-7)
    assert (expected > 0).all()


def test_identical_images_score_zero_distortion_raises_it_and_it_is_symmetric(metric) -> None:
    generator = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, 64, 64, generator=generator)
    noise = torch.randn(1, 3, 64, 64, generator=generator)
    assert metric(image, image).item() == 0.0
    scores = [metric(image, (image + sigma * noise).clamp(0, 1)).item() for sigma in (0.02, 0.1, 0.3)]
    assert 0 < scores[0] < scores[1] < scores[2], scores
    other = (image + 0.1 * noise).clamp(0, 1)
    # same ops on swapped halves of one batch: equal up to float32 summation order
    assert metric(other, image).item() == pytest.approx(metric(image, other).item(), rel=1e-5)


def test_bad_inputs_and_missing_or_foreign_files_are_clear_errors(files, tmp_path) -> None:
    alexnet, linear = files
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        LPIPS()(torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 16))
    missing = tmp_path / "nowhere" / "alex.pth"
    with pytest.raises(MetricWeightsError, match=r"alex\.pth: file not found.*lpips"):
        load_lpips(alexnet, missing)
    with pytest.raises(MetricWeightsError, match="alexnet-owt-7be5be79.pth: file not found"):
        load_lpips(tmp_path / "alexnet-owt-7be5be79.pth", linear)
    # the files swapped: the layout check names the file
    with pytest.raises(MetricWeightsError, match=rf"{alexnet.name}: not the expected layout"):
        load_lpips(alexnet, alexnet)
    state = torch.load(linear, weights_only=True)
    state["lin2.model.1.weight"] = torch.rand(1, 192, 1, 1)
    torch.save(state, tmp_path / "wrong.pth")
    with pytest.raises(MetricWeightsError, match=r"wrong\.pth: wrong shapes: lin2.model.1.weight"):
        load_lpips(alexnet, tmp_path / "wrong.pth")
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(MetricWeightsError, match=r"text\.pth: not a readable PyTorch weights file"):
        load_lpips(alexnet, tmp_path / "text.pth")
    with pytest.raises(MetricWeightsError, match="needs both"):
        PerceptualScorers.from_paths(lpips_alexnet=alexnet)


def test_without_paths_no_metric_is_computed() -> None:
    scorers = PerceptualScorers.from_paths()
    assert not scorers and scorers.lpips is None and scorers.fid is None
