"""DeepGIN's training loop: an L1 warm-up phase, then the adversarial phase.

Per step, on a batch of N images each paired with its three AIM masks (3N samples):
- warm-up (the first `schedule.warmup_steps` steps): G minimises the multi-scale hole/valid L1
  of (coarse, gt), (out, gt) and (I_lr, gt / 4); D is neither run nor trained.
- adversarial: one G forward; D phase first (hinge loss on real vs the detached completed image,
  both conditioned on the masked input and the mask; Adam step on D), then the G phase against
  the updated, frozen D: L1 + adversarial hinge + perceptual and style (VGG-19, on both the
  output and the completed image) + total variation of the completed image; Adam step on G.
Adam uses beta1 0.5; both learning rates are constant until `schedule.decay_start`, then fall
linearly to zero at `trainer.max_steps`.

Everything around the steps is LaMa's machinery (`lama_training.trainer`): data order and
seeding, DDP wrapping, checkpoints with RNG states and replayed data on resume, the JSONL log,
evaluation on a fixed set and sample grids (through `CompletedImage`, which gives a DeepGIN
generator the LaMa generator contract).
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..trainer.checkpoint import CheckpointError, capture_rng_state, load_checkpoint, restore_rng_state, \
    save_checkpoint, strict_load
from ..trainer.config import config_from_dict
from ..trainer.distributed import (DistributedContext, all_gather_objects, barrier, mean_across_ranks,
                                   setup_distributed, teardown_distributed)
from ..trainer.loop import (Batch, EvalFunction, Networks, TrainResult, _prune_checkpoints, _run_evaluation,
                            _write_samples, _yaml_dump, batches_per_epoch, checkpoint_payload, epoch_batches,
                            optimizer_step, wrap_for_ddp)
from ..trainer.reporting import MetricsLog
from .config import DeepGINScheduleConfig, DeepGINTrainConfig
from .data import ThreeMaskDataset, expand_three_masks, sample_masks
from .discriminator import DeepGINDiscriminator
from .generator import PAD_MODULO, DeepGINGenerator, DeepGINOutput, make_deepgin
from .losses import (hinge_discriminator_loss, hinge_generator_loss, multiscale_reconstruction_loss,
                     perceptual_loss, style_loss, total_variation_loss)
from .vgg import VGG19Features

LOG = logging.getLogger(__name__)

VGG19_FILE = "vgg19-dcbb9e9d.pth"


class CompletedImage(nn.Module):
    """A DeepGIN generator behind the LaMa generator contract, for evaluation and sample grids:
    `forward(cat([image * (1 - mask), mask]))` -> the refined prediction N x 3 x H x W. Sizes that
    are not multiples of 16 are replicate-padded and cropped back."""

    def __init__(self, generator: DeepGINGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        pad = (0, -width % PAD_MODULO, 0, -height % PAD_MODULO)
        if any(pad):
            x = F.pad(x, pad, mode="replicate")
        return self.generator(x[:, :3], x[:, 3:4]).reconstructed[..., :height, :width]


def make_discriminator(config: DeepGINTrainConfig) -> DeepGINDiscriminator:
    d = config.discriminator
    return DeepGINDiscriminator(ndf=d.ndf, n_layers=d.n_layers, num_scales=d.num_scales)


def build_vgg(config: DeepGINTrainConfig) -> VGG19Features | None:
    """The frozen VGG-19, or None when the perceptual and style weights are both 0."""
    losses = config.losses
    if not losses.needs_vgg:
        return None
    if not losses.vgg19_weights:
        raise FileNotFoundError(
            f"the perceptual ({losses.perceptual}) and style ({losses.style}) losses need torchvision's VGG-19 "
            f"file {VGG19_FILE}: give its path with --set losses.vgg19_weights=PATH, or disable both with "
            "--set losses.perceptual=0 --set losses.style=0")
    return VGG19Features(losses.vgg19_weights)


def learning_rate_factor(step: int, schedule: DeepGINScheduleConfig, max_steps: int) -> float:
    """Multiplier of the base learning rates for the step after `step` completed steps."""
    if step < schedule.decay_start:
        return 1.0
    return max(0.0, (max_steps - step) / max(1, max_steps - schedule.decay_start))


def is_warmup(step: int, schedule: DeepGINScheduleConfig) -> bool:
    """True while the step after `step` completed steps belongs to the L1-only warm-up."""
    return step < schedule.warmup_steps


def condition_of(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What the discriminators are conditioned on: the generator's input (holes white) and the mask."""
    return torch.cat([image * (1 - mask) + mask, mask], dim=1)


