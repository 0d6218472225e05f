"""What seam matching (`lama_backend.engine.seams`) adds to an inpainting pass, against the pass itself.

For square regions of each size with a hole of about a third of the area (a thick stroke-and-box
mask scaled up), this times, in one run: the bundled small model's fast pass (one prediction,
and the four mirror images it is served with) and `match_seams` on that prediction, and prints
the seam step's share. Run: `.venv/bin/python benchmarks/seams.py [--sizes 512 1024 2048]`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import best_wall  # noqa: E402


def hole_for(size: int) -> np.ndarray:
    """A box and a thick diagonal band: large, irregular, reaching no image border."""
    hole = np.zeros((size, size), bool)
    hole[size // 5: size // 2, size // 4: 3 * size // 5] = True
    yy, xx = np.mgrid[:size, :size]
    hole |= (np.abs(yy - xx - size // 8) < size // 14) & (yy > size // 10) & (yy < 9 * size // 10)
    return hole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from lama_backend.engine.seams import match_seams
    from lama_backend.weights import load_model
    from lama_backend.weights.discovery import BUNDLED_DIR

    model = load_model(BUNDLED_DIR / "lama-small.safetensors", device="cpu")
    print(f"model: {model.describe()['source']}, threads {torch.get_num_threads()}")
    print(f"{'size':>6} {'hole %':>7} {'1 pass s':>9} {'4 passes s':>11} {'seams s':>8} {'seams / served':>15}")
    rng = np.random.default_rng(0)
    for size in args.sizes:
        image = rng.random((size, size, 3), dtype=np.float32)
        hole = hole_for(size)
        rgb = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
        mask = torch.from_numpy(hole.astype(np.float32))[None, None]
        with torch.inference_mode():
            one = best_wall(lambda: model.predict(rgb, mask), args.repeats)
            prediction = model.predict(rgb, mask)[0].permute(1, 2, 0).numpy().copy()
        # match_seams shifts in place: each call gets a fresh copy of the raw prediction (a copy
        # costs ~1 % of the solve)
        seams = best_wall(lambda: match_seams(prediction.copy(), image, hole), args.repeats)
        served = 4 * one + seams
        print(f"{size:>6} {100 * hole.mean():>7.1f} {one:>9.2f} {4 * one:>11.2f} {seams:>8.2f} {seams / served:>15.2f}")


if __name__ == "__main__":
    main()
