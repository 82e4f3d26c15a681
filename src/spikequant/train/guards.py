"""Checks around a training run: everything that can be refused before data is read
(settings, device, memory, run folder), and finite parameters after every epoch, so a run
that diverged stops with a message instead of saving NaN weights and exiting 0."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import TrainingDiverged
from .runfolder import RunClaim, claim_run_folder


def prepare_run(cfg: Any) -> RunClaim:
    """Validate `cfg`, check the machine can hold one batch, then claim the run folder; all
    before a dataset is opened or a network built."""
    from ..data import dataset_info
    from .resources import check_memory

    cfg.validate()
    info = dataset_info(cfg.dataset)
    time_steps = info.time_steps(cfg.time_steps)
    overrides = dict(cfg.model_overrides)
    check_memory(cfg.model or cfg.dataset, overrides, info.frame_shape, time_steps,
                 cfg.batch_size, cfg.device, training=True)
    return claim_run_folder(cfg, time_steps)


def check_finite(model: nn.Module, epoch: int) -> None:
    """TrainingDiverged naming the first parameters or buffers that are NaN or infinite."""
    bad = [name for name, t in (*model.named_parameters(), *model.named_buffers())
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise TrainingDiverged(
            f"training diverged in epoch {epoch}: {', '.join(bad[:4])} "
            f"{'is' if len(bad) == 1 else 'are'} no longer finite (NaN or inf); nothing of "
            "this epoch was saved (last.pt holds the epoch before). Lower --lr (or --t-max) and "
            "train again in a new --out folder"
        )
