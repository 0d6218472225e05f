"""`lama-train assemble-data`: build the offline training folder and its manifest."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..offline_data import assemble
from ..utils.cli import CommandError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "assemble-data", help="collect package-shipped photographs into a training folder with a manifest",
        description="Copy the photographs that installed packages ship (Debian mate-backgrounds and "
                    "lomiri-wallpapers-16.04/-20.04, scikit-image, scikit-learn) into OUT/train and OUT/heldout and record source, licence and SHA-256 of "
                    "each file in OUT/manifest.json.")
    parser.add_argument("--out", type=Path, required=True, help="destination folder")
    parser.add_argument("--textures", type=int, default=0,
                        help="also generate N procedural textures (CC0); keep N well below the number of "
                             "photographs: a model trained mostly on them fills holes with their colours")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.textures < 0:
        raise CommandError("--textures must be >= 0")
    try:
        entries = assemble(args.out, textures=args.textures)
    except RuntimeError as exc:
        raise CommandError(str(exc)) from None
    train = sum(entry.split == "train" for entry in entries)
    print(f"{len(entries)} files ({train} train, {len(entries) - train} held out); manifest: {args.out / 'manifest.json'}")
    photos = sum(entry.split == "train" and not entry.source.startswith("generated") for entry in entries)
    if args.textures > photos:
        print(f"warning: {args.textures} generated textures outnumber the {photos} training photographs; the "
              "bundled model, trained on 40 textures and 18 photographs, learnt the textures' colours "
              "(see its MODEL_CARD.md)", file=sys.stderr)
    return 0
