"""Training and evaluation: the loop, its settings, checkpoints, run files, distributed runs."""

from .checkpoint import load_checkpoint, model_from_checkpoint
from .config import TrainConfig
from .evaluation import evaluate
from .trainer import fit

__all__ = ["TrainConfig", "evaluate", "fit", "load_checkpoint", "model_from_checkpoint"]
