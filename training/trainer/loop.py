"""The training loop: one visible function, explicit generator and discriminator phases.

Per step (the official LaMa order):
1. G phase: predict the hole, then L1 on known pixels + HRF perceptual + non-saturating
   adversarial + feature matching; Adam step on G (gradients clipped).
2. D phase: the updated G predicts again without gradients; non-saturating loss where the known
   region of the fake counts as real, plus R1 on `real.detach().requires_grad_()`; Adam step on D.

Under DDP (torchrun) G and D are wrapped separately: the G phase runs D's plain module (its
weights are frozen there, so D's gradient reducer never sees that backward) and the D phase runs
G's plain module under no_grad. Rank 0 logs, evaluates, writes samples and checkpoints.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..losses import (HRFPerceptualLoss, discriminator_adversarial_loss, feature_matching_loss,
                      generator_adversarial_loss, masked_l1_loss, r1_penalty)
from ..modules.ade20k import ResnetDilatedEncoder
from ..modules.discriminator import make_discriminator
from ..modules.generators import make_generator
from ..modules.perceptual import get_perceptual_backbone
from .checkpoint import (CheckpointError, capture_rng_state, load_checkpoint, load_official_weights,
                         restore_rng_state, save_checkpoint, split_official_state, strict_load)
from .config import TrainConfig, config_from_dict
from .distributed import (DistributedContext, all_gather_objects, barrier, mean_across_ranks, setup_distributed,
                          teardown_distributed)
from .reporting import MetricsLog, save_sample_grid

LOG = logging.getLogger(__name__)

Batch = Mapping[str, torch.Tensor]
EvalFunction = Callable[[nn.Module, torch.device], dict[str, float]]


@dataclass
class TrainResult:
    step: int
    run_dir: Path
    last_checkpoint: Path | None
    config: TrainConfig
    last_losses: dict[str, float] = field(default_factory=dict)
    eval_history: list[dict[str, Any]] = field(default_factory=list)
    generator: nn.Module | None = None       # this process's networks (unwrapped) after the last step
    discriminator: nn.Module | None = None


@dataclass
class Networks:
    generator: nn.Module          # what the loop calls (DDP wrapper under torchrun)
    discriminator: nn.Module
    perceptual: HRFPerceptualLoss | None

    @property
    def plain_generator(self) -> nn.Module:
        return self.generator.module if isinstance(self.generator, DistributedDataParallel) else self.generator

    @property
    def plain_discriminator(self) -> nn.Module:
        d = self.discriminator
        return d.module if isinstance(d, DistributedDataParallel) else d


def build_perceptual_loss(config: TrainConfig, official_perceptual: Mapping[str, torch.Tensor] | None) -> HRFPerceptualLoss | None:
    """The frozen perceptual loss, or None when its weight is 0.

    Fine-tuning from the official checkpoint brings the ADE20k encoder weights (`loss_segm_pl.*`),
    so no separate `encoder_epoch_20.pth` is needed then.
    """
    losses = config.losses
    entry = get_perceptual_backbone(losses.perceptual_backbone)
    if entry is None or losses.perceptual_weight == 0:
        return None
    if (official_perceptual and losses.perceptual_backbone == "ade20k_resnet50dilated"
            and not losses.perceptual_weights):
        backbone: nn.Module = ResnetDilatedEncoder()  # weights come from the official checkpoint
    else:
        backbone = entry.build(losses.perceptual_weights)
    return HRFPerceptualLoss(backbone, imagenet_input=entry.imagenet_input)


def generator_phase(networks: Networks, image: torch.Tensor, mask: torch.Tensor,
                    config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Forward G and return (total loss, prediction, logged parts). D is used frozen, unwrapped."""
    losses = config.losses
    prediction = networks.generator(torch.cat([image * (1 - mask), mask], dim=1))
    parts: dict[str, torch.Tensor] = {}
    parts["gen_l1"] = masked_l1_loss(prediction, image, mask, losses.l1_weight_known, losses.l1_weight_missing)
    if networks.perceptual is not None:
        parts["gen_hrf_pl"] = networks.perceptual(prediction, image) * losses.perceptual_weight
    discriminator = networks.plain_discriminator
    fake_logits, fake_features = discriminator(prediction)
    with torch.no_grad():
        _, real_features = discriminator(image)
    parts["gen_adv"] = generator_adversarial_loss(fake_logits) * losses.adversarial_weight
    if losses.feature_matching_weight > 0:
        parts["gen_fm"] = feature_matching_loss(fake_features, real_features) * losses.feature_matching_weight
    total = torch.stack(list(parts.values())).sum()
    logged = {key: float(value.detach()) for key, value in parts.items()}
    logged["gen_total"] = float(total.detach())
    return total, prediction, logged


