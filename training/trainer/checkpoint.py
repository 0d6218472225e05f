"""Training checkpoints (ours) and initialisation from the official `big-lama-with-discr` checkpoint.

Our checkpoint is a `torch.save` dict of tensors and plain data only, so it loads with
`weights_only=True` (no pickled code runs): networks, both optimizers, the step counters, the
random-number-generator states of every rank and the full config. On resume the architecture
(generator and discriminator configs) comes from the checkpoint, whatever the config file says.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

LOG = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "lama-training-checkpoint"
CHECKPOINT_VERSION = 1

# Prefixes in the official Lightning checkpoint. Its perceptual-loss backbone is stored under the
# older name `loss_segm_pl` (the code calls it `loss_resnet_pl`); evaluator modules are not trained.
OFFICIAL_GENERATOR = "generator."
OFFICIAL_DISCRIMINATOR = "discriminator."
OFFICIAL_PERCEPTUAL = ("loss_segm_pl.impl.", "loss_resnet_pl.impl.")
OFFICIAL_IGNORED = ("val_evaluator.", "test_evaluator.", "extra_evaluators.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here; the message names the file and the problem."""


def capture_rng_state() -> dict[str, Any]:
    """This process's torch / CUDA / numpy / Python random states as checkpoint-safe data."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Atomic write (temp file + rename), so a crash never leaves a half-written `last.pt`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    temporary = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, temporary)
    temporary.replace(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # damaged file or foreign pickle: one clear line
        raise CheckpointError(f"{path}: not a lama-train checkpoint ({' '.join(str(exc).split())[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a lama-train checkpoint (for the official big-lama-with-discr "
                              "checkpoint use --init-from)")
    if payload.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload['version']} is newer than this lama-train")
    return payload


def strict_load(module: nn.Module, state: Mapping[str, torch.Tensor], what: str, source: str) -> None:
    """load_state_dict(strict=True) with an error that names missing / extra / mis-shaped keys."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or extra or wrong:
        raise CheckpointError(f"{source}: {what} does not match the configured network: missing {missing[:4]}, "
                              f"unexpected {extra[:4]}, wrong shape {wrong[:4]}")
    module.load_state_dict(state, strict=True)


def split_official_state(state: Mapping[str, Any], source: str) -> dict[str, dict[str, torch.Tensor]]:
    """Sort official `state_dict` keys into generator / discriminator / perceptual parts.

    `loss_segm_pl.impl.*` (and `loss_resnet_pl.impl.*`) map to the perceptual backbone. Evaluator
    keys are dropped; any other key is an error, so nothing is silently lost.
    """
    parts: dict[str, dict[str, torch.Tensor]] = {"generator": {}, "discriminator": {}, "perceptual": {}}
    unknown = []
    for key, value in state.items():
        key = str(key)
        if key.startswith(OFFICIAL_GENERATOR):
            parts["generator"][key[len(OFFICIAL_GENERATOR):]] = value
        elif key.startswith(OFFICIAL_DISCRIMINATOR):
            parts["discriminator"][key[len(OFFICIAL_DISCRIMINATOR):]] = value
        elif key.startswith(OFFICIAL_PERCEPTUAL):
            prefix = next(p for p in OFFICIAL_PERCEPTUAL if key.startswith(p))
            parts["perceptual"][key[len(prefix):]] = value
        elif not key.startswith(OFFICIAL_IGNORED):
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: unexpected keys {unknown[:4]} ({len(unknown)} in all)")
    not_tensors = [k for part in parts.values() for k, v in part.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(f"{source}: entries that are not tensors: {not_tensors[:4]}")
    return parts


def load_official_weights(state: Mapping[str, Any], generator: nn.Module, discriminator: nn.Module,
                          perceptual_backbone: nn.Module | None, source: str) -> None:
    """Initialise from an official training checkpoint's `state_dict` (strict for G and D)."""
    parts = split_official_state(state, source)
    if not parts["discriminator"]:
        raise CheckpointError(f"{source}: no discriminator.* weights (fine-tuning needs big-lama-with-discr, "
                              "not the inference-only big-lama checkpoint)")
    strict_load(generator, parts["generator"], "generator", source)
    strict_load(discriminator, parts["discriminator"], "discriminator", source)
    if perceptual_backbone is not None and parts["perceptual"]:
        perceptual = dict(parts["perceptual"])
        for key, value in perceptual_backbone.state_dict().items():  # counters absent from old files
            if key.endswith("num_batches_tracked") and key not in perceptual:
                perceptual[key] = value
        strict_load(perceptual_backbone, perceptual, "perceptual backbone (loss_segm_pl)", source)
        LOG.info("%s: perceptual backbone loaded from loss_segm_pl.* (%d tensors)", source, len(parts["perceptual"]))
