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
# sigmoid(T (x - b_i)) = 1 / (1 + exp(-T x) * exp(T b_i)): one exp a weight for all the
# steps instead of one a step, where every T * b_i is within this of 0 (then exp(T b_i) is a
# normal float, and a weight whose exp(-T x) is clamped is 47 or more from every step, where
# the sigmoid has saturated); the reference gradient's T = 1 sigmoids likewise with T = 1.
# Beyond (8 bits' positions reach 127; 4 bits' pass it once T > 6) one exp a step.
FAST_MAX_EXPONENT = 40.0

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
    return run_kernel(_MultilevelSigmoidCPU, KERNEL, "msq", w, args, one_exp_tables(args))


def one_exp_tables(args: SigmoidArgs) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """exp(b_i) (for the reference gradient) and exp(T b_i), each where FAST_MAX_EXPONENT
    allows its one-exp-a-weight sigmoids, else None."""
    b = args.positions.detach().reshape(-1).double()
    t, widest = float(args.temperature), float(b.abs().max())
    at_one = (torch.exp(b).float() if args.reference_gradient and widest <= FAST_MAX_EXPONENT
              else None)
    at_t = torch.exp(t * b).float() if t * widest <= FAST_MAX_EXPONENT else None
    return at_one, at_t
