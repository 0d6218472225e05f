"""Weights: loading every supported file kind, our own format, discovery and fetching.

One module per job: `format` (our safetensors + metadata), `checkpoint` (official Lightning
`best.ckpt`, loaded without running pickled code), `torchscript` (`big-lama.pt`), `loader`
(`load_model`), `discovery` (where weights are looked for), `registry` (known downloadable files)
and `fetch` (download, verify, unpack).
"""
from .discovery import cache_dir, discover_weights
from .errors import WeightsError
from .format import FORMAT_VERSION, read_metadata, save_weights
from .loader import load_model

__all__ = ["FORMAT_VERSION", "WeightsError", "cache_dir", "discover_weights", "load_model", "read_metadata",
           "save_weights"]
