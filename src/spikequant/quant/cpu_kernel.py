"""The binary sigmoid quantizer as a compiled CPU kernel (`csrc/binary_sigmoid.c`): one pass
over the weights forward, one backward, with the sigmoid, its derivative and the alpha and
beta sums done while each weight is in a register; the torch ops of `binary_torch.py` make
nine passes over N-MNIST's 67 MB FC weight a step. Built and loaded by
`spikequant._cpu_kernels` (which says how, and how to turn it off), called through
compiled_sigmoid.py; the torch ops remain the reference and the fallback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from .compiled_sigmoid import CompiledSigmoid, run_kernel, sigmoid_kernel

if TYPE_CHECKING:
    from .sigmoid_backends import SigmoidArgs

KERNEL = sigmoid_kernel("binary_sigmoid.c", "bsq")


class _BinarySigmoidCPU(CompiledSigmoid):
    """csrc/binary_sigmoid.c forward and backward."""


def unavailable_reason() -> str | None:
    """None when the kernel is built and loaded, else why it is not (one line)."""
    return KERNEL.unavailable_reason()


def use_cpu_kernel(w: torch.Tensor) -> bool:
    """Whether the binary quantizer of weight `w` runs on this kernel (CPU float32, kernels
    not switched to torch ops, and the kernel builds)."""
    return KERNEL.usable_for(w)


def binary_sigmoid_cpu(w: torch.Tensor, args: SigmoidArgs) -> torch.Tensor:
    """The `c-binary` backend of sigmoid_backends.py (check `use_cpu_kernel(w)` first): what
    `binary_torch.binary_sigmoid` gives, up to float rounding."""
    return run_kernel(_BinarySigmoidCPU, KERNEL, "bsq", w, args)
