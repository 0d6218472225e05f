"""FID: pytorch-fid's Inception layout loads by path, the Fréchet distance matches closed forms,
and the pipeline runs end to end on random weights.

The key table is written from the published architecture (torchvision's Inception3 module names
with pytorch-fid's FIDInception blocks, 1008 logits, no auxiliary head), not from our module.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lama_training.evaluation import FIDInceptionV3, MetricWeightsError, fid_from_features, frechet_distance, \
    load_fid_inception
from lama_training.evaluation.fid import feature_statistics

# every BasicConv2d of the published file: name -> (out, in, kernel h, kernel w)
STEM = {"Conv2d_1a_3x3": (32, 3, 3, 3), "Conv2d_2a_3x3": (32, 32, 3, 3), "Conv2d_2b_3x3": (64, 32, 3, 3),
        "Conv2d_3b_1x1": (80, 64, 1, 1), "Conv2d_4a_3x3": (192, 80, 3, 3)}


def block_a(cin: int, pool: int) -> dict:
    return {"branch1x1": (64, cin, 1, 1), "branch5x5_1": (48, cin, 1, 1), "branch5x5_2": (64, 48, 5, 5),
            "branch3x3dbl_1": (64, cin, 1, 1), "branch3x3dbl_2": (96, 64, 3, 3), "branch3x3dbl_3": (96, 96, 3, 3),
            "branch_pool": (pool, cin, 1, 1)}


def block_c(c7: int) -> dict:
    return {"branch1x1": (192, 768, 1, 1), "branch7x7_1": (c7, 768, 1, 1), "branch7x7_2": (c7, c7, 1, 7),
            "branch7x7_3": (192, c7, 7, 1), "branch7x7dbl_1": (c7, 768, 1, 1), "branch7x7dbl_2": (c7, c7, 7, 1),
            "branch7x7dbl_3": (c7, c7, 1, 7), "branch7x7dbl_4": (c7, c7, 7, 1), "branch7x7dbl_5": (192, c7, 1, 7),
            "branch_pool": (192, 768, 1, 1)}


def block_e(cin: int) -> dict:
    return {"branch1x1": (320, cin, 1, 1), "branch3x3_1": (384, cin, 1, 1), "branch3x3_2a": (384, 384, 1, 3),
            "branch3x3_2b": (384, 384, 3, 1), "branch3x3dbl_1": (448, cin, 1, 1), "branch3x3dbl_2": (384, 448, 3, 3),
            "branch3x3dbl_3a": (384, 384, 1, 3), "branch3x3dbl_3b": (384, 384, 3, 1), "branch_pool": (192, cin, 1, 1)}


BLOCKS = {
    "Mixed_5b": block_a(192, 32), "Mixed_5c": block_a(256, 64), "Mixed_5d": block_a(288, 64),
    "Mixed_6a": {"branch3x3": (384, 288, 3, 3), "branch3x3dbl_1": (64, 288, 1, 1), "branch3x3dbl_2": (96, 64, 3, 3),
                 "branch3x3dbl_3": (96, 96, 3, 3)},
    "Mixed_6b": block_c(128), "Mixed_6c": block_c(160), "Mixed_6d": block_c(160), "Mixed_6e": block_c(192),
    "Mixed_7a": {"branch3x3_1": (192, 768, 1, 1), "branch3x3_2": (320, 192, 3, 3), "branch7x7x3_1": (192, 768, 1, 1),
                 "branch7x7x3_2": (192, 192, 1, 7), "branch7x7x3_3": (192, 192, 7, 1),
                 "branch7x7x3_4": (192, 192, 3, 3)},
    "Mixed_7b": block_e(1280), "Mixed_7c": block_e(2048),
}


def inception_file_layout() -> dict[str, tuple[int, ...]]:
    convs = dict(STEM)
    convs.update({f"{block}.{name}": shape for block, branches in BLOCKS.items() for name, shape in branches.items()})
    layout = {}
    for name, shape in convs.items():
        layout[f"{name}.conv.weight"] = shape
        for field in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{name}.bn.{field}"] = (shape[0],)
    layout.update({"fc.weight": (1008, 2048), "fc.bias": (1008,)})
    return layout


def write_random_inception_file(path: Path, seed: int = 0, batches_tracked: bool = False) -> Path:
    """Random weights in the published layout, scaled (He init, BatchNorm near identity) so that
    activations stay of order 1 through the 94 convolutions."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in inception_file_layout().items():
        if key.endswith("conv.weight"):
            state[key] = torch.randn(shape, generator=generator) * (2.0 / (shape[1] * shape[2] * shape[3])) ** 0.5
        elif key.endswith("bn.weight") or key.endswith("running_var"):
            state[key] = 1 + 0.1 * torch.rand(shape, generator=generator)
        else:
            state[key] = 0.01 * torch.randn(shape, generator=generator)
        if batches_tracked and key.endswith("bn.running_var"):
            state[key.replace("running_var", "num_batches_tracked")] = torch.tensor(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory) -> Path:
    return write_random_inception_file(tmp_path_factory.mktemp("fid") / "pt_inception-2015-12-05-6726825d.pth")


