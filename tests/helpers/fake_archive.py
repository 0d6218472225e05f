"""A small archive laid out like the official `big-lama.zip`, holding a tiny generator."""
from __future__ import annotations

import collections
import io
import zipfile

import torch

from .tiny_model import make_tiny_generator

CONFIG_YAML = "generator:\n  kind: ffc_resnet\n  ngf: 8\n  n_blocks: 1\n"


def lightning_checkpoint_bytes(seed: int = 0, extra_generator_key: bool = False) -> bytes:
    """`{"state_dict": {"generator.*", "discriminator.*"}, ...}` as torch.save writes it."""
    state = collections.OrderedDict((f"generator.{k}", v) for k, v in make_tiny_generator(seed).state_dict().items())
    state["discriminator.model0.0.weight"] = torch.zeros(8, 3, 4, 4)
    if extra_generator_key:
        state["generator.model.99.weight"] = torch.zeros(1)
    buffer = io.BytesIO()
    torch.save({"state_dict": state, "epoch": 1, "pytorch-lightning_version": "1.2.9"}, buffer)
    return buffer.getvalue()


def big_lama_zip_bytes(seed: int = 0, members: dict[str, bytes] | None = None,
                       extra_generator_key: bool = False) -> bytes:
    """The archive's bytes; `members` replaces the default content (to build broken archives)."""
    if members is None:
        members = {"big-lama/config.yaml": CONFIG_YAML.encode(),
                   "big-lama/models/best.ckpt": lightning_checkpoint_bytes(seed, extra_generator_key)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
