"""The training loop, its config, checkpoints and distributed setup (see `loop.train`)."""
from .config import ConfigError, DataConfig, TrainConfig, TrainerConfig, load_config, preset_names
from .loop import TrainResult, train

__all__ = ["ConfigError", "DataConfig", "TrainConfig", "TrainResult", "TrainerConfig", "load_config", "preset_names",
           "train"]
