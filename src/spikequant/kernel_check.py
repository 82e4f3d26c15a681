"""A Triton kernel checks itself against the torch reference the first time it runs.

The first time a process launches a Triton kernel for a given key, `kernel_passes` runs the
kernel and its torch reference on a small slice of the actual inputs, forward and backward
(the output and the gradient with respect to every differentiable input, for one fixed random
output gradient), and compares them. When they agree the kernel is used from then on; when
they do not, or compiling or launching the kernel raises, the caller falls back to its torch
implementation for that key, and one `KernelFallbackWarning` a kernel and device says which
kernel, which device, why, and that `SPIKEQUANT_KERNELS=torch` turns the kernels off. The
answer is cached per process: the check costs two small forward and backward passes once a
key, never again.

The key (the "shape class") is what makes Triton compile a different program:

    kernel name, device (e.g. cuda:0), dtype, tensor rank, the kernel's compile-time options
    (binary or multi-level steps, per-channel scales, reference gradient; the neuron's reset,
    surrogate, decay kind, ...) and the size class of the sizes Triton specialises on
    (1, a multiple of 16, or other)

The slice keeps those size classes: a size up to 2 * LIMIT is kept whole, a larger one is cut
to LIMIT plus its remainder modulo 16.

Tolerance. An element agrees when |kernel - reference| <= atol * max|reference| + rtol *
|reference|, with (rtol, atol) = (1e-4, 1e-5) in float32 and (3e-2, 3e-2) in float16 and
bfloat16 (AMP), where the reference is computed in float32 from the same half-precision
inputs. A tensor agrees when at most a fraction `MAX_FRACTION` of its nonzero elements do not
(0.1 % in float32, 5 % in half precision): a spike is a threshold, so a potential one rounding
step away from the threshold may spike in one and not the other, which is not an error. A
kernel off by a few per cent everywhere fails.

SPIKEQUANT_KERNELS=torch never reaches this module: no kernel runs, so nothing is checked.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .errors import KernelFallbackWarning

LIMIT = 4096
TOLERANCE = {torch.float32: (1e-4, 1e-5), torch.float16: (3e-2, 3e-2),
             torch.bfloat16: (3e-2, 3e-2)}
MAX_FRACTION = {torch.float32: 1e-3, torch.float16: 5e-2, torch.bfloat16: 5e-2}


@dataclass(frozen=True)
class CheckResult:
    """One self-check: the kernel, device and shape class it ran for, whether it passed, and
    the worst disagreement found (or the error raised)."""

    kernel: str
    device: str
    shape_class: str
    passed: bool
    detail: str


_results: dict[tuple[str, str, str], CheckResult] = {}
_warned: set[tuple[str, str]] = set()


def results() -> list[CheckResult]:
    """Every self-check this process ran, in the order they ran."""
    return list(_results.values())


def clear() -> None:
    """Forget every check (the next launch of each kernel checks again); for tests."""
    _results.clear()
    _warned.clear()


def size_class(n: int) -> str:
    """How Triton specialises an integer argument: 1, a multiple of 16, or other."""
    return "1" if n == 1 else "16k" if n % 16 == 0 else "n"


def slice_size(n: int, limit: int = LIMIT) -> int:
    """A size at most about 2 * `limit` with the same size class as `n`."""
    return n if n <= 2 * limit else limit + n % 16


def device_label(device: torch.device) -> str:
    """'cuda:0 (NVIDIA H100 80GB HBM3)' for a GPU, the device's name otherwise."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def _outputs(result: Any) -> list[torch.Tensor]:
    items = result if isinstance(result, (tuple, list)) else (result,)
    return [t for t in items if isinstance(t, torch.Tensor)]


def _run(fn: Callable[..., Any], args: Sequence[Any], diff: Sequence[int]
         ) -> list[torch.Tensor]:
    """fn(*args)'s outputs then the gradients of every `diff` input, for a fixed random
    output gradient (the same for the kernel and the reference)."""
    args = [a.detach().clone().requires_grad_(i in diff) if isinstance(a, torch.Tensor) else a
            for i, a in enumerate(args)]
    outs = _outputs(fn(*args))
    gen = torch.Generator(device=outs[0].device).manual_seed(0)
    grads_out = [torch.randn(o.shape, generator=gen, device=o.device, dtype=torch.float32)
                 .to(o.dtype) for o in outs]
    inputs = [args[i] for i in diff]
    grads = torch.autograd.grad(outs, inputs, grads_out, allow_unused=True) if inputs else ()
    return [o.detach() for o in outs] + [
        g if g is not None else torch.zeros_like(x) for g, x in zip(grads, inputs)]