@pytest.fixture(scope="module")
def network(inception_file) -> FIDInceptionV3:
    torch.set_num_threads(1)
    return load_fid_inception(inception_file)


def test_module_has_the_published_key_names_and_shapes() -> None:
    state = FIDInceptionV3().state_dict()
    ours = {key: tuple(value.shape) for key, value in state.items() if not key.endswith("num_batches_tracked")}
    assert ours == inception_file_layout()
    assert len(ours) == 94 * 5 + 2


def test_the_file_loads_by_path_with_its_values_with_or_without_batch_counters(inception_file, network,
                                                                                tmp_path) -> None:
    saved = torch.load(inception_file, weights_only=True)
    loaded = network.state_dict()
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.bn.running_var", "fc.bias"):
        assert torch.equal(loaded[key], saved[key])
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    with_counters = write_random_inception_file(tmp_path / "counted.pth", seed=3, batches_tracked=True)
    assert torch.equal(load_fid_inception(with_counters).Mixed_5b.branch1x1.conv.weight,
                       torch.load(with_counters, weights_only=True)["Mixed_5b.branch1x1.conv.weight"])


def test_missing_or_foreign_files_are_clear_errors(inception_file, tmp_path) -> None:
    with pytest.raises(MetricWeightsError, match=r"pt_inception\.pth: file not found.*pytorch-fid"):
        load_fid_inception(tmp_path / "pt_inception.pth")
    state = torch.load(inception_file, weights_only=True)
    del state["Mixed_6e.branch7x7dbl_5.conv.weight"]
    state["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
    torch.save(state, tmp_path / "torchvision.pth")
    with pytest.raises(MetricWeightsError, match=r"torchvision\.pth: not the expected layout \(missing "
                                                 r"Mixed_6e\.branch7x7dbl_5\.conv\.weight; unexpected AuxLogits"):
        load_fid_inception(tmp_path / "torchvision.pth")


def test_features_are_2048_per_image_resized_and_independent_of_the_batch(network) -> None:
    generator = torch.Generator().manual_seed(4)
    images = torch.rand(2, 3, 64, 80, generator=generator)
    features = network(images)
    assert features.shape == (2, 2048) and torch.isfinite(features).all() and features.std() > 0
    # float32 convolutions of batch 1 vs 2 may take other kernels: equal to ~1e-5 relative
    torch.testing.assert_close(network(images[1:2]), features[1:2], rtol=1e-4, atol=1e-5)
    # the input is resized to 299 first: a 2x nearest upsampling of the same picture barely moves it
    upsampled = torch.nn.functional.interpolate(images, scale_factor=2, mode="nearest")
    assert (network(upsampled) - features).norm() < 0.5 * features.norm()


def test_frechet_distance_of_identical_statistics_is_zero() -> None:
    rng = np.random.default_rng(5)
    features = rng.normal(size=(200, 16))
    mu, sigma = feature_statistics(features)
    # sqrtm of sigma^2 recovers sigma up to float64 rounding
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8
    assert abs(fid_from_features(features, features)) < 1e-8


def test_frechet_distance_matches_the_closed_form_for_gaussians() -> None:
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2 with s the standard deviations
    assert frechet_distance(np.array([1.0]), np.array([[4.0]]), np.array([-2.0]), np.array([[9.0]])) \
        == pytest.approx(9 + 1, rel=1e-12)
    # covariances sharing eigenvectors (a common rotation): |mu_a - mu_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    rng = np.random.default_rng(6)
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    eig_a, eig_b = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    sigma_a, sigma_b = rotation @ np.diag(eig_a) @ rotation.T, rotation @ np.diag(eig_b) @ rotation.T
    mu_a, mu_b = rng.normal(size=8), rng.normal(size=8)
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(eig_a) - np.sqrt(eig_b)) ** 2)
    assert frechet_distance(mu_a, sigma_a, mu_b, sigma_b) == pytest.approx(expected, rel=1e-9)
    # a general pair: 2 x 2 where sqrt(S_a S_b) has trace sqrt(tr(S_a S_b) + 2 sqrt(det(S_a S_b)))
    sigma_a, sigma_b = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([[1.0, -0.3], [-0.3, 0.5]])
    product = sigma_a @ sigma_b
    trace_root = np.sqrt(np.trace(product) + 2 * np.sqrt(np.linalg.det(product)))
    assert frechet_distance(np.zeros(2), sigma_a, np.zeros(2), sigma_b) == \
        pytest.approx(np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_root, rel=1e-9)
    with pytest.raises(ValueError, match="do not match"):
        frechet_distance(np.zeros(2), sigma_a, np.zeros(3), np.eye(3))