def discriminator_phase(networks: Networks, image: torch.Tensor, mask: torch.Tensor,
                        config: TrainConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The updated G predicts without gradients; D loss with mask-as-fake-target and R1."""
    losses = config.losses
    with torch.no_grad():
        fake = networks.plain_generator(torch.cat([image * (1 - mask), mask], dim=1))
    real = image.detach().requires_grad_(losses.r1_weight > 0)
    real_logits, _ = networks.discriminator(real)
    fake_logits, _ = networks.discriminator(fake)
    adversarial = discriminator_adversarial_loss(real_logits, fake_logits, mask, losses.mask_as_fake_target,
                                                 losses.mask_interpolation)
    total = adversarial
    logged = {"discr_adv": float(adversarial.detach()), "discr_real_out": float(real_logits.detach().mean()),
              "discr_fake_out": float(fake_logits.detach().mean())}
    if losses.r1_weight > 0:
        penalty = r1_penalty(real_logits, real)
        total = total + losses.r1_weight * penalty
        logged["discr_r1"] = float(penalty.detach())
    logged["discr_total"] = float(total.detach())
    return total, logged


def optimizer_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, module: nn.Module, clip: float) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(module.parameters(), clip if clip > 0 else math.inf)
    optimizer.step()
    return float(norm)


def make_loader(dataset: Dataset, config: TrainConfig, context: DistributedContext, epoch: int,
                worker_init_fn: Callable[[int], None] | None) -> DataLoader:
    """A per-epoch loader whose order and worker seeds depend only on (seed, epoch, rank).

    A DistributedSampler shards the shuffled order over the ranks (one shard in a single process)."""
    sampler = DistributedSampler(dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True,
                                 seed=config.trainer.seed, drop_last=True)
    sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(int(np.random.SeedSequence(
        [config.trainer.seed, epoch, context.rank]).generate_state(1)[0]))
    return DataLoader(dataset, batch_size=config.data.batch_size, sampler=sampler, drop_last=True,
                      num_workers=config.data.num_workers, worker_init_fn=worker_init_fn, generator=generator,
                      pin_memory=context.device.type == "cuda")


def batches_per_epoch(dataset_size: int, config: TrainConfig, context: DistributedContext) -> int:
    return (dataset_size // context.world_size) // config.data.batch_size


def seed_everything(seed: int, epoch: int, rank: int) -> None:
    """Global RNGs per (seed, epoch, rank): what a dataset draws in the main process is reproducible."""
    state = np.random.SeedSequence([seed, epoch, rank]).generate_state(2)
    torch.manual_seed(int(state[0]))
    np.random.seed(int(state[1]))
    random.seed(int(state[1]))


def epoch_batches(dataset: Dataset, config: TrainConfig, context: DistributedContext, start_epoch: int,
                  worker_init_fn: Callable[[int], None] | None) -> Iterator[tuple[int, int, Batch]]:
    """(epoch, batch index in the epoch, batch) forever, epoch after epoch."""
    if batches_per_epoch(len(dataset), config, context) == 0:
        raise ValueError(f"the training set has {len(dataset)} images: too few for one batch of "
                         f"{config.data.batch_size} per process on {context.world_size} process(es)")
    epoch = start_epoch
    while True:
        seed_everything(config.trainer.seed, epoch, context.rank)
        for index, batch in enumerate(make_loader(dataset, config, context, epoch, worker_init_fn)):
            yield epoch, index, batch
        epoch += 1


def wrap_for_ddp(module: nn.Module, context: DistributedContext, sync_batchnorm: bool) -> nn.Module:
    if not context.enabled:
        if sync_batchnorm:
            LOG.info("trainer.sync_batchnorm has no effect in a single process")
        return module
    if sync_batchnorm:
        if context.device.type != "cuda":
            raise ValueError("trainer.sync_batchnorm needs CUDA devices (SyncBatchNorm has no CPU kernel)")
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)  # buffers follow rank 0 at each forward


def checkpoint_payload(networks: Networks, optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
                       config: TrainConfig, step: int, epoch: int, batch_in_epoch: int,
                       rng_states: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
        "config": config.to_dict(),
        "generator": networks.plain_generator.state_dict(),
        "discriminator": networks.plain_discriminator.state_dict(),
        "optimizer_g": optimizers[0].state_dict(), "optimizer_d": optimizers[1].state_dict(),
        "rng": rng_states,
    }


def _prune_checkpoints(directory: Path, keep: int) -> None:
    steps = sorted(directory.glob("step_*.pt"))
    for old in steps[:-keep]:
        old.unlink()


def train(config: TrainConfig, run_dir: str | Path, train_dataset: Dataset, *,
          evaluate: EvalFunction | None = None, sample_batch: Batch | None = None,
          resume: str | Path | None = None, init_state: Mapping[str, Any] | None = None,
          init_source: str = "", worker_init_fn: Callable[[int], None] | None = None,
          init_generator: Mapping[str, torch.Tensor] | None = None) -> TrainResult:
    """Train until `config.trainer.max_steps`; under torchrun, join the process group first.

    `evaluate(generator, device)` returns metrics of the fixed evaluation set; `sample_batch`
    ({image, mask}) is drawn into the sample grids. `resume` is one of our checkpoints (its
    architecture wins over `config`); `init_state` is the official checkpoint's `state_dict`;
    `init_generator` a generator state (fine-tuning an exported model: the discriminator starts fresh).
    """
    context = setup_distributed(config.trainer.device)
    run_dir = Path(run_dir)
    payload = None
    if resume is not None:
        payload = load_checkpoint(resume)
        saved = config_from_dict(payload["config"])
        if (saved.generator, saved.discriminator) != (config.generator, config.discriminator):
            LOG.warning("resume: using the architecture stored in the checkpoint, not the config's")
        config.generator, config.discriminator = saved.generator, saved.discriminator
    tc = config.trainer
    torch.manual_seed(tc.seed)  # identical initial weights on every rank

    generator = make_generator(config.generator).to(context.device)
    discriminator = make_discriminator(config.discriminator).to(context.device)
    official = split_official_state(init_state["state_dict"] if "state_dict" in init_state else init_state,
                                    init_source) if init_state is not None else None
    perceptual = build_perceptual_loss(config, official["perceptual"] if official else None)
    if init_state is not None and payload is None:
        load_official_weights(init_state.get("state_dict", init_state), generator, discriminator,
                              perceptual.impl if perceptual is not None else None, init_source)
    if init_generator is not None and payload is None:
        strict_load(generator, {k: v.to(context.device) for k, v in init_generator.items()}, "generator",
                    init_source)
    if perceptual is not None:
        perceptual = perceptual.to(context.device)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=tc.lr_g)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=tc.lr_d)
    step, epoch, batch_in_epoch = 0, 0, 0
    if payload is not None:
        strict_load(generator, payload["generator"], "generator", str(resume))
        strict_load(discriminator, payload["discriminator"], "discriminator", str(resume))
        optimizer_g.load_state_dict(payload["optimizer_g"])
        optimizer_d.load_state_dict(payload["optimizer_d"])
        # The optimizers' saved state carries the old learning rates; the config's win, so that
        # `--resume RUN --set trainer.lr_g=...` decays the rate as asked instead of silently not.
        for optimizer, rate in ((optimizer_g, tc.lr_g), (optimizer_d, tc.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = rate
        step, epoch, batch_in_epoch = payload["step"], payload["epoch"], payload["batch_in_epoch"]
    networks = Networks(wrap_for_ddp(generator, context, tc.sync_batchnorm),
                        wrap_for_ddp(discriminator, context, tc.sync_batchnorm), perceptual)
    networks.generator.train()
    networks.discriminator.train()

    log = MetricsLog(run_dir, tc.tensorboard) if context.is_main else None
    effective_batch = config.data.batch_size * context.world_size
    if log is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(_yaml_dump(config.to_dict()))
        log.write(step, "start", {"world_size": context.world_size, "batch_per_process": config.data.batch_size,
                                  "effective_batch": effective_batch, "device": str(context.device),
                                  "resumed_from": str(resume) if resume else "", "init_from": init_source})
        LOG.info("training %s on %s x %s: effective batch %d (%d per process)", config.name, context.world_size,
                 context.device, effective_batch, config.data.batch_size)

    stop = tc.max_steps
    progress = None
    if context.is_main and tc.progress_bar:
        from tqdm import tqdm
        progress = tqdm(total=stop, initial=step, desc=config.name, unit="step", dynamic_ncols=True)
    result = TrainResult(step=step, run_dir=run_dir, last_checkpoint=None, config=config)
    if batch_in_epoch >= batches_per_epoch(len(train_dataset), config, context):
        epoch, batch_in_epoch = epoch + 1, 0  # the checkpoint closed an epoch
    batches = epoch_batches(train_dataset, config, context, epoch, worker_init_fn)
    if payload is not None:
        # Replay the epoch's first batches without training on them: the data stream (crops, masks,
        # worker RNGs) then continues exactly as in the uninterrupted run.
        for _ in range(batch_in_epoch):
            next(batches)
        if len(payload["rng"]) == context.world_size:
            restore_rng_state(payload["rng"][context.rank])
        else:
            LOG.warning("resume: checkpoint was written by %d processes, this run has %d; RNG states not restored",
                        len(payload["rng"]), context.world_size)
    window: dict[str, list[float]] = {}
    started = time.time()
    try:
        if evaluate is not None and step == 0 and payload is None:
            _run_evaluation(networks, evaluate, context, log, result, step)  # the untrained baseline
        while step < stop:
            epoch, batch_in_epoch, batch = next(batches)
            image = batch["image"].to(context.device, non_blocking=True)
            mask = batch["mask"].to(context.device, non_blocking=True)

            networks.plain_discriminator.requires_grad_(False)
            loss_g, prediction, logged = generator_phase(networks, image, mask, config)
            logged["grad_norm_g"] = optimizer_step(optimizer_g, loss_g, networks.generator, tc.grad_clip)
            networks.plain_discriminator.requires_grad_(True)
            loss_d, logged_d = discriminator_phase(networks, image, mask, config)
            logged_d["grad_norm_d"] = optimizer_step(optimizer_d, loss_d, networks.discriminator, tc.grad_clip)
            logged.update(logged_d)
            if not all(math.isfinite(v) for v in logged.values()):
                raise FloatingPointError(f"non-finite loss at step {step + 1}: {logged}")
            step += 1
            batch_in_epoch += 1
            result.last_losses = logged
            for key, value in logged.items():
                window.setdefault(key, []).append(value)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(g=f"{logged['gen_total']:.3f}", d=f"{logged['discr_total']:.3f}")

            # one process checks the clock every step; under DDP the ranks agree at log steps
            if tc.max_minutes > 0 and step < stop and (context.world_size == 1 or step % tc.log_every == 0) and any(
                    all_gather_objects(context, time.time() - started >= tc.max_minutes * 60)):
                stop = step  # out of time: this step is the last, with its log, samples and checkpoint
                LOG.info("trainer.max_minutes (%s) reached at step %d", tc.max_minutes, step)
            if step % tc.log_every == 0 or step == stop:
                means = mean_across_ranks(context, {k: float(np.mean(v)) for k, v in window.items()})
                window.clear()
                if log is not None:
                    log.write(step, "train", {**means, "epoch": epoch, "effective_batch": effective_batch,
                                              "seconds": round(time.time() - started, 3)})
            if step % tc.sample_every == 0 or step == stop:
                if context.is_main:
                    _write_samples(networks.plain_generator, sample_batch or batch, run_dir / "samples" /
                                   f"step_{step:07d}.png", context.device)
            if evaluate is not None and (step % tc.eval_every == 0 or step == stop):
                _run_evaluation(networks, evaluate, context, log, result, step)
            if step % tc.checkpoint_every == 0 or step == stop:
                rng_states = all_gather_objects(context, capture_rng_state())
                if context.is_main:
                    directory = run_dir / "checkpoints"
                    data = checkpoint_payload(networks, (optimizer_g, optimizer_d), config, step, epoch,
                                              batch_in_epoch, rng_states)
                    save_checkpoint(directory / f"step_{step:07d}.pt", data)
                    save_checkpoint(directory / "last.pt", data)
                    _prune_checkpoints(directory, tc.keep_checkpoints)
                    result.last_checkpoint = directory / "last.pt"
                barrier(context)
    finally:
        if progress is not None:
            progress.close()
        if log is not None:
            log.close()
        teardown_distributed(context)
    result.step = step
    result.generator, result.discriminator = networks.plain_generator, networks.plain_discriminator
    return result


@torch.no_grad()
def _write_samples(generator: nn.Module, batch: Batch, path: Path, device: torch.device) -> None:
    was_training = generator.training
    generator.eval()
    image, mask = batch["image"][:4].to(device), batch["mask"][:4].to(device)
    prediction = generator(torch.cat([image * (1 - mask), mask], dim=1))
    save_sample_grid(path, image, mask, prediction)
    generator.train(was_training)


def _run_evaluation(networks: Networks, evaluate: EvalFunction, context: DistributedContext, log: MetricsLog | None,
                    result: TrainResult, step: int) -> None:
    """Rank 0 scores the fixed evaluation set; the other ranks wait for it."""
    if context.is_main:
        metrics = _evaluate(networks.plain_generator, evaluate, context.device)
        result.eval_history.append({"step": step, **metrics})
        if log is not None:
            log.write(step, "eval", metrics)
    barrier(context)


def _evaluate(generator: nn.Module, evaluate: EvalFunction, device: torch.device) -> dict[str, float]:
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            return evaluate(generator, device)
    finally:
        generator.train(was_training)


def _yaml_dump(data: dict[str, Any]) -> str:
    import yaml
    return yaml.safe_dump(data, sort_keys=False)


__all__ = ["CheckpointError", "Networks", "TrainResult", "build_perceptual_loss", "discriminator_phase",
           "generator_phase", "train"]
