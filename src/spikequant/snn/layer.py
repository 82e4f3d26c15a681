"""Containers and layers for multi-step ([T, B, ...]) networks.

Stateless layers (conv, batch norm, pooling, flatten, linear) do the same thing at every time
step, so `SpikingSequential` runs them once on the time-folded tensor [T*B, ...]: one call per
forward instead of T, which is faster and means a layer's weight (and its quantizer) is
evaluated once per forward. Modules that need the time axis (neurons, time-shared dropout)
subclass `MultiStepModule` and get [T, B, ...].
"""

from __future__ import annotations

import torch
from torch import nn


class MultiStepModule(nn.Module):
    """Marker base: `forward` takes and returns [T, B, ...] tensors."""


class TimeSharedDropout(MultiStepModule):
    """Dropout whose mask is drawn once per sample and shared by all time steps (as in
    Fang et al. 2021 and SpikingJelly's multi-step Dropout), so a dropped unit stays silent for
    the whole sequence instead of flickering between steps.

    Args:
        p: the probability that a unit is dropped, in [0, 1) (a ValueError otherwise); kept
            units are scaled by 1 / (1 - p) in training. In eval mode, or with p = 0, the
            input passes unchanged. Default 0.5.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x_seq
        keep = 1.0 - self.p
        mask = torch.empty_like(x_seq[0]).bernoulli_(keep).div_(keep)
        return x_seq * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class SpikingSequential(nn.Sequential):
    """nn.Sequential over [T, B, ...] input: `MultiStepModule`s get [T, B, ...], every other
    module gets the time-folded [T*B, ...] view. Returns [T, B, ...]."""

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if x_seq.dim() < 2:
            raise ValueError(
                f"SpikingSequential takes [T, B, ...] input (time first), got shape "
                f"{tuple(x_seq.shape)}"
            )
        steps, batch = x_seq.shape[:2]
        h, folded = x_seq, False
        for module in self:
            wants_time = isinstance(module, MultiStepModule)
            if wants_time and folded:
                h, folded = h.unflatten(0, (steps, batch)), False
            elif not wants_time and not folded:
                h, folded = h.flatten(0, 1), True
            h = module(h)
        return h.unflatten(0, (steps, batch)) if folded else h


class TimeFolded(MultiStepModule):
    """Wraps a single-step module so that it runs once on [T*B, ...] and returns [T, B, ...].

    Args:
        module: the single-step module (e.g. an nn.Conv2d), kept as `self.module`; it gets the
            [T*B, ...] input and its output's first dimension is split back into [T, B].
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        out = self.module(x_seq.flatten(0, 1))
        return out.unflatten(0, x_seq.shape[:2])


class MaxPool2x2(nn.MaxPool2d):
    """nn.MaxPool2d(2, 2) whose inference is the maximum of the window's four strided views.

    torch's CPU max pooling of an NCHW tensor also computes the argmax indices that only the
    backward needs; without autograd the same maxima come from three elementwise maxima, about
    5x faster on the CPU (a third of an evaluation of the study's networks went to pooling).
    With autograd it is nn.MaxPool2d itself (the gradient goes to the first maximum of each
    window, as before)."""

    def __init__(self) -> None:
        super().__init__(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() and x.requires_grad) or x.dim() != 4:
            return super().forward(x)
        h, w = x.shape[-2] // 2 * 2, x.shape[-1] // 2 * 2  # floor mode: drop an odd edge
        top, bottom = x[..., 0:h:2, :w], x[..., 1:h:2, :w]
        rows = torch.maximum(top, bottom)
        return torch.maximum(rows[..., 0::2], rows[..., 1::2])
