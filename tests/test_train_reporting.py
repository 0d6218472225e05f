"""Metrics log (JSONL, TensorBoard when installed) and sample grids."""
from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from lama_training.trainer.reporting import MetricsLog, read_metrics, sample_grid


def test_jsonl_log_appends_one_record_per_call(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path, tensorboard=False)
    log.write(1, "train", {"gen_total": 2.5})
    log.write(2, "eval", {"hole_l1": 0.1, "images": 4})
    log.close()
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [(r["step"], r["kind"]) for r in records] == [(1, "train"), (2, "eval")]
    assert records[1]["hole_l1"] == 0.1
    assert not (tmp_path / "tensorboard").exists()


def test_tensorboard_receives_numeric_scalars_when_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class RecordingWriter:  # stands in for tensorboard's SummaryWriter, which this venv need not have
        def __init__(self, log_dir: str) -> None:
            calls.append(("init", log_dir))

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            calls.append((tag, value, step))

        def close(self) -> None:
            calls.append(("close",))

    module = types.ModuleType("torch.utils.tensorboard")
    module.SummaryWriter = RecordingWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", module)
    log = MetricsLog(tmp_path, tensorboard=True)
    assert log.tensorboard_enabled
    log.write(3, "train", {"gen_total": 1.5, "device": "cpu", "flag": True})
    log.close()
    assert calls == [("init", str(tmp_path / "tensorboard")), ("train/gen_total", 1.5, 3), ("close",)]
    assert MetricsLog(tmp_path, tensorboard=False).tensorboard_enabled is False


def test_tensorboard_missing_falls_back_to_jsonl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    log = MetricsLog(tmp_path, tensorboard=True)
    assert not log.tensorboard_enabled
    log.write(1, "train", {"x": 1.0})
    log.close()
    assert read_metrics(tmp_path / "metrics.jsonl")[0]["x"] == 1.0


def test_sample_grid_rows_show_input_prediction_inpainted_original() -> None:
    image = torch.zeros(2, 3, 4, 4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[..., :2] = 1
    prediction = torch.full((2, 3, 4, 4), 0.5)
    grid = sample_grid(image, mask, prediction)
    assert grid.shape == (8, 16, 3) and grid.dtype == np.uint8
    assert (grid[:4, 0:2] == 255).all() and (grid[:4, 2:4] == 0).all()     # hole shown white
    assert (grid[:4, 4:8] == 128).all()                                    # raw prediction
    assert (grid[:4, 8:10] == 128).all() and (grid[:4, 10:12] == 0).all()  # inpainted: hole from prediction
    assert (grid[:4, 12:16] == 0).all()                                    # original