def generator_losses(output: DeepGINOutput, image: torch.Tensor, mask: torch.Tensor, config: DeepGINTrainConfig,
                     discriminator: nn.Module | None, vgg: VGG19Features | None) -> tuple[torch.Tensor, dict[str, float]]:
    """G's total loss and its logged parts; `discriminator` None means the warm-up (L1 only)."""
    weights = config.losses
    l1 = multiscale_reconstruction_loss(output.coarse, output.reconstructed, output.low_res, image, mask, weights.hole)
    total = l1
    logged = {"gen_l1": float(l1.detach())}
    if discriminator is not None:
        adversarial = hinge_generator_loss(discriminator(condition_of(image, mask), output.completed))
        tv = total_variation_loss(output.completed)
        total = total + weights.adversarial * adversarial + weights.total_variation * tv
        logged.update(gen_adv=float(adversarial.detach()), gen_tv=float(tv.detach()))
        if vgg is not None:
            with torch.no_grad():
                target = vgg(image)
            refined, completed = vgg(output.reconstructed), vgg(output.completed)
            if weights.perceptual > 0:
                perceptual = perceptual_loss(refined, target) + perceptual_loss(completed, target)
                total = total + weights.perceptual * perceptual
                logged["gen_perceptual"] = float(perceptual.detach())
            if weights.style > 0:
                style = style_loss(refined, target) + style_loss(completed, target)
                total = total + weights.style * style
                logged["gen_style"] = float(style.detach())
    logged["gen_total"] = float(total.detach())
    return total, logged


