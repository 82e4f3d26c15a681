"""The multi-level (2- to 8-bit) sigmoid quantizer as a compiled CPU kernel
(`csrc/multilevel_sigmoid.c`): the forward pass sums the steps' sigmoids a block of weights at
a time, with no full-size temporary per step; the backward pass makes the weight gradient and
the alpha and beta sums in one pass, and with the reference gradient (the default) takes all
steps' T = 1 sigmoids from a single exp a weight. The torch path (`sigmoid._SoftStaircase` and
tensor ops) makes two full-size passes per step each way. Built and loaded by
`spikequant._cpu_kernels`, called through compiled_sigmoid.py; the torch ops remain the
reference and the fallback.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from .compiled_sigmoid import CompiledSigmoid, run_kernel, sigmoid_kernel

if TYPE_CHECKING:
    from .sigmoid_backends import SigmoidArgs

MAX_STEPS = 255  # 8 bits
# The reference gradient takes its T = 1 sigmoids from exp(-x) * exp(b_i), one exp a weight,
# while every position is within this of 0 (exp(b_i) a normal float, never 0 * inf); wider
# level sets (e.g. 8 bits' -127..127) make one exp a step
FAST_REFERENCE_MAX_POSITION = 60.0

KERNEL = sigmoid_kernel("multilevel_sigmoid.c", "msq")


class _MultilevelSigmoidCPU(CompiledSigmoid):
    """csrc/multilevel_sigmoid.c forward and backward."""


def unavailable_reason() -> str | None:
    """None when the kernel is built and loaded, else why it is not (one line)."""
    return KERNEL.unavailable_reason()


def use_multilevel_cpu(w: torch.Tensor, positions: torch.Tensor) -> bool:
    """Whether the sigmoid quantizer of weight `w` with step `positions` runs on this kernel:
    CPU float32, 2 to 255 steps, kernels not switched to torch ops, and the kernel builds."""
    steps = positions.numel()
    return 1 < steps <= MAX_STEPS and positions.device.type == "cpu" and KERNEL.usable_for(w)


def multilevel_sigmoid_cpu(w: torch.Tensor, args: SigmoidArgs) -> torch.Tensor:
    """The `c-multilevel` backend of sigmoid_backends.py (check
    `use_multilevel_cpu(w, args.positions)` first): what the `torch` backend gives, up to
    float rounding."""
    if not math.isfinite(float(args.temperature)):
        raise ValueError(f"temperature must be finite, got {float(args.temperature)}")
    b = args.positions.detach().reshape(-1).double()
    fast = args.reference_gradient and float(b.abs().max()) <= FAST_REFERENCE_MAX_POSITION
    return run_kernel(_MultilevelSigmoidCPU, KERNEL, "msq", w, args,
                      torch.exp(b).float() if fast else None)
