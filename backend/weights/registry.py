"""The weights files `lama-backend fetch` knows: where they are published and how to check them.

Each entry has a slot for a pinned SHA-256. It stays None until someone has measured the
published file; `fetch` prints the SHA-256 it computed so the value can be pinned here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownWeights:
    """One downloadable weights file and what `fetch` does with it."""

    name: str                 # what the user types: `lama-backend fetch <name>`
    url: str                  # published location
    filename: str             # name of the downloaded file in the cache dir
    installed: str            # what `load_model` is pointed at afterwards, relative to the cache dir
    archive: bool             # a zip to verify by structure + generator keys and unpack
    description: str
    approx_size_mb: int
    md5: str | None = None    # published checksum, when the publisher gives one
    sha256: str | None = None  # pinned checksum slot
    required_members: tuple[str, ...] = ()  # archive paths that must be present


REGISTRY: dict[str, KnownWeights] = {
    entry.name: entry for entry in (
        KnownWeights(
            name="big-lama",
            url="https://huggingface.co/smartywu/big-lama/resolve/main/big-lama.zip",
            filename="big-lama.zip",
            installed="big-lama",
            archive=True,
            description="official Big LaMa training checkpoint (best.ckpt + config.yaml)",
            approx_size_mb=410,
            required_members=("big-lama/config.yaml", "big-lama/models/best.ckpt"),
        ),
        KnownWeights(
            name="big-lama-torchscript",
            url="https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt",
            filename="big-lama.pt",
            installed="big-lama.pt",
            archive=False,
            description="Big LaMa as TorchScript, the file IOPaint / lama-cleaner cache",
            approx_size_mb=196,
            md5="e3aa4aaa15225a33ec84f9f4bc47e500",
        ),
    )
}
