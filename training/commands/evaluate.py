"""`lama-train evaluate`: in-hole PSNR / SSIM / L1 of a model against Telea and its untrained twin.

The model is scored twice: the bare network ("model") and the backend's whole pass as a user
gets it ("served": `InpaintEngine` with its default options, i.e. seam matching and the model's
mirror averaging), so the report separates what the network does from what the product does.

The evaluation set is read from `--eval-set` when that folder holds one, else built there (or in a
temporary folder) from `--images` with the same recipe and options as `make-eval-set`, so a
report names everything needed to rebuild its set.
"""
from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from ..utils.cli import CommandError

LOG = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a model against OpenCV Telea and the untrained network",
        description="Inpaint a fixed evaluation set (thin/medium/thick masks) with the model (the bare "
                    "network, and as lama-backend serves it), OpenCV's "
                    "Telea method and a randomly initialised network of the model's config, and report "
                    "PSNR, SSIM and L1 inside the hole per mask policy: a table on stdout and a JSON file.")
    parser.add_argument("--weights", type=Path, required=True,
                        help="weights to score (our .safetensors, official best.ckpt or big-lama.pt)")
    parser.add_argument("--images", type=Path, help="folder of held-out images to build the evaluation set from")
    parser.add_argument("--eval-set", type=Path,
                        help="evaluation set folder: read when it holds index.json, else written there "
                             "from --images (default: a temporary folder)")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON report goes")
    parser.add_argument("--size", type=int, default=256, help="crop size when building the set (default 256)")
    parser.add_argument("--policy", default="thin,medium,thick",
                        help="mask policies when building the set (default: thin,medium,thick)")
    parser.add_argument("--count", type=int, default=100, help="items per policy when building (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the set when building (default 0)")
    parser.add_argument("--max-coverage", type=float, default=0.5,
                        help="largest hole fraction when building (default 0.5)")
    parser.add_argument("--untrained-seed", type=int, default=0,
                        help="seed of the untrained baseline's initialisation (default 0)")
    parser.add_argument("--batch-size", type=int, default=8, help="crops per forward pass (default 8)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda[:N], mps or auto")
    parser.add_argument("--before-after", type=Path, metavar="PNG",
                        help="also write a picture: input with the hole tinted, Telea, the bare model, the "
                             "model as served and the original, for the --item-th crop of each mask policy")
    parser.add_argument("--item", type=int, default=0,
                        help="which crop of each policy the picture shows (default 0, the first)")
    parser.set_defaults(func=run)


def open_eval_set(args: argparse.Namespace, scratch: Path):
    """The `EvalSet` to score: read from --eval-set, or built from --images (into --eval-set or scratch)."""
    from ..data.images import DataError
    from ..evaluation.eval_set import INDEX_NAME, EvalSet, EvalSetError, make_eval_set

    try:
        if args.eval_set is not None and (args.eval_set / INDEX_NAME).is_file():
            if args.images is not None:
                LOG.info("%s already holds an evaluation set; --images is not used", args.eval_set)
            return EvalSet(args.eval_set)
        if args.images is None:
            where = f"{args.eval_set} holds no evaluation set" if args.eval_set is not None else "no --eval-set given"
            raise CommandError(f"{where}: give --images DIR to build one")
        target = args.eval_set if args.eval_set is not None else scratch / "eval-set"
        make_eval_set(args.images, target, size=args.size, policies=args.policy.split(","), count=args.count,
                      seed=args.seed, max_coverage=args.max_coverage)
        LOG.info("evaluation set written to %s", target)
        return EvalSet(target)
    except (EvalSetError, DataError) as exc:
        raise CommandError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    import json

    from lama_backend.weights import WeightsError, load_model

    from lama_backend.engine import InpaintEngine

    from ..evaluation.report import (EngineAdapter, PredictAdapter, TeleaInpainter, before_after_grid, build_report,
                                     nth_item_per_policy, generator_config_of, untrained_generator)

    if args.batch_size < 1:
        raise CommandError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.seed < 0 or args.untrained_seed < 0:
        raise CommandError("--seed and --untrained-seed must be >= 0")
    if args.out.suffix.lower() != ".json":
        raise CommandError(f"{args.out}: the report is JSON; give a path ending in .json")
    if args.before_after is not None and args.before_after.suffix.lower() != ".png":
        raise CommandError(f"{args.before_after}: the picture is PNG; give a path ending in .png")
    try:
        telea = TeleaInpainter()
    except ImportError as exc:
        raise CommandError(str(exc)) from None
    try:
        model = load_model(args.weights, device=args.device)
    except WeightsError as exc:
        raise CommandError(str(exc)) from None
    if hasattr(model, "set_precision"):
        model.set_precision("fp32")  # scores of the network itself, the same on every machine
    try:
        config = generator_config_of(model)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    untrained = untrained_generator(config, args.untrained_seed).to(model.device)

    with tempfile.TemporaryDirectory(prefix="lama-eval-") as scratch:
        eval_set = open_eval_set(args, Path(scratch))
        try:
            indices = nth_item_per_policy(eval_set, args.item)
        except ValueError as exc:
            raise CommandError(f"--{exc}") from None
        info = {
            "weights": str(args.weights), "model": model.describe(),
            "generator_config": config.to_dict(),
            "eval_set": {"path": str(eval_set.root) if args.eval_set is not None else None,
                         **{key: value for key, value in json.loads((eval_set.root / "index.json").read_text()).items()
                            if key in ("size", "seed", "max_coverage", "count_per_policy", "images")}},
            "baselines": {"telea": {"radius": telea.radius}, "untrained": {"seed": args.untrained_seed}},
        }
        LOG.info("scoring %d crops with the model (bare and as served), Telea and the untrained network",
                 len(eval_set))
        model_method = PredictAdapter(model.predict)
        served = EngineAdapter(InpaintEngine(model))
        report = build_report({"model": model_method, "served": served, "telea": telea, "untrained": untrained},
                              eval_set, batch_size=args.batch_size, device=model.device, info=info)
        if args.before_after is not None:
            columns = {"telea": telea, "model (network)": model_method, "model (served)": served}
            picture = before_after_grid(columns, eval_set, indices, model.device)
            args.before_after.parent.mkdir(parents=True, exist_ok=True)
            picture.save(args.before_after)
    print(report.table())
    path = report.write_json(args.out)
    print(f"report: {path}")
    if args.before_after is not None:
        print(f"picture: {args.before_after}")
    return 0
