"""Surrogate gradients for the spike function.

The forward pass of every surrogate is the Heaviside step `x >= 0` (a spike when the membrane
potential reaches the threshold); the backward pass replaces its zero-almost-everywhere
derivative with the derivative of a smooth step. `alpha` sets the sharpness: the surrogate's
width is about `1 / alpha`, and every derivative here integrates to 1 over the real line, so
changing `alpha` changes the width, not the total gradient mass.

    atan          (alpha / 2) / (1 + (pi/2 * alpha * x)^2)       default alpha 2
    sigmoid       alpha * s * (1 - s),  s = sigmoid(alpha * x)    default alpha 4
    fast_sigmoid  (alpha / 2) / (1 + alpha * |x|)^2               default alpha 10
    triangle      alpha * max(0, 1 - alpha * |x|)                 default alpha 1

atan and sigmoid are the same functions as SpikingJelly's `ATan` and `Sigmoid` for the same
alpha (so parity tests can compare them).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.autograd.function import once_differentiable

Derivative = Callable[..., torch.Tensor]


# Each derivative may overwrite `x` when `inplace` (the fused neuron backward passes its own
# temporary), which saves a full-size allocation per op on large [T, B, ...] tensors.


def atan_derivative(x: torch.Tensor, alpha: float, inplace: bool = False) -> torch.Tensor:
    z = x.mul_(math.pi / 2 * alpha) if inplace else x * (math.pi / 2 * alpha)
    return z.square_().add_(1).reciprocal_().mul_(alpha / 2)


def sigmoid_derivative(x: torch.Tensor, alpha: float, inplace: bool = False) -> torch.Tensor:
    s = x.mul_(alpha) if inplace else x * alpha
    s.sigmoid_()
    return s.addcmul_(s, s, value=-1).mul_(alpha)


def fast_sigmoid_derivative(x: torch.Tensor, alpha: float, inplace: bool = False) -> torch.Tensor:
    z = x.abs_() if inplace else x.abs()
    return z.mul_(alpha).add_(1).square_().reciprocal_().mul_(alpha / 2)


def triangle_derivative(x: torch.Tensor, alpha: float, inplace: bool = False) -> torch.Tensor:
    z = x.abs_() if inplace else x.abs()
    return z.mul_(-alpha).add_(1).clamp_min_(0).mul_(alpha)


DERIVATIVES: dict[str, Derivative] = {
    "atan": atan_derivative,
    "sigmoid": sigmoid_derivative,
    "fast_sigmoid": fast_sigmoid_derivative,
    "triangle": triangle_derivative,
}
DEFAULT_ALPHA: dict[str, float] = {
    "atan": 2.0, "sigmoid": 4.0, "fast_sigmoid": 10.0, "triangle": 1.0,
}


def heaviside(x: torch.Tensor) -> torch.Tensor:
    return (x >= 0).to(x.dtype)


def _spike_function(kind: str, doc: str) -> type[torch.autograd.Function]:
    """A torch.autograd.Function: Heaviside forward, the `kind` derivative backward."""
    derivative = DERIVATIVES[kind]

    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return heaviside(x)

    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return derivative(x, ctx.alpha).mul_(grad_output), None

    name = "".join(part.title() for part in kind.split("_")) + "Spike"
    return type(
        name,
        (torch.autograd.Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(backward), "__doc__": doc},
    )


ATanSpike = _spike_function("atan", "Heaviside forward, atan surrogate backward.")
SigmoidSpike = _spike_function("sigmoid", "Heaviside forward, sigmoid surrogate backward.")
FastSigmoidSpike = _spike_function(
    "fast_sigmoid", "Heaviside forward, fast-sigmoid surrogate backward."
)
TriangleSpike = _spike_function("triangle", "Heaviside forward, triangle surrogate backward.")

SPIKE_FUNCTIONS: dict[str, type[torch.autograd.Function]] = {
    "atan": ATanSpike,
    "sigmoid": SigmoidSpike,
    "fast_sigmoid": FastSigmoidSpike,
    "triangle": TriangleSpike,
}


class Surrogate:
    """A named surrogate with its sharpness: `Surrogate("atan", alpha=2.0)(x)` spikes where
    x >= 0 and back-propagates the atan derivative. Neurons read `kind` and `alpha` to use the
    same derivative in their fused multi-step backward."""

    def __init__(self, kind: str = "atan", alpha: float | None = None) -> None:
        if kind not in DERIVATIVES:
            raise ValueError(
                f"unknown surrogate {kind!r}; choose one of {', '.join(DERIVATIVES)}"
            )
        alpha = DEFAULT_ALPHA[kind] if alpha is None else float(alpha)
        if not alpha > 0:
            raise ValueError(f"surrogate alpha must be positive, got {alpha}")
        self.kind = kind
        self.alpha = alpha

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return SPIKE_FUNCTIONS[self.kind].apply(x, self.alpha)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return DERIVATIVES[self.kind](x, self.alpha)

    def __repr__(self) -> str:
        return f"Surrogate({self.kind!r}, alpha={self.alpha:g})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Surrogate) and (self.kind, self.alpha) == (other.kind, other.alpha)

    def __hash__(self) -> int:
        return hash((self.kind, self.alpha))


def ATan(alpha: float = 2.0) -> Surrogate:  # noqa: N802 - reads like a class, as in peers
    return Surrogate("atan", alpha)


def Sigmoid(alpha: float = 4.0) -> Surrogate:  # noqa: N802
    return Surrogate("sigmoid", alpha)


def FastSigmoid(alpha: float = 10.0) -> Surrogate:  # noqa: N802
    return Surrogate("fast_sigmoid", alpha)


def Triangle(alpha: float = 1.0) -> Surrogate:  # noqa: N802
    return Surrogate("triangle", alpha)


def as_surrogate(spec: str | Surrogate | None) -> Surrogate:
    """A Surrogate from a name ('atan', ...), a Surrogate, or None (atan, alpha 2)."""
    if spec is None:
        return Surrogate()
    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, str):
        return Surrogate(spec)
    raise TypeError(
        f"surrogate must be a name ({', '.join(DERIVATIVES)}) or a spikequant.snn.Surrogate, "
        f"got {type(spec).__name__}"
    )
