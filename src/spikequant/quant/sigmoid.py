"""The differentiable quantization function: a weighted sum of sigmoids (Quantization Networks,
Yang et al. 2019; used for SNNs by Shymyrbay et al. 2023).

    Q(w) = alpha * ( sum_i s_i * sigmoid(T * (beta * w - b_i)) - o )

with step heights s_i = q_i - q_{i-1}, offset o = -q_0, step positions b_i. In eval mode the
sigmoids are unit steps, so every weight is exactly alpha * q_j.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import nn

from ..options import Option
from .base import QuantizedWeight, WeightQuantizer, channel_view, reduce_per_channel
from .schedule import KIND_CAP, KINDS, TemperatureSchedule, check_temperature
from .sigmoid_backends import SigmoidArgs, sigmoid_quantize

KMEANS_SAMPLE = 200_000
KMEANS_ITERS = 30
# How the backward pass differentiates the sigmoids: "exact" is the derivative of the function
# the forward pass used (temperature T); "reference" is Quantization Networks' choice, the
# derivative of the T = 1 sigmoid scaled by T, which keeps a gradient for weights far from a
# step once T is large.
GRADIENTS = ("exact", "reference")
Gradient = Literal["exact", "reference"]
BOUNDARIES = ("kmeans", "midpoints")
Boundaries = Literal["kmeans", "midpoints"]


def kmeans_boundaries(
    values: torch.Tensor, num_clusters: int, init: torch.Tensor
) -> torch.Tensor | None:
    """Boundaries between neighbouring clusters of 1-D k-means (Lloyd, centres seeded at `init`).

    Returns None where a cluster ends up empty (constant tensors, fewer distinct values than
    clusters): the caller then falls back to the level midpoints."""
    v = values.detach().flatten().float()
    if v.numel() > KMEANS_SAMPLE:
        gen = torch.Generator().manual_seed(0)
        v = v[torch.randperm(v.numel(), generator=gen)[:KMEANS_SAMPLE].to(v.device)]
    centres = init.detach().float().to(v.device)
    for _ in range(KMEANS_ITERS):
        assign = torch.bucketize(v, (centres[1:] + centres[:-1]) / 2)
        counts = torch.bincount(assign, minlength=num_clusters).float()
        sums = torch.zeros(num_clusters, device=v.device).index_add_(0, assign, v)
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centres).sort().values
        if torch.allclose(new, centres):
            break
        centres = new
    mids = (centres[1:] + centres[:-1]) / 2
    counts = torch.bincount(torch.bucketize(v, mids), minlength=num_clusters)
    if (mids[1:] - mids[:-1] <= 0).any() or (counts == 0).any():
        return None
    return mids


class SigmoidQuantizer(WeightQuantizer):
    """Differentiable weight quantizer with learned input scale beta and output scale alpha.

    Args:
        levels: sorted level set q_0 < ... < q_n.
        temperature: initial T (a TemperatureSchedule usually sets it each epoch).
        boundaries: "kmeans" (cluster boundaries of beta*w) or "midpoints" (between levels).
        per_channel: one alpha/beta per output channel instead of per tensor.
        learn_scales: learn alpha and beta (True, as the study) or keep them fixed.
        gradient: "exact" (the derivative of the sigmoids at T) or "reference" (Quantization
            Networks' code: the T = 1 sigmoid's derivative scaled by T, so weights far from a
            step keep learning once T is large).
    """

    name = "sigmoid"
    summary = "the study's differentiable function"
    weight_shaped = ("alpha", "beta")
    training_options = {option.name: option for option in (
        Option("temperature_schedule",
               Literal[KINDS],
               "geometric",
               "how T rises over training. geometric: from t0 to t_max by a constant factor, "
               "reaching t_max after t_ramp of the run, whatever the number of epochs; "
               "reference: Quantization Networks' T = 10 * (epoch + 1) capped at 2000; "
               "linear: T = t0 * (epoch + 1); exponential: T = t0 * t_growth ** epoch; "
               "cosine: t0 to t_max along half a cosine; constant: T = t0"),
        Option("t0", float | None, None,
               "first temperature (None: the schedule's own, 1; 10 for reference)"),
        Option("t_max", float | None, None,
               "temperature cap (None: the schedule's own, 1000; 2000 for reference)"),
        Option("t_growth", float, 1.5, "exponential: the factor T grows by each epoch"),
        Option("t_ramp", float, 0.8,
               "geometric: share of the run, in (0, 1], over which T rises to t_max"),
        Option("temperature_per_step", bool, True,
               "raise T every training step (fractional epochs) instead of once an epoch"),
    )}

    def __init__(
        self,
        levels: torch.Tensor,
        temperature: float = 1.0,
        boundaries: Boundaries = "kmeans",
        per_channel: bool = False,
        learn_scales: bool = True,
        gradient: Gradient = "reference",
    ) -> None:
        super().__init__(levels, per_channel)
        if boundaries not in BOUNDARIES:
            raise ValueError(f"boundaries must be 'kmeans' or 'midpoints', got {boundaries!r}")
        if gradient not in GRADIENTS:
            raise ValueError(f"gradient must be one of {', '.join(GRADIENTS)}, got {gradient!r}")
        temperature = check_temperature(temperature)
        self.gradient = gradient
        self.boundary_mode = boundaries
        self.register_buffer("heights", self.levels[1:] - self.levels[:-1])
        self.register_buffer("positions", (self.levels[1:] + self.levels[:-1]) / 2)
        self.register_buffer("temperature", torch.tensor(temperature))
        self.alpha = nn.Parameter(torch.ones(()), requires_grad=learn_scales)
        self.beta = nn.Parameter(torch.ones(()), requires_grad=learn_scales)

    @classmethod
    def training_schedule(cls, options: Mapping[str, Any], total_epochs: int
                          ) -> TemperatureSchedule:
        """The temperature schedule of the training options `options` (resolved: every
        training option present) over `total_epochs`."""
        return TemperatureSchedule(
            options["temperature_schedule"],
            t0=options["t0"],
            t_max=KIND_CAP if options["t_max"] is None else options["t_max"],
            growth=options["t_growth"],
            total_epochs=total_epochs,
            per_step=options["temperature_per_step"],
            ramp=options["t_ramp"],
        )

    def set_temperature(self, temperature: float) -> None:
        self.temperature.fill_(check_temperature(temperature))

    def init_from_weight(self, weight: torch.Tensor) -> None:
        wmax = reduce_per_channel(weight, lambda t, dim: t.abs().amax(dim=dim), self.per_channel)
        wmax = torch.where(wmax > 0, wmax, torch.ones_like(wmax))  # all-zero weights
        beta = (1.25 * self.level_absmax / wmax).float()
        if self.per_channel:
            beta = beta.flatten()  # one scale per output channel, whatever the layer's rank
        self.beta = nn.Parameter(beta, requires_grad=self.alpha.requires_grad)
        self.alpha = nn.Parameter(1.0 / beta, requires_grad=self.alpha.requires_grad)
        positions = (self.levels[1:] + self.levels[:-1]) / 2
        if self.boundary_mode == "kmeans":
            scaled = weight.float() * (channel_view(beta, weight) if self.per_channel else beta)
            found = kmeans_boundaries(scaled, self.levels.numel(), self.levels)
            if found is not None:
                positions = found
        self.positions.copy_(positions.to(self.positions.device))

    def _scales(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.alpha.dim() == 0:
            return self.alpha, self.beta
        return channel_view(self.alpha, weight), channel_view(self.beta, weight)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.hard(weight)
        # Triton on CUDA, a compiled kernel on the CPU, else torch ops (sigmoid_backends.py)
        return sigmoid_quantize(weight, self.sigmoid_args())

    def sigmoid_args(self) -> SigmoidArgs:
        """The arguments of the training-mode function beside the weight."""
        return SigmoidArgs(self.alpha, self.beta, self.positions, self.heights,
                           self.temperature, self.levels[0], self.gradient == "reference")

    def soft(self, weight: torch.Tensor) -> torch.Tensor:
        """The training-mode (sigmoid) output regardless of mode."""
        was = self.training
        self.train(True)
        try:
            return self.forward(weight)
        finally:
            self.train(was)

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        alpha, beta = self._scales(weight)
        x = (beta * weight).detach()
        codes = torch.bucketize(x, self.positions.to(x.dtype), right=True)
        return QuantizedWeight(codes=codes, levels=self.levels, scale=alpha.detach().float())

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, temperature={float(self.temperature):g}, "
            f"boundaries={self.boundary_mode!r}, gradient={self.gradient!r}"
        )