def test_singular_covariances_and_the_numerical_fixes(monkeypatch) -> None:
    # rank-1 covariances in 4-D with a zero product: exact value tr(S_a) + tr(S_b) = 5
    sigma_a, sigma_b = np.diag([1.0, 0, 0, 0]), np.diag([0, 4.0, 0, 0])
    assert frechet_distance(np.zeros(4), sigma_a, np.zeros(4), sigma_b) == pytest.approx(5.0, abs=1e-12)

    # sqrtm's failure modes are simulated here (exact products of PSD matrices rarely trigger them)
    from scipy import linalg
    calls = []
    real_sqrtm = linalg.sqrtm

    def failing_once(matrix):
        calls.append(matrix)
        return np.full_like(matrix, np.inf) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(linalg, "sqrtm", failing_once)
    sigma_a, sigma_b = np.diag([1.0, 2.0]), np.diag([4.0, 8.0])
    value = frechet_distance(np.zeros(2), sigma_a, np.zeros(2), sigma_b)
    offset = 1e-6 * np.eye(2)
    np.testing.assert_array_equal(calls[1], (sigma_a + offset) @ (sigma_b + offset))
    # exact: (1 - 2)^2 + (sqrt 2 - sqrt 8)^2 = 3; the offset moves it by ~1e-6
    assert value == pytest.approx(3.0, abs=1e-5)

    monkeypatch.setattr(linalg, "sqrtm", lambda matrix: real_sqrtm(matrix) + 1e-9j)
    assert frechet_distance(np.zeros(2), sigma_a, np.zeros(2), sigma_b) == pytest.approx(3.0, abs=1e-12)
    monkeypatch.setattr(linalg, "sqrtm", lambda matrix: real_sqrtm(matrix) + 0.1j * np.eye(2))
    with pytest.raises(ValueError, match="imaginary part of 0.1"):
        frechet_distance(np.zeros(2), sigma_a, np.zeros(2), sigma_b)


def test_features_shortcut_equals_sqrtm_on_fewer_samples_than_dimensions() -> None:
    rng = np.random.default_rng(7)
    real, fake = rng.normal(size=(20, 64)), 1.3 * rng.normal(size=(25, 64)) + 0.2
    via_sqrtm = frechet_distance(*feature_statistics(real), *feature_statistics(fake))
    # singular covariances (20 < 64): the sqrtm route carries the 1e-6 diagonal offset, ~1e-6 relative
    assert fid_from_features(real, fake) == pytest.approx(via_sqrtm, rel=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        fid_from_features(real[:1], fake)


def test_fid_end_to_end_on_random_weights(network) -> None:
    generator = torch.Generator().manual_seed(8)
    real = torch.rand(3, 3, 64, 64, generator=generator)
    near = (real + 0.03 * torch.randn(3, 3, 64, 64, generator=generator)).clamp(0, 1)
    far = torch.rand(3, 3, 64, 64, generator=generator).pow(3)  # darker, other content
    real_features = network(real).double().numpy()
    assert abs(fid_from_features(real_features, real_features)) < 1e-6
    near_fid = fid_from_features(real_features, network(near).double().numpy())
    far_fid = fid_from_features(real_features, network(far).double().numpy())
    assert 0 < near_fid < far_fid, (near_fid, far_fid)
