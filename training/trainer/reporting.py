"""What a run leaves behind besides checkpoints: a JSONL metrics log, TensorBoard, sample grids."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from PIL import Image

LOG = logging.getLogger(__name__)


class MetricsLog:
    """One JSON object per line in `metrics.jsonl` (and scalars to TensorBoard when installed)."""

    def __init__(self, run_dir: Path, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                LOG.info("TensorBoard is not installed; metrics go to %s only", self.path)
            else:
                self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    @property
    def tensorboard_enabled(self) -> bool:
        return self._writer is not None

    def write(self, step: int, kind: str, values: Mapping[str, Any]) -> None:
        record = {"step": step, "kind": kind, "time": round(time.time(), 3), **values}
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        self._file.close()
        if self._writer is not None:
            self._writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sample_grid(image: torch.Tensor, mask: torch.Tensor, prediction: torch.Tensor) -> np.ndarray:
    """Rows of [input with the hole shown white, raw prediction, inpainted, original] as H x W x 3 uint8."""
    inpainted = mask * prediction + (1 - mask) * image
    masked = image * (1 - mask) + mask
    rows = []
    for i in range(image.shape[0]):
        tiles = [t[i].detach().float().cpu().clamp(0, 1) for t in (masked, prediction, inpainted, image)]
        rows.append(torch.cat(tiles, dim=2))
    grid = torch.cat(rows, dim=1)
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def save_sample_grid(path: Path, image: torch.Tensor, mask: torch.Tensor, prediction: torch.Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample_grid(image, mask, prediction)).save(path)
    return path
