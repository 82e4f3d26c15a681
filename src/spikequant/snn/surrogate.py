"""Surrogate gradients for the spike function, one record each, registered by name.

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

A new surrogate is one `register_surrogate(SurrogateRecord(...))`; every consumer (the
`Surrogate` spike function, the fused neuron's backward, the kernels' dispatch, the model
options) reads `SURROGATES`. The fused kernels (C on the CPU, Triton on CUDA) know the built-in
ones by their `SurrogateKernel` number (the record's `kernel`); a neuron with any other runs the
torch implementation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import torch
from torch.autograd.function import once_differentiable

from ..registry import Registry

# derivative(x, alpha, inplace=False): when `inplace`, it may overwrite `x` (the fused neuron
# backward passes its own temporary), which saves a full-size allocation per op on large
# [T, B, ...] tensors.
Derivative = Callable[..., torch.Tensor]
SmoothStep = Callable[[torch.Tensor, float], torch.Tensor]


class SurrogateKernel(IntEnum):
    """How the fused neuron kernels name the built-in surrogates: the same numbers in
    csrc/surrogate_kinds.h (the C kernel) and snn/kernels_triton.py (a test compares them)."""

    ATAN = 0
    SIGMOID = 1
    FAST_SIGMOID = 2
    TRIANGLE = 3


@dataclass(frozen=True)
class SurrogateRecord:
    """One surrogate: `derivative` is d/dx of `smooth_step`, the smooth version of the
    Heaviside step whose gradient stands in for the spike's; `default_alpha` its sharpness;
    `kernel` its number in the fused kernels (None: the neuron runs the torch ops).

    Args:
        name: the registered name (lower-case letters, digits and underscores, starting with
            a letter or digit); neurons and `Surrogate(kind)` look it up ignoring case, '-'
            and '_'.
        smooth_step: `smooth_step(x, alpha)`, the smooth step as a tensor function.
        derivative: `derivative(x, alpha, inplace=False)`, d/dx of `smooth_step`; with
            `inplace` it may overwrite `x`.
        default_alpha: the sharpness used when a Surrogate is given no alpha; must be
            positive.
        description: a few words on what the surrogate is (default ""); kept with the
            record, for people reading the registry.
        kernel: the surrogate's SurrogateKernel number in the fused kernels, which only the
            built-in surrogates have; None (default): a neuron using it runs the torch ops.
    """

    name: str
    smooth_step: SmoothStep
    derivative: Derivative
    default_alpha: float
    description: str = ""
    kernel: SurrogateKernel | None = None


# name -> record, in registration order
SURROGATES: Registry[SurrogateRecord] = Registry(
    "surrogate", "register one with spikequant.snn.register_surrogate(SurrogateRecord(...))"
)


def register_surrogate(record: SurrogateRecord, *, builtin: bool = False) -> SurrogateRecord:
    """Add `record` under its name (a ValueError if the name is taken); returns it.

    Args:
        record: the SurrogateRecord to register, under `record.name`.
        builtin: mark it as one of spikequant's own surrogates, which may have a `kernel`
            and can't be unregistered. Keyword only; default False (a user's surrogate).

    Raises:
        ValueError: the name is badly formed or taken, `default_alpha` is not positive, or
            a non-built-in record has a `kernel`.
    """
    if not record.default_alpha > 0:
        raise ValueError(f"surrogate {record.name!r}: default_alpha must be positive, got "
                         f"{record.default_alpha}")
    if record.kernel is not None and not builtin:
        raise ValueError(
            f"surrogate {record.name!r}: only the built-in surrogates have a fused kernel; "
            "leave kernel=None (the neuron then runs the torch implementation)"
        )
    return SURROGATES.register(record.name, record, builtin=builtin)


def unregister_surrogate(name: str) -> None:
    """Remove a surrogate added with `register_surrogate` (a built-in one stays).

    Args:
        name: the surrogate's registered name (case, '-' and '_' ignored); a name that is
            not registered is ignored.

    Raises:
        ValueError: `name` is a built-in surrogate.
    """
    SURROGATES.unregister(name)


def surrogate_record(name: str) -> SurrogateRecord:
    """The record registered as `name`, or an UnknownComponent (a ValueError) listing the
    registered names."""
    return SURROGATES.get(name)


def kernel_code(name: str) -> int | None:
    """The fused kernels' number of the surrogate `name`, None where they don't know it."""
    record = SURROGATES.find(name)
    return None if record is None or record.kernel is None else int(record.kernel)


def _atan_derivative(x: torch.Tensor, alpha: float, inplace: bool = False) -> torch.Tensor:
    z = x.mul_(math.pi / 2 * alpha) if inplace else x * (math.pi / 2 * alpha)
    return z.square_().add_(1).reciprocal_().mul_(alpha / 2)


def _sigmoid_derivative(x: torch.Tensor, alpha: float, inplace: bool = False) -> torch.Tensor:
    s = x.mul_(alpha) if inplace else x * alpha
    s.sigmoid_()
    return s.addcmul_(s, s, value=-1).mul_(alpha)


def _fast_sigmoid_derivative(x: torch.Tensor, alpha: float, inplace: bool = False
                             ) -> torch.Tensor:
    z = x.abs_() if inplace else x.abs()
    return z.mul_(alpha).add_(1).square_().reciprocal_().mul_(alpha / 2)


def _triangle_derivative(x: torch.Tensor, alpha: float, inplace: bool = False) -> torch.Tensor:
    z = x.abs_() if inplace else x.abs()
    return z.mul_(-alpha).add_(1).clamp_min_(0).mul_(alpha)


def _triangle_step(x: torch.Tensor, alpha: float) -> torch.Tensor:
    """The piecewise quadratic step whose derivative is the triangle."""
    inside = 0.5 + alpha * x - 0.5 * alpha * alpha * x * x.abs()
    return torch.where(x.abs() < 1 / alpha, inside, (x > 0).to(x.dtype))


for _record in (
    SurrogateRecord(
        "atan", lambda x, a: torch.atan(math.pi / 2 * a * x) / math.pi + 0.5,
        _atan_derivative, 2.0, "arctangent step (SpikingJelly's ATan)", SurrogateKernel.ATAN,
    ),
    SurrogateRecord(
        "sigmoid", lambda x, a: torch.sigmoid(a * x), _sigmoid_derivative, 4.0,
        "logistic step (SpikingJelly's Sigmoid)", SurrogateKernel.SIGMOID,
    ),
    SurrogateRecord(
        "fast_sigmoid", lambda x, a: 0.5 * a * x / (1 + a * x.abs()) + 0.5,
        _fast_sigmoid_derivative, 10.0, "x / (1 + |x|) step (SuperSpike)",
        SurrogateKernel.FAST_SIGMOID,
    ),
    SurrogateRecord(
        "triangle", _triangle_step, _triangle_derivative, 1.0,
        "piecewise quadratic step: a triangular derivative", SurrogateKernel.TRIANGLE,
    ),
):
    register_surrogate(_record, builtin=True)


def heaviside(x: torch.Tensor) -> torch.Tensor:
    return (x >= 0).to(x.dtype)


class SurrogateSpike(torch.autograd.Function):
    """Heaviside forward, a surrogate's derivative backward:
    `SurrogateSpike.apply(x, derivative, alpha)`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, derivative: Derivative, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.derivative, ctx.alpha = derivative, alpha
        return heaviside(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return ctx.derivative(x, ctx.alpha).mul_(grad_output), None, None


class Surrogate:
    """A registered surrogate with its sharpness: `Surrogate("atan", alpha=2.0)(x)` spikes
    where x >= 0 and back-propagates the atan derivative. Neurons read `kind` and `alpha` to
    use the same derivative in their fused multi-step backward."""

    def __init__(self, kind: str = "atan", alpha: float | None = None) -> None:
        record = surrogate_record(kind)
        alpha = record.default_alpha if alpha is None else float(alpha)
        if not alpha > 0:
            raise ValueError(f"surrogate alpha must be positive, got {alpha}")
        self.kind = record.name  # the registered spelling: the kernels look it up
        self.alpha = alpha

    @property
    def record(self) -> SurrogateRecord:
        return surrogate_record(self.kind)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return SurrogateSpike.apply(x, self.record.derivative, self.alpha)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return self.record.derivative(x, self.alpha)

    def __repr__(self) -> str:
        return f"Surrogate({self.kind!r}, alpha={self.alpha:g})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Surrogate) and (self.kind, self.alpha) == (other.kind, other.alpha)

    def __hash__(self) -> int:
        return hash((self.kind, self.alpha))


def as_surrogate(spec: str | Surrogate | None) -> Surrogate:
    """A Surrogate from a name ('atan', ...), a Surrogate, or None (atan, alpha 2).

    Args:
        spec: a registered surrogate's name (it gets that surrogate's default alpha), a
            Surrogate (returned as it is), or None (atan with alpha 2).

    Raises:
        TypeError: `spec` is of another type.
        ValueError: (UnknownComponent) the name is not registered.
    """
    if spec is None:
        return Surrogate()
    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, str):
        return Surrogate(spec)
    raise TypeError(
        f"surrogate must be a name ({', '.join(SURROGATES)}) or a spikequant.snn.Surrogate, "
        f"got {type(spec).__name__}"
    )
