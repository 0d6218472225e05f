"""lama_training: LaMa networks, masks, losses and the training recipe (one definition of each)."""

__version__ = "0.1.0"