def discriminator_loss(discriminator: nn.Module, image: torch.Tensor, mask: torch.Tensor,
                       completed: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Hinge loss of D on the real image vs the (detached) completed image, same condition."""
    condition = condition_of(image, mask)
    real = discriminator(condition, image)
    fake = discriminator(condition, completed.detach())
    loss = hinge_discriminator_loss(real, fake)
    return loss, {"discr_total": float(loss.detach()),
                  "discr_real_out": float(sum(r.detach().mean() for r in real) / len(real)),
                  "discr_fake_out": float(sum(f.detach().mean() for f in fake) / len(fake))}


def train_step(networks: Networks, optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer],
               image: torch.Tensor, mask: torch.Tensor, config: DeepGINTrainConfig, vgg: VGG19Features | None,
               step: int) -> dict[str, float]:
    """One optimisation step after `step` completed steps; returns the logged values."""
    schedule, tc = config.schedule, config.trainer
    factor = learning_rate_factor(step, schedule, tc.max_steps)
    optimizer_g, optimizer_d = optimizers
    for group in optimizer_g.param_groups:
        group["lr"] = tc.lr_g * factor
    for group in optimizer_d.param_groups:
        group["lr"] = tc.lr_d * factor
    warmup = is_warmup(step, schedule)
    output: DeepGINOutput = networks.generator(image, mask)
    logged: dict[str, float] = {"lr_g": tc.lr_g * factor, "lr_d": tc.lr_d * factor,
                                "adversarial_phase": 0.0 if warmup else 1.0}
    if not warmup:
        networks.plain_discriminator.requires_grad_(True)
        loss_d, logged_d = discriminator_loss(networks.discriminator, image, mask, output.completed)
        logged_d["grad_norm_d"] = optimizer_step(optimizer_d, loss_d, networks.discriminator, tc.grad_clip)
        logged.update(logged_d)
        networks.plain_discriminator.requires_grad_(False)
    loss_g, logged_g = generator_losses(output, image, mask, config,
                                        None if warmup else networks.plain_discriminator, vgg)
    logged_g["grad_norm_g"] = optimizer_step(optimizer_g, loss_g, networks.generator, tc.grad_clip)
    logged.update(logged_g)
    return logged


def train(config: DeepGINTrainConfig, run_dir: str | Path, train_dataset: Dataset, *,
          evaluate: EvalFunction | None = None, sample_batch: Batch | None = None,
          resume: str | Path | None = None, worker_init_fn: Callable[[int], None] | None = None,
          max_steps: int | None = None, context: DistributedContext | None = None) -> TrainResult:
    """Train DeepGIN until `config.trainer.max_steps` (or `max_steps` more steps of this call).

    `train_dataset` yields {"image"} items (its masks are replaced by the three AIM masks);
    `evaluate` and `sample_batch` are as for LaMa's `train` (they see `CompletedImage`); `resume`
    is one of our checkpoints of a DeepGIN run (its architecture wins over `config`).
    """
    own_context = context is None
    context = context or setup_distributed(config.trainer.device)
    run_dir = Path(run_dir)
    payload = None
    if resume is not None:
        payload = load_checkpoint(resume)
        saved = config_from_dict(payload["config"])
        if saved.family != config.family:
            raise CheckpointError(f"{resume}: a {saved.family} checkpoint cannot resume a {config.family} run")
        if (saved.generator, saved.discriminator) != (config.generator, config.discriminator):
            LOG.warning("resume: using the architecture stored in the checkpoint, not the config's")
        config.generator, config.discriminator = saved.generator, saved.discriminator
    tc = config.trainer
    vgg = build_vgg(config)  # before anything heavy: a missing file is the first error
    torch.manual_seed(tc.seed)  # identical initial weights on every rank
    generator = make_deepgin(config.generator).to(context.device)
    discriminator = make_discriminator(config).to(context.device)
    if vgg is not None:
        vgg = vgg.to(context.device)
    betas = (config.schedule.adam_beta1, config.schedule.adam_beta2)
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=tc.lr_g, betas=betas)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), lr=tc.lr_d, betas=betas)
    step, epoch, batch_in_epoch = 0, 0, 0
    if payload is not None:
        strict_load(generator, payload["generator"], "generator", str(resume))
        strict_load(discriminator, payload["discriminator"], "discriminator", str(resume))
        optimizer_g.load_state_dict(payload["optimizer_g"])
        optimizer_d.load_state_dict(payload["optimizer_d"])
        step, epoch, batch_in_epoch = payload["step"], payload["epoch"], payload["batch_in_epoch"]
    networks = Networks(wrap_for_ddp(generator, context, tc.sync_batchnorm),
                        wrap_for_ddp(discriminator, context, tc.sync_batchnorm), None)
    networks.generator.train()
    networks.discriminator.train()
    completed_view = Networks(CompletedImage(generator), discriminator, None)  # evaluation and samples

    dataset = ThreeMaskDataset(train_dataset, config.masks)
    if sample_batch is None or not config.data.eval_dir:  # samples show the AIM masks, not LaMa's
        images = sample_batch["image"] if sample_batch is not None else torch.stack(
            [train_dataset[i]["image"] for i in range(min(4, len(train_dataset)))])  # type: ignore[arg-type]
        sample_batch = {"image": images, "mask": sample_masks(images, tc.seed, config.masks)}

    log = MetricsLog(run_dir, tc.tensorboard) if context.is_main else None
    effective_batch = config.data.batch_size * context.world_size
    if log is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(_yaml_dump(config.to_dict()))
        log.write(step, "start", {"family": config.family, "world_size": context.world_size,
                                  "batch_per_process": config.data.batch_size, "effective_batch": effective_batch,
                                  "samples_per_batch": 3 * effective_batch, "device": str(context.device),
                                  "resumed_from": str(resume) if resume else ""})
        LOG.info("training %s (DeepGIN) on %s x %s: %d images x 3 masks per step", config.name, context.world_size,
                 context.device, effective_batch)

    stop = tc.max_steps if max_steps is None else min(tc.max_steps, step + max_steps)
    progress = None
    if context.is_main and tc.progress_bar:
        from tqdm import tqdm
        progress = tqdm(total=stop, initial=step, desc=config.name, unit="step", dynamic_ncols=True)
    result = TrainResult(step=step, run_dir=run_dir, last_checkpoint=None, config=config)  # type: ignore[arg-type]
    if batch_in_epoch >= batches_per_epoch(len(dataset), config, context):  # type: ignore[arg-type]
        epoch, batch_in_epoch = epoch + 1, 0
    batches = epoch_batches(dataset, config, context, epoch, worker_init_fn)  # type: ignore[arg-type]
    if payload is not None:
        for _ in range(batch_in_epoch):  # replay: the data stream continues as in the uninterrupted run
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
            _run_evaluation(completed_view, evaluate, context, log, result, step)  # the untrained baseline
        while step < stop:
            epoch, batch_in_epoch, batch = next(batches)
            image, mask = expand_three_masks(batch["image"].to(context.device, non_blocking=True),
                                             batch["mask"].to(context.device, non_blocking=True))
            logged = train_step(networks, (optimizer_g, optimizer_d), image, mask, config, vgg, step)
            if not all(math.isfinite(v) for v in logged.values()):
                raise FloatingPointError(f"non-finite loss at step {step + 1}: {logged}")
            step += 1
            batch_in_epoch += 1
            result.last_losses = logged
            for key, value in logged.items():
                window.setdefault(key, []).append(value)
            if progress is not None:
                progress.update(1)
                progress.set_postfix(g=f"{logged['gen_total']:.3f}", d=f"{logged.get('discr_total', 0.0):.3f}")
            if step % tc.log_every == 0 or step == stop:
                means = mean_across_ranks(context, {k: float(np.mean(v)) for k, v in window.items()})
                window.clear()
                if log is not None:
                    log.write(step, "train", {**means, "epoch": epoch, "effective_batch": effective_batch,
                                              "seconds": round(time.time() - started, 3)})
            if (step % tc.sample_every == 0 or step == stop) and context.is_main:
                _write_samples(completed_view.generator, sample_batch, run_dir / "samples" / f"step_{step:07d}.png",
                               context.device)
            if evaluate is not None and (step % tc.eval_every == 0 or step == stop):
                _run_evaluation(completed_view, evaluate, context, log, result, step)
            if step % tc.checkpoint_every == 0 or step == stop:
                rng_states = all_gather_objects(context, capture_rng_state())
                if context.is_main:
                    directory = run_dir / "checkpoints"
                    data = checkpoint_payload(networks, (optimizer_g, optimizer_d), config, step,  # type: ignore[arg-type]
                                              epoch, batch_in_epoch, rng_states)
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
        if own_context:
            teardown_distributed(context)
    result.step = step
    result.generator, result.discriminator = networks.plain_generator, networks.plain_discriminator
    return result

