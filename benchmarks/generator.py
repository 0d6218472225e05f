"""Generator speed and memory: the plain eager fp32 pass against the fast path, in one run.

    python benchmarks/generator.py                    # big-lama at 512, 1024, 2048
    python benchmarks/generator.py --sizes 512 --precisions fp32
    python benchmarks/generator.py --tiled 4096 --max-memory 5G   # bounded-memory pass
    python benchmarks/generator.py --device cuda --precisions fp32 bf16 fp16   # on a GPU

Every configuration runs in its own subprocess, so the peak RSS printed is that configuration's
alone (weights included). The reference is what a straightforward implementation does: the
generator `nn.Module` in eval mode, `torch.no_grad()`, NCHW float32. The fast path is
`lama_backend.acceleration.FastGenerator` over the same module with the same random weights
(seeded; batch-norm statistics randomised). Inputs are a natural photograph with a thick
evaluation-policy mask. The machine may be shared: the parent alternates configurations and
reports the best of the repeats; compare ratios from the same run. On CUDA the reference is the
same module moved to the GPU (PyTorch's default cuDNN settings), timings wait for the GPU to
finish, and the memory column is the GPU's peak allocation (`torch.cuda.max_memory_allocated`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PHOTO_CANDIDATES = [Path("/usr/share/backgrounds/mate/nature/GreenMeadow.jpg"),
                    Path("/usr/share/backgrounds/mate/nature/LadyBird.jpg")]


def natural_image(size: int) -> np.ndarray:
    """A size x size RGB float32 photo in 0..1 (Debian wallpaper or scikit-image's astronaut)."""
    from PIL import Image
    for path in PHOTO_CANDIDATES:
        if path.exists():
            picture = Image.open(path).convert("RGB")
            break
    else:
        try:
            from skimage import data
        except ImportError:
            raise SystemExit("no natural photo found: install mate-backgrounds or scikit-image") from None
        picture = Image.fromarray(data.astronaut())
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    picture = picture.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    return np.asarray(picture, dtype=np.float32) / 255.0


def real_mask(size: int, seed: int = 3) -> np.ndarray:
    """A thick evaluation-policy mask (the paper's 512 px policy scaled to `size`)."""
    from lama_training.masks.generators import MaskGenerator
    from lama_training.masks.policies import MASK_POLICIES
    mask = MaskGenerator(MASK_POLICIES["thick-512"], seed=seed)(512, 512)
    if size != 512:
        from PIL import Image
        mask = np.asarray(Image.fromarray((mask * 255).astype(np.uint8)).resize((size, size), Image.NEAREST)) / 255.0
    return (mask > 0.5).astype(np.float32)


def build_generator(preset: str, seed: int = 0):
    """The preset with seeded random weights and randomised batch-norm statistics, eval mode."""
    import torch
    from lama_training.modules.generators import make_generator
    torch.manual_seed(seed)
    generator = make_generator(preset).eval().requires_grad_(False)
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1.0, 0.1)
                module.bias.normal_(0.0, 0.1)
        calibrate_output_range(generator)
    return generator


def calibrate_output_range(generator, size: int = 128) -> None:
    """Rescale the last convolution so the pre-sigmoid output has mean 0 and std 1.5 per channel.

    Random weights otherwise give an output of about 0.5 +- 0.02, on which any precision looks
    perfect; a prediction spread over 0.1..0.9 like a real image makes the bf16 PSNR meaningful.
    """
    import torch
    layers = list(generator.model)
    last = max(i for i, layer in enumerate(layers) if isinstance(layer, torch.nn.Conv2d))
    logits = torch.nn.Sequential(*layers[:last + 1])(network_input(size))
    mean, std = logits.mean(dim=(0, 2, 3)), logits.std(dim=(0, 2, 3))
    conv = layers[last]
    factor = 1.5 / std
    conv.weight.mul_(factor.view(-1, 1, 1, 1))
    conv.bias.copy_((conv.bias - mean) * factor)


def network_input(size: int):
    import torch
    image = torch.from_numpy(natural_image(size)).permute(2, 0, 1)[None]
    mask = torch.from_numpy(real_mask(size))[None, None]
    return torch.cat([image * (1 - mask), mask], dim=1)