def compare(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> str | None:
    """None when `got` (a kernel's result) agrees with `want` (the reference's) to the
    tolerance of `dtype`, else what differs."""
    if got.shape != want.shape:
        return f"shape {tuple(got.shape)} instead of {tuple(want.shape)}"
    rtol, atol = TOLERANCE.get(dtype, TOLERANCE[torch.float16])
    g, w = got.double(), want.double()
    if not torch.isfinite(g).eq(torch.isfinite(w)).all():
        return "not finite where the reference is"
    finite = torch.isfinite(w)
    g, w = g[finite], w[finite]
    if w.numel() == 0:
        return None
    scale = float(w.abs().max()) or 1.0
    off = (g - w).abs() > atol * scale + rtol * w.abs()
    counted = max(int(((g != 0) | (w != 0)).sum()), 1)
    if int(off.sum()) <= MAX_FRACTION.get(dtype, MAX_FRACTION[torch.float16]) * counted:
        return None
    worst = float(((g - w).abs() / (w.abs() + atol * scale)).max())
    return (f"{int(off.sum())} of {counted} elements outside rtol={rtol:g}, atol={atol:g} "
            f"(largest relative difference {worst:.2g})")


def _check(kernel: Callable[..., Any], reference: Callable[..., Any], args: Sequence[Any],
           diff: Sequence[int], dtype: torch.dtype) -> str | None:
    with torch.inference_mode(False), torch.enable_grad(), \
            torch.autocast(device_type=_device_of(args).type, enabled=False):
        got = _run(kernel, args, diff)
        upcast = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                  for a in args]
        want = _run(reference, upcast, diff)
    if len(got) != len(want):
        return f"{len(got)} results instead of {len(want)}"
    names = [f"output {i}" for i in range(len(got) - len(diff))] + [
        f"gradient of input {i}" for i in diff]
    for name, g, w in zip(names, got, want):
        problem = compare(g.float(), w.float().to(g.device), dtype)
        if problem is not None:
            return f"{name}: {problem}"
    return None


def _device_of(args: Sequence[Any]) -> torch.device:
    return next(a.device for a in args if isinstance(a, torch.Tensor))


def kernel_passes(name: str, device: torch.device, shape_class: str,
                  kernel: Callable[..., Any], reference: Callable[..., Any],
                  slice_args: Callable[[], Sequence[Any]], diff: Sequence[int]) -> bool:
    """Whether Triton kernel `name` may run for this shape class on `device`: checked on
    first use, then cached for the process (a dictionary look-up); see the module's docstring.

    Args:
        name: the kernel's name for the warning, e.g. "sigmoid quantizer".
        device: the device of the kernel's inputs.
        shape_class: the key beside name and device (dtype, rank, compile-time options,
            size classes), a short readable string.
        kernel: the Triton function (differentiable, an autograd.Function's apply).
        reference: the torch implementation taking the same arguments.
        slice_args: builds the arguments of both on a small slice of the actual inputs;
            called only when a check runs. The first tensor's dtype sets the tolerance.
        diff: the positions of the arguments whose gradients are compared.
    """
    key = (name, str(device), shape_class)
    done = _results.get(key)
    if done is not None:
        return done.passed
    try:
        args = slice_args()
        dtype = next(a.dtype for a in args if isinstance(a, torch.Tensor))
        problem = _check(kernel, reference, args, diff, dtype)
    except Exception as err:  # noqa: BLE001 - a kernel that cannot compile or launch
        text = str(err).strip()
        problem = f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"
    label = device_label(device)
    _results[key] = CheckResult(name, label, shape_class, problem is None, problem or "agrees")
    if problem is not None and (name, str(device)) not in _warned:
        _warned.add((name, str(device)))
        warnings.warn(
            f"the Triton {name} kernel did not pass its self-check against the torch "
            f"reference on {label} ({shape_class}): {problem}. spikequant runs the torch "
            f"implementation there instead (same results, slower); SPIKEQUANT_KERNELS=torch "
            f"turns the Triton kernels off, and this check with them.",
            KernelFallbackWarning, stacklevel=3)
    return problem is None
