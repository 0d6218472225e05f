"""Two gloo processes on CPU train `deepgin-tiny` through the warm-up and adversarial phases and
end with identical weights (spectral-norm power-iteration buffers included)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from lama_training.trainer import load_config
from tests.test_ddp import PatternDataset, _free_port


def _worker(rank: int, world_size: int, port: int, run_dir: str, out_dir: str) -> None:
    from lama_training.deepgin.trainer import train

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    config = load_config("deepgin-tiny", ["trainer.max_steps=3", "schedule.warmup_steps=1", "trainer.log_every=1",
                                          "trainer.progress_bar=false", "trainer.device=cpu", "data.batch_size=1",
                                          "generator.ngf=8", "discriminator.ndf=8"])
    result = train(config, run_dir, PatternDataset())
    torch.save({"step": result.step, "generator": result.generator.state_dict(),
                "discriminator": result.discriminator.state_dict()}, Path(out_dir) / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_gloo_processes_hold_identical_deepgin_weights(tmp_path: Path) -> None:
    run_dir, out_dir = tmp_path / "run", tmp_path / "out"
    out_dir.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(run_dir), str(out_dir)), nprocs=2, join=True)
    ranks = [torch.load(out_dir / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    for network in ("generator", "discriminator"):
        for key, value in ranks[0][network].items():
            assert torch.equal(value, ranks[1][network][key]), (network, key)
    assert any(key.endswith("_u") for key in ranks[0]["discriminator"])  # spectral norm's state was compared
    from lama_training.deepgin.generator import make_deepgin
    from lama_training.deepgin.trainer import make_discriminator
    config = load_config("deepgin-tiny", ["generator.ngf=8", "discriminator.ndf=8"])
    torch.manual_seed(config.trainer.seed)  # the loop's initialisation order: G, then D
    make_deepgin(config.generator)
    initial = make_discriminator(config).state_dict()
    changed = [k for k, v in ranks[0]["discriminator"].items() if k.endswith("original") and not torch.equal(v, initial[k])]
    assert changed  # the adversarial steps trained D on both ranks alike
