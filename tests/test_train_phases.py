"""The explicit G and D phases touch only their own network's gradients."""
from __future__ import annotations

import pytest
import torch

from lama_training.modules import make_generator
from lama_training.modules.discriminator import make_discriminator
from lama_training.trainer.config import load_config
from lama_training.trainer.distributed import DistributedContext
from lama_training.trainer.loop import Networks, discriminator_phase, generator_phase, wrap_for_ddp


def tiny_networks(config):
    torch.manual_seed(0)
    return Networks(make_generator(config.generator), make_discriminator(config.discriminator), None)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    image = torch.rand(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[..., 16:48, 8:40] = 1
    return image, mask


def grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def test_generator_phase_trains_only_the_generator() -> None:
    config = load_config("tiny", ["generator.ngf=8", "generator.n_blocks=1", "discriminator.ndf=8"])
    networks = tiny_networks(config)
    networks.discriminator.requires_grad_(False)
    image, mask = batch()
    loss, prediction, logged = generator_phase(networks, image, mask, config)
    loss.backward()
    assert all(g is not None for g in grads(networks.generator))
    assert all(g is None for g in grads(networks.discriminator))
    assert set(logged) == {"gen_l1", "gen_adv", "gen_fm", "gen_total"}  # no perceptual term in tiny
    assert logged["gen_total"] == pytest.approx(logged["gen_l1"] + logged["gen_adv"] + logged["gen_fm"], rel=1e-5)
    assert prediction.shape == image.shape


def test_discriminator_phase_trains_only_the_discriminator_with_r1() -> None:
    config = load_config("tiny", ["generator.ngf=8", "generator.n_blocks=1", "discriminator.ndf=8"])
    networks = tiny_networks(config)
    image, mask = batch()
    loss, logged = discriminator_phase(networks, image, mask, config)
    loss.backward()
    assert all(g is None for g in grads(networks.generator))
    assert all(g is not None for g in grads(networks.discriminator))
    assert logged["discr_r1"] > 0
    assert logged["discr_total"] == pytest.approx(logged["discr_adv"] + 0.001 * logged["discr_r1"], rel=1e-5)
    assert image.grad is None  # R1 differentiates a detached copy, never the batch itself

    no_r1 = load_config("tiny", ["generator.ngf=8", "generator.n_blocks=1", "discriminator.ndf=8",
                                 "losses.r1_weight=0"])
    _, logged = discriminator_phase(tiny_networks(no_r1), image, mask, no_r1)
    assert "discr_r1" not in logged and logged["discr_total"] == logged["discr_adv"]


def test_sync_batchnorm_on_cpu_processes_is_a_clear_error() -> None:
    context = DistributedContext(rank=0, world_size=2, local_rank=0, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="sync_batchnorm needs CUDA"):
        wrap_for_ddp(torch.nn.BatchNorm2d(3), context, sync_batchnorm=True)
    single = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    module = torch.nn.BatchNorm2d(3)
    assert wrap_for_ddp(module, single, sync_batchnorm=True) is module
