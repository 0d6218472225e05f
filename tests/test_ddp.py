"""Two gloo processes on CPU train `tiny` for a few steps and end with identical weights."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from lama_training.trainer import load_config, train


class PatternDataset(torch.utils.data.Dataset):
    """Smooth random images with one box hole each; item i is the same in every process."""

    def __len__(self) -> int:
        return 16

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        low = torch.rand(1, 3, 8, 8, generator=generator)
        image = torch.nn.functional.interpolate(low, size=(64, 64), mode="bilinear", align_corners=False)[0]
        mask = torch.zeros(1, 64, 64)
        top, left = (int(v) for v in torch.randint(0, 32, (2,), generator=generator))
        mask[:, top:top + 24, left:left + 24] = 1
        return {"image": image, "mask": mask}


def tiny_config(steps: int):
    return load_config("tiny", [f"trainer.max_steps={steps}", "trainer.checkpoint_every=100", "trainer.log_every=1",
                                "trainer.sample_every=100", "trainer.progress_bar=false", "trainer.device=cpu",
                                "data.crop_size=64", "data.batch_size=2", "generator.ngf=8", "generator.n_blocks=1",
                                "discriminator.ndf=8"])


def _worker(rank: int, world_size: int, port: int, run_dir: str, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = train(tiny_config(3), run_dir, PatternDataset())
    # the loop tore the process group down; what each rank holds is saved for the parent to compare
    torch.save({"step": result.step, "generator": result.generator.state_dict(),
                "discriminator": result.discriminator.state_dict()}, Path(out_dir) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_hold_identical_weights(tmp_path: Path) -> None:
    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(run_dir), str(out_dir)), nprocs=2, join=True)
    ranks = [torch.load(out_dir / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    initial = tiny_config(3)
    torch.manual_seed(initial.trainer.seed)
    from lama_training.modules import make_generator
    untrained = make_generator(initial.generator).state_dict()
    for network in ("generator", "discriminator"):
        first, second = ranks[0][network], ranks[1][network]
        for key, value in first.items():
            if "running_" in key or "num_batches_tracked" in key:
                continue  # batch-norm statistics are per-rank (each sees its own shard) without SyncBatchNorm
            assert torch.equal(value, second[key]), f"{network}.{key} differs between ranks"
    assert any(not torch.equal(value, untrained[key]) for key, value in ranks[0]["generator"].items()
               if value.is_floating_point()), "the generator did not train"
    # rank 0 alone logs and checkpoints; the log states the effective batch (2 processes x 2)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["kind"] == "start" and records[0]["world_size"] == 2 and records[0]["effective_batch"] == 4
    assert [r["step"] for r in records if r["kind"] == "train"] == [1, 2, 3]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.pt", "step_0000003.pt"]
