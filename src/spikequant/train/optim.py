"""The optimiser of a run: parameter groups, learning-rate schedules, gradient clipping."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..quant import WeightQuantizer
from .config import TrainConfig


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Three groups: weights (decayed), other parameters (batch norm, neuron time constants,
    biases; not decayed) and the quantizers' own scales, with their own learning rate and
    schedule (`scale_lr`, `scale_lr_schedule`), decayed only if asked."""
    quant_params = {
        id(p) for m in model.modules() if isinstance(m, WeightQuantizer) for p in m.parameters()
    }
    weights, others, scales = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in quant_params:
            scales.append(p)
        elif p.dim() > 1 or name.endswith("original"):
            weights.append(p)
        else:
            others.append(p)
    scale_lr = cfg.lr if cfg.scale_lr is None else cfg.scale_lr
    return [
        {"params": weights, "weight_decay": cfg.weight_decay, "name": "weights"},
        {"params": others, "weight_decay": 0.0, "name": "others"},
        {
            "params": scales,
            "weight_decay": cfg.weight_decay if cfg.decay_quantizer_scales else 0.0,
            "lr": scale_lr,
            "name": "quantizer_scales",
        },
    ]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    try:  # one fused kernel for the whole update: several times faster than the loop
        return torch.optim.Adam(groups, lr=cfg.lr, fused=True)
    except RuntimeError:  # devices without a fused Adam
        return torch.optim.Adam(groups, lr=cfg.lr)


class _LRFactor:
    """The factor on a group's initial learning rate after `epoch` epochs. It reads the run's
    length from the config each time, so a run resumed with more epochs stretches its
    schedule to the new length instead of staying at the old end (learning rate 0)."""

    def __init__(self, cfg: TrainConfig, kind: str) -> None:
        self.cfg, self.kind = cfg, kind

    def __call__(self, epoch: int) -> float:
        if self.kind == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(epoch / self.cfg.epochs, 1.0)))


def make_lr_scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    kinds = {"quantizer_scales": cfg.scale_lr_schedule}
    factors = [_LRFactor(cfg, kinds.get(g.get("name"), "cosine")) for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)


def sync_learning_rates(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set every group's learning rate to what the schedule gives for the epoch it is at (after
    loading a checkpoint whose run had another length)."""
    epoch = scheduler.last_epoch
    for group, base, factor in zip(
        scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas
    ):
        group["lr"] = base * factor(epoch)


def lr_scheduler_state(scheduler: torch.optim.lr_scheduler.LambdaLR) -> dict[str, Any]:
    """The scheduler's state without its factor objects (they are rebuilt from the config)."""
    return {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}


def load_lr_scheduler_state(
    scheduler: torch.optim.lr_scheduler.LambdaLR, state: dict[str, Any]
) -> None:
    """Restore a scheduler saved with `lr_scheduler_state`; call `sync_learning_rates` next
    when the run's length may have changed."""
    scheduler.__dict__.update({k: v for k, v in state.items() if k != "lr_lambdas"})


def clip_gradients(model: nn.Module, max_norm: float | None) -> None:
    if max_norm:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
