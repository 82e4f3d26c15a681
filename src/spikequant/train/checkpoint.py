"""Checkpoints: written atomically, self-describing enough to rebuild the network.

A checkpoint is a dict saved with torch.save:
    version        int, CHECKPOINT_VERSION
    model_config   dict such that spikequant.models.build(**model_config) rebuilds the network
    model          the network's state_dict
    run            the run's settings (dataset, time_steps, data_dir, quantizer, bits, seed, ...)
    epoch          number of finished epochs
    optimizer, lr_scheduler, temperature, rng, best_accuracy, history   (for --resume)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._atomic import atomic_write

CHECKPOINT_VERSION = 1


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save that never leaves a half-written checkpoint behind."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by `spikequant train`, with a clear error for anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path} (train writes DIR/last.pt and DIR/best.pt)"
        )
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(
            f"{path} is not a readable checkpoint ({err}); is the file truncated?"
        ) from err
    if not isinstance(ckpt, dict) or "model_config" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not a spikequant checkpoint (no model_config/model entries)")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} was written by a newer spikequant (checkpoint version {ckpt['version']}); "
            "upgrade spikequant to read it"
        )
    return ckpt


def model_from_checkpoint(ckpt: dict | str | os.PathLike, device: str = "cpu") -> nn.Module:
    """Rebuild the network of a checkpoint (a loaded dict or a path) in eval mode."""
    from ..models import build
    from ..quant import state_dict_follows

    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    with state_dict_follows():  # the state dict sets every quantizer's scales
        model = build(**ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()
