"""Where the sigmoid quantizer's training-mode function runs: its arguments, described once,
and the one dispatcher that picks a backend for them.

    Q(w) = alpha * ( sum_i h_i * sigmoid(T * (beta * w - b_i)) + q_0 )

    triton        CUDA tensors, once its first-use check passed   kernels_triton.py
    c-binary      CPU float32, one step (binary levels)  cpu_kernel.py, csrc/binary_sigmoid.c
    c-multilevel  CPU float32, 2 to 255 steps     multilevel_cpu.py, csrc/multilevel_sigmoid.c
    torch-binary  anything else with one step     binary_torch.py
    torch         anything else                   staircase_torch.py

Every backend takes `(w, SigmoidArgs)` and gives the same values and gradients (of w, alpha
and beta) up to float rounding; the torch ones are the reference the others are tested
against. `SPIKEQUANT_KERNELS=torch` leaves only the torch backends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .._kernels import use_triton

BACKENDS = ("triton", "c-binary", "c-multilevel", "torch-binary", "torch")


@dataclass(frozen=True)
class SigmoidArgs:
    """The arguments of Q(w) beside the weight, the same for every backend.

    Args:
        alpha: the output scale, 0-dim (per tensor) or one value per output channel (the
            weight's first dimension); differentiable.
        beta: the input scale, shaped like `alpha`; differentiable.
        positions: the n ascending step positions b_i, in units of beta * w.
        heights: the n step heights h_i = q_i - q_{i-1}.
        temperature: T, 0-dim.
        q0: the lowest level q_0, 0-dim.
        reference_gradient: differentiate the T = 1 sigmoids scaled by T (Quantization
            Networks' gradient) instead of the sigmoids at T.
    """

    alpha: torch.Tensor
    beta: torch.Tensor
    positions: torch.Tensor
    heights: torch.Tensor
    temperature: torch.Tensor
    q0: torch.Tensor
    reference_gradient: bool = False

    def as_tuple(self) -> tuple:
        """The fields in order: what an autograd Function's apply takes after w."""
        return (self.alpha, self.beta, self.positions, self.heights, self.temperature,
                self.q0, self.reference_gradient)


def backend_for(w: torch.Tensor, args: SigmoidArgs) -> str:
    """The name (one of BACKENDS) of the backend `sigmoid_quantize(w, args)` runs on."""
    if use_triton(w):
        from .kernels_triton import kernel_passes

        if kernel_passes(w, args):  # checked against torch on first use (kernel_check)
            return "triton"
    if args.positions.numel() == 1:
        from .cpu_kernel import use_cpu_kernel

        return "c-binary" if use_cpu_kernel(w) else "torch-binary"
    from .multilevel_cpu import use_multilevel_cpu

    return "c-multilevel" if use_multilevel_cpu(w, args.positions) else "torch"


def _backend(name: str) -> Callable[[torch.Tensor, SigmoidArgs], torch.Tensor]:
    if name == "triton":
        from .kernels_triton import sigmoid_quantize_triton as fn
    elif name == "c-binary":
        from .cpu_kernel import binary_sigmoid_cpu as fn
    elif name == "c-multilevel":
        from .multilevel_cpu import multilevel_sigmoid_cpu as fn
    elif name == "torch-binary":
        from .binary_torch import binary_sigmoid as fn
    elif name == "torch":
        from .staircase_torch import staircase_torch as fn
    else:
        raise ValueError(f"unknown sigmoid backend {name!r}; backends are {', '.join(BACKENDS)}")
    return fn


def sigmoid_quantize(w: torch.Tensor, args: SigmoidArgs, backend: str | None = None
                     ) -> torch.Tensor:
    """Q(w) in training mode, differentiable in w, alpha and beta.

    Args:
        w: the weight, any shape (its first dimension is the output channel).
        args: the quantizer's scales, steps, temperature and gradient choice.
        backend: one of BACKENDS to run on regardless of the tensors (tests and benchmarks);
            None picks it with `backend_for`.
    """
    return _backend(backend or backend_for(w, args))(w, args)
