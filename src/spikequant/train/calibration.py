"""Making the evaluated network the one that was trained, and measuring how far apart they are.

Training runs the quantizers' soft (training-mode) weights; evaluation, checkpoints and export
use the hard ones. Batch norm's running statistics, gathered during training, describe the soft
network: `recalibrate_batch_norm` re-estimates them with the hard weights. `soft_hard_gap`
measures the share of weights whose soft value is still away from the hard one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ..quant import float_weight, quantized_layers
from .evaluation import forward_batches

# A weight counts as "not yet hard" when its soft value is more than this share of its
# layer's scale away from its hard value.
GAP_TOLERANCE = 0.01


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, batches: Iterable,
                           device: str | torch.device = "cpu", amp: bool = False,
                           on_batch: Callable[[torch.Tensor, Any], None] | None = None) -> int:
    """Replace every batch norm's running mean and variance with their average over `batches`
    (frames [B, T, ...], labels), computed with the network as it is evaluated: hard weights,
    no dropout. Returns the number of samples seen (0: the model has no batch norm).

    on_batch(scores, labels), if given, sees each batch's class scores from the same pass
    (hard weights, each batch normalised by its own statistics), so an accuracy on `batches`
    costs no second pass."""
    norms = batch_norms(model)
    if not norms:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches, not an EMA
        m.train()
    seen = 0
    try:
        for scores, labels, size in forward_batches(model, batches, device, amp):
            seen += size
            if on_batch is not None:
                on_batch(scores, labels)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was_training)
    return seen


@torch.no_grad()
def soft_hard_gap(model: nn.Module, tolerance: float = GAP_TOLERANCE) -> float | None:
    """Share of the quantized weights whose training-mode value lies more than `tolerance`
    times the layer's scale away from their eval-mode (hard) value: 0 once training sees the
    network that is exported. None for a model without quantized layers."""
    far, total = 0, 0
    for _, layer, quantizer in quantized_layers(model):
        weight = float_weight(layer)
        was_training = quantizer.training
        try:
            quantizer.train(True)
            soft = quantizer(weight)
            quantizer.train(False)
            hard = quantizer(weight)
        finally:
            quantizer.train(was_training)
        scale = quantizer.quantize(weight).scale.abs().to(weight.dtype)
        far += int(((soft - hard).abs() > tolerance * scale).sum())
        total += weight.numel()
    return far / total if total else None