def peak_rss_bytes() -> int:
    import resource
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return int(torch.cuda.max_memory_allocated())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def worker(args: argparse.Namespace) -> None:
    """One configuration in this process: time `repeat` passes, save the output, print JSON."""
    import torch
    from lama_backend.acceleration import FastGenerator
    from lama_backend.acceleration.allocator import reuse_freed_memory
    from lama_backend.acceleration.runtime import configure_cpu_threads
    configure_cpu_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cpu" and (args.config != "reference" or args.tune_reference_allocator):
        reuse_freed_memory()  # as the backend does for its CPU model
    if args.tf32 == "off":  # strict fp32 on CUDA for both paths (PyTorch's default lets cuDNN use TF32)
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    generator = build_generator(args.preset)
    x = network_input(args.size)
    if device.type == "cuda":
        generator, x = generator.to(device), x.to(device)

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    if args.config == "tiled-check":
        fast = FastGenerator(generator, device=device)
        untiled, tiled = fast(x), fast(x, tile=16)
        print(json.dumps({"max_abs_diff": float((untiled - tiled).abs().max()), "peak_rss": peak_rss_bytes()}))
        return
    if args.config == "refine":
        print(json.dumps(refine_measurement(generator, x.cpu(), args, device)))
        return
    if args.config == "reference":
        def run():
            with torch.no_grad():
                return generator(x)
    else:
        precision = args.config.split("-", 1)[1]
        if device.type == "cuda":
            from lama_backend.acceleration.runtime import configure_cuda
            configure_cuda(precision)  # as the backend does
        fast = FastGenerator(generator, device=device, precision=precision)
        del generator  # the fast path keeps only folded, packed copies of the weights
        from lama_backend.acceleration.memory import parse_memory_size
        budget = parse_memory_size(args.max_memory) if args.max_memory else None
        tile = fast.choose_tile(1, args.size, args.size, budget)  # as the backend chooses it

        def run():
            return fast(x, tile=tile)
    walls, cpus = [], []
    output = None
    first_pass_peak = None
    for index in range(args.warmup + args.repeat):
        if device.type == "cuda" and index == args.warmup:
            # the memory column is a steady pass: cuDNN's one-off autotuning workspaces are reported apart
            first_pass_peak = torch.cuda.max_memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
        synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        output = run()
        synchronize()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if index >= args.warmup:
            walls.append(wall)
            cpus.append(cpu)
    np.save(args.output, output.float().cpu().numpy()[0])
    result = {"wall": min(walls), "cpu": min(cpus), "peak_rss": peak_rss_bytes(), "first_pass_peak": first_pass_peak}
    if args.config != "reference":
        result["tile"] = tile
    print(json.dumps(result))


def wide_hole(size: int) -> np.ndarray:
    """A wide hole: the thick-policy mask plus a central box of 40% of the side."""
    mask = real_mask(size)
    low, high = int(size * 0.3), int(size * 0.7)
    mask[low:high, low:high] = 1
    return mask


def refine_measurement(generator, x, args: argparse.Namespace, device=None) -> dict:
    """Plain pass vs refinement at full size: known-pixel L1, change in the hole, time."""
    import torch
    from lama_backend.acceleration import FastGenerator
    from lama_backend.refinement import RefineConfig, Refiner
    device = device if device is not None else torch.device("cpu")
    mask = torch.from_numpy(wide_hole(args.size))[None, None].to(device)
    image = torch.from_numpy(natural_image(args.size)).permute(2, 0, 1)[None].to(device)
    fast = FastGenerator(generator, device=device)
    wall = time.perf_counter()
    plain = fast(torch.cat([image * (1 - mask), mask], dim=1))
    plain_wall = time.perf_counter() - wall
    steps = []
    wall = time.perf_counter()
    config = RefineConfig(n_iters=args.refine_iters)
    refined = Refiner(generator, config, encode=fast.encode).refine(
        image, mask, progress=lambda fraction, stage: steps.append(stage))
    refine_wall = time.perf_counter() - wall
    known = (mask < 0.5).expand(-1, 3, -1, -1)
    hole = ~known
    return {"plain_known_l1": float((plain[known] - image[known]).abs().mean()),
            "refined_known_l1": float((refined[known] - image[known]).abs().mean()),
            "hole_mean_change": float((refined[hole] - plain[hole]).abs().mean()),
            "hole_fraction": float(mask.mean()), "plain_wall": plain_wall, "refine_wall": refine_wall,
            "steps": len(steps), "last_stage": steps[-1], "peak_rss": peak_rss_bytes()}


def run_worker(config: str, size: int, output: Path, args: argparse.Namespace, max_memory: str | None = None) -> dict:
    command = [sys.executable, __file__, "--worker", config, "--size", str(size), "--output", str(output),
               "--preset", args.preset, "--warmup", str(args.warmup if size <= 1024 or args.device != "cpu" else 0),
               "--repeat", str(args.repeat if size <= 1024 or args.device != "cpu" else 1),
               "--device", args.device, "--tf32", args.tf32]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.tune_reference_allocator:
        command += ["--tune-reference-allocator"]
    env = dict(os.environ)
    if config != "reference" or args.tune_reference_openmp:
        from lama_backend.openmp_env import shorten_openmp_spin
        shorten_openmp_spin(env)  # as `lama-backend` does for itself, before torch loads
    if config == "refine":
        command += ["--refine-iters", str(args.refine_iters)]
    if max_memory:
        command += ["--worker-max-memory", max_memory]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{config} at {size} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def gib(value: int) -> str:
    return f"{value / 2**30:.2f} GiB"


def check_sizes(parser: argparse.ArgumentParser, sizes: list[int]) -> None:
    """Exit with a usage error unless every size is a positive multiple of 8: big-lama halves the
    image three times, and on other sizes the eager pass returns a larger image (500 -> 504)."""
    bad = [size for size in sizes if size < 8 or size % 8]
    if bad:
        parser.error(f"sizes must be positive multiples of 8, got {', '.join(map(str, bad))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--preset", default="big-lama")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the memory column is then GPU memory)")
    parser.add_argument("--tf32", choices=["default", "off"], default="default",
                        help="CUDA: 'off' disables TF32 in cuDNN and matmuls for both paths (strict fp32)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating rounds over the configurations at sizes <= 1024 (best round counts)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: every usable core)")
    parser.add_argument("--tiled", type=int, default=None, help="also run the fast path at this size under --max-memory")
    parser.add_argument("--max-memory", default="4G")
    parser.add_argument("--tune-reference-allocator", action="store_true",
                        help="give the reference the fast path's glibc allocator setting too "
                             "(lama_backend.acceleration.allocator), to see how much of the ratio it makes")
    parser.add_argument("--tune-reference-openmp", action="store_true",
                        help="give the reference the backend's shorter OpenMP spin too (lama_backend.openmp_env)")
    parser.add_argument("--refine", type=int, default=None, metavar="SIZE",
                        help="measure refinement at SIZE x SIZE with a wide hole (runs only this)")
    parser.add_argument("--refine-iters", type=int, default=15, help="Adam steps per refined scale")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--worker-max-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    check_sizes(parser, args.sizes + [size for size in (args.tiled, args.refine) if size is not None])
    if args.worker:
        args.config = args.worker
        args.max_memory = args.worker_max_memory
        worker(args)
        return
    import torch
    from lama_backend.acceleration.runtime import cpu_bf16_support
    print(f"# {args.preset}, torch {torch.__version__}, {os.cpu_count()} CPUs ({cpu_model()}), "
          f"load average {os.getloadavg()[0]:.1f} at start")
    if args.device == "cpu":
        print("# allocator: the fast path keeps freed blocks up to 32 MiB for reuse (glibc); the reference "
              + ("does too (--tune-reference-allocator)" if args.tune_reference_allocator else "runs with the defaults"))
        print("# OpenMP: the fast path spins GOMP_SPINCOUNT=10000 as lama-backend sets it; the reference "
              + ("does too (--tune-reference-openmp)" if args.tune_reference_openmp else "runs with the defaults")
              + (f" (GOMP_SPINCOUNT={os.environ['GOMP_SPINCOUNT']} set by you applies to both)"
                 if "GOMP_SPINCOUNT" in os.environ else ""))
    if args.device != "cpu":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: PyTorch sees no CUDA GPU")
        print(f"# device {torch.cuda.get_device_name(torch.device(args.device))}, CUDA {torch.version.cuda}, "
              f"cuDNN {torch.backends.cudnn.version()}, TF32 {args.tf32}; memory column = peak GPU allocation "
              f"of a steady pass (first pass with cuDNN autotuning in brackets)")
    elif "fp16" in args.precisions:
        raise SystemExit("fp16 is for CUDA only (use --device cuda)")
    if args.device == "cpu":
        from lama_backend.acceleration.kernels import nnpack_usable
        from lama_backend.acceleration.winograd import native_transforms
        transforms = ("compiled transforms (native.py)" if native_transforms() is not None
                      else "torch products for the transforms (no compiled ones: no C compiler, or LAMA_NATIVE_KERNELS=0)")
        print("# fast-fp32: the blocks' 3x3 convolutions run as Winograd F(4x4, 3x3) products with " + transforms
              + "; the decoder's last one "
              + ("through NNPACK" if nnpack_usable() else "on oneDNN (this torch has no working NNPACK)"))
    native = cpu_bf16_support()
    if args.device == "cpu" and "bf16" in args.precisions and native is None:
        print("# this CPU has no native bf16 (no AVX512-BF16, no AMX): the fast-bf16 row is emulated and "
              "slow; `lama-backend --precision bf16` refuses such CPUs")
    with tempfile.TemporaryDirectory() as folder:
        if args.refine:
            r = run_worker("refine", args.refine, Path(folder) / "unused.npy", args)
            print(f"\n## refinement at {args.refine}x{args.refine}, hole {r['hole_fraction']:.0%} of the image, "
                  f"{args.refine_iters} steps per scale ({r['last_stage']})")
            print(f"plain pass {r['plain_wall']:.1f} s, refinement {r['refine_wall']:.1f} s, "
                  f"peak RSS {gib(r['peak_rss'])}")
            print(f"L1 on known pixels: plain {r['plain_known_l1']:.4f}, refined {r['refined_known_l1']:.4f}; "
                  f"mean change inside the hole {r['hole_mean_change']:.4f}")
            return
        for size in args.sizes:
            configs = ["reference"] + [f"fast-{p}" for p in args.precisions]
            results: dict[str, dict] = {}
            for _ in range(args.rounds if size <= 1024 else 1):  # alternate, keep each one's best round
                for c in configs:
                    r = run_worker(c, size, Path(folder) / f"{c}-{size}.npy", args)
                    if c not in results or r["wall"] < results[c]["wall"]:
                        results[c] = r
            outputs = {c: np.load(Path(folder) / f"{c}-{size}.npy") for c in configs}
            ref = results["reference"]
            print(f"\n## {size}x{size}")
            memory_label = "peak RSS" if args.device == "cpu" else "peak GPU"
            print(f"{'path':<12}{'wall s':>9}{'cpu s':>9}{memory_label:>12}{'speed-up':>10}  quality")
            for config in configs:
                r = results[config]
                if config == "reference":
                    quality = ""
                elif config == "fast-fp32":
                    quality = f"max |diff| vs reference {np.abs(outputs[config] - outputs['reference']).max():.2e}"
                else:
                    base = outputs.get("fast-fp32", outputs["reference"])
                    quality = f"PSNR vs fp32 {psnr(outputs[config], base):.1f} dB"
                first = f" [{gib(r['first_pass_peak'])}]" if r.get("first_pass_peak") else ""
                print(f"{config:<12}{r['wall']:>9.4f}{r['cpu']:>9.2f}{gib(r['peak_rss']):>12}"
                      f"{ref['wall'] / r['wall']:>9.2f}x  {quality}{first}")
        if args.tiled:
            size = args.tiled
            r = run_worker("fast-fp32", size, Path(folder) / "tiled.npy", argparse.Namespace(**{**vars(args), "tiled": size}),
                           max_memory=args.max_memory)
            print(f"\n## {size}x{size} fast fp32 under --max-memory {args.max_memory}: tile {r['tile']} cells, "
                  f"{r['wall']:.1f} s wall, {r['cpu']:.1f} s cpu, peak RSS {gib(r['peak_rss'])}")
            check = run_worker("tiled-check", 1024, Path(folder) / "unused.npy", args)
            print(f"tiled (16-cell = 128 px tiles) vs untiled at 1024x1024: max |diff| {check['max_abs_diff']:.2e}")


if __name__ == "__main__":
    main()
