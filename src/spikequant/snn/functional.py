"""Multi-step leaky integrate-and-fire dynamics on [T, B, ...] tensors.

One step of the (parametric) LIF neuron, with decay factor k = 1 / tau:

    charge   h[t] = v[t-1] + k * (x[t] - (v[t-1] - r))     (decay_input=True)
             h[t] = v[t-1] - k * (v[t-1] - r) + x[t]       (decay_input=False)
    fire     s[t] = heaviside(h[t] - threshold)
    reset    v[t] = r * s[t] + (1 - s[t]) * h[t]           (hard reset to r = v_reset)
             v[t] = h[t] - threshold * s[t]                (soft reset, v_reset=None, r = 0)

`lif_multistep` runs all T steps inside one autograd.Function with a hand-written
backward-through-time: the forward keeps only the charged potentials h, and the backward
recomputes the surrogate and reset derivatives one step at a time, so no temporary is larger
than one time step. With `detach_reset` the spike is treated as a constant in the reset (as
SpikingJelly's option). For CUDA tensors the same function runs as two Triton kernels
(`kernels_triton.py`, chosen by `spikequant._kernels`), for float32 CPU tensors as a compiled C
kernel (`cpu_kernel.py`, where a C compiler is found), both through one autograd Function
(`FusedLIFMultiStep`, given each one's launches); this implementation is the reference of both
and the fallback. The neurons' generic path (`SpikingNeuron.run_steps` with LIF's `charge`,
spikequant.snn.base) is the same dynamics written step by step with plain autograd; tests
check that both agree. With a `state_grid` (spikequant.snn.fixed_point.StateGrid) the forward
pass keeps the membrane on a fixed-point grid (input, leak and clamp as that module states)
while the backward pass stays the float one: a straight-through gradient.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch
from torch.autograd.function import once_differentiable

from .._buffer_pool import POOL
from .._kernels import use_triton
from .fixed_point import StateGrid
from .surrogate import surrogate_record

Decay = float | torch.Tensor


def _reset(h: torch.Tensor, fired: torch.Tensor, threshold: float, v_reset: float | None):
    if v_reset is None:
        return torch.where(fired, h - threshold, h)
    return torch.where(fired, v_reset, h)


def _input_drive(x_seq: torch.Tensor, k: Decay, rest: float, decay_input: bool) -> torch.Tensor:
    """The part of h[t] that does not depend on v[t-1], as a fresh tensor (it becomes h)."""
    if decay_input:
        return (x_seq + rest) * k if rest else x_seq * k
    return x_seq + rest * k if rest else x_seq.clone()


class _LIFMultiStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x_seq, v0, k, threshold, v_reset, decay_input, detach_reset, kind, alpha,
                store_v_seq, state_grid=None):
        rest = 0.0 if v_reset is None else v_reset
        if state_grid is None:
            h_seq = _input_drive(x_seq, k, rest, decay_input)
        else:
            h_seq = state_grid.drive(x_seq, k, decay_input)
        retain = 1 - k
        v_seq = torch.empty_like(x_seq) if store_v_seq else None
        v = v0  # None: at rest with potential 0, which adds nothing to h[0]
        for t in range(x_seq.shape[0]):
            h = h_seq[t]
            if v is None:
                pass
            elif state_grid is not None:
                h.add_(v).sub_(state_grid.leak(v, k, rest))
            elif isinstance(retain, torch.Tensor):
                h.addcmul_(v, retain)
            else:
                h.add_(v, alpha=retain)
            if state_grid is not None:
                state_grid.clamp_(h)
            v = _reset(h, h >= threshold, threshold, v_reset)
            if v_seq is not None:
                v_seq[t] = v
        spikes = (h_seq >= threshold).to(x_seq.dtype)
        k_tensor = k if isinstance(k, torch.Tensor) else None
        x_saved = x_seq if (k_tensor is not None and decay_input) else None
        ctx.save_for_backward(h_seq, v0, k_tensor, x_saved)
        ctx.k = None if k_tensor is not None else k
        ctx.settings = (threshold, v_reset, decay_input, detach_reset, kind, alpha, store_v_seq)
        return spikes, (v_seq if v_seq is not None else v)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v):
        h_seq, v0, k_tensor, x_seq = ctx.saved_tensors
        threshold, v_reset, decay_input, detach_reset, kind, alpha, store_v_seq = ctx.settings
        k = k_tensor if k_tensor is not None else ctx.k
        want_k = k_tensor is not None and ctx.needs_input_grad[2]
        derivative = surrogate_record(kind).derivative
        rest = 0.0 if v_reset is None else v_reset
        retain = 1 - k
        grad_x = torch.empty_like(h_seq)
        grad_k = h_seq.new_zeros(())
        carry = torch.zeros_like(h_seq[0]) if store_v_seq else grad_v
        # One time step at a time: every temporary is [B, ...], not [T, B, ...], so on a CPU
        # it is recycled from cache instead of being a fresh page-faulting allocation a step.
        fired = h_seq[-1] >= threshold
        for t in range(h_seq.shape[0] - 1, -1, -1):
            h = h_seq[t]
            # the decay gradient needs step t-1's spikes; keep them for the next iteration
            fired_prev = h_seq[t - 1] >= threshold if t > 0 else None
            sg = derivative(h - threshold, alpha, inplace=True)
            # the attached reset needs sg itself below; a detached one lets it be overwritten
            grad_h = sg * grad_spikes[t] if not detach_reset else sg.mul_(grad_spikes[t])
            if store_v_seq:
                carry = carry + grad_v[t]
            if not detach_reset:
                grad_h.addcmul_(carry, _reset_slope(h, fired, sg, threshold, v_reset))
            elif v_reset is not None:  # detached hard reset: v = h where no spike, else const
                grad_h.add_(carry.masked_fill(fired, 0.0))
            else:  # detached soft reset: dv/dh = 1
                grad_h.add_(carry)
            if want_k:
                slope = _decay_slope(t, h_seq, fired_prev, v0, x_seq, threshold, v_reset, rest)
                grad_k += _dot(grad_h, slope)
            carry = grad_h * retain
            fired = fired_prev
            if decay_input:
                torch.mul(grad_h, k, out=grad_x[t])
            else:
                grad_x[t] = grad_h
        grad_v0 = carry if v0 is not None and ctx.needs_input_grad[1] else None
        grad_k = grad_k.reshape(k_tensor.shape).to(k_tensor.dtype) if want_k else None
        return grad_x, grad_v0, grad_k, None, None, None, None, None, None, None, None


def _reset_slope(h, fired, sg, threshold, v_reset):
    """dv[t]/dh[t] with the spike's surrogate gradient flowing through the reset."""
    if v_reset is None:
        return torch.mul(sg, -threshold).add_(1)
    return torch.sub(v_reset, h).mul_(sg).add_(~fired)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))


def _decay_slope(t, h_seq, fired_prev, v0, x_seq, threshold, v_reset, rest):
    """dh[t]/dk = x[t] + r - v[t-1] (decay_input) or r - v[t-1]; v[t-1] is recomputed from the
    saved h and step t-1's spikes rather than stored (v[-1] = v0, or 0 when the neuron starts
    at rest 0)."""
    if t > 0:
        prev = h_seq[t - 1]
        if v_reset is not None:  # hard reset to r = rest: r - v[t-1] is 0 where it fired
            slope = torch.sub(rest, prev).masked_fill_(fired_prev, 0.0)
        else:
            slope = torch.sub(rest, _reset(prev, fired_prev, threshold, v_reset))
    elif v0 is None:
        slope = torch.full_like(h_seq[t], rest)
    else:
        slope = torch.sub(rest, v0)
    return slope.add_(x_seq[t]) if x_seq is not None else slope


class KernelBuffers(NamedTuple):
    """What a fused kernel's forward reads and writes (`kernel_buffers`)."""

    x: torch.Tensor  # the input, contiguous
    v0: torch.Tensor | None  # the initial potential, contiguous, or None (at rest)
    h_seq: torch.Tensor  # fresh: the charged potentials [T, ...]
    spikes: torch.Tensor  # fresh: the spikes [T, ...]
    v_out: torch.Tensor  # fresh: the potentials [T, ...] when `store_v_seq`, else one step
    steps: int  # T
    n: int  # neurons a step
    rest: float  # the reset potential (0.0 for a soft reset)


def step_buffer(like: torch.Tensor, training: bool) -> torch.Tensor:
    """A fresh tensor of `like`'s shape for a fused kernel to write: while training on the CPU
    in float32 from the buffer pool (`spikequant._buffer_pool`), so that a step's full-size
    potentials, spikes and input gradient reuse the last step's memory instead of faulting
    in fresh pages (tens of MB a layer, whatever the allocator does); else torch.empty_like
    (inference, whose batch shapes vary, keeps nothing)."""
    if training and like.device.type == "cpu" and like.dtype == torch.float32:
        return POOL.empty(like.shape)
    return torch.empty_like(like)


def kernel_buffers(x_seq: torch.Tensor, v0: torch.Tensor | None, v_reset: float | None,
                   store_v_seq: bool, training: bool = False) -> KernelBuffers:
    """What a fused kernel's forward (Triton or CPU) reads and writes, from the arguments of
    `_LIFMultiStep`; `training`: autograd records the call (the outputs come from
    `step_buffer`'s pool on the CPU)."""
    x = x_seq.contiguous()
    v_out = step_buffer(x if store_v_seq else x[0], training)
    v0 = v0.contiguous() if v0 is not None else None
    rest = 0.0 if v_reset is None else float(v_reset)
    return KernelBuffers(x, v0, step_buffer(x, training), step_buffer(x, training), v_out,
                         x.shape[0], x[0].numel(), rest)


def save_for_kernel_backward(ctx, x, h_seq, v0, k, threshold, v_reset, decay_input,
                             detach_reset, kind, alpha, store_v_seq) -> None:
    """Save what a fused kernel's backward reads, as `_LIFMultiStep` does: h, v0, the decay if
    it is a (learnable) tensor and the input where the decay gradient needs it; `ctx.k` is a
    fixed decay (None for a tensor, whose value is not read here: that would stall a GPU) and
    `ctx.settings` (threshold, rest, soft reset, decay_input, detach_reset, surrogate, alpha,
    store_v_seq)."""
    k_tensor = k if isinstance(k, torch.Tensor) else None
    x_saved = x if (k_tensor is not None and decay_input) else None
    ctx.save_for_backward(h_seq, v0, k_tensor, x_saved)
    ctx.k = None if k_tensor is not None else float(k)
    rest = 0.0 if v_reset is None else float(v_reset)
    ctx.settings = (float(threshold), rest, v_reset is None, decay_input, detach_reset, kind,
                    float(alpha), store_v_seq)


class KernelBackwardInputs(NamedTuple):
    """What a fused kernel's backward starts from: `save_for_kernel_backward`'s tensors and
    settings, the sizes, and which of the decay's and v0's gradients are wanted."""

    h_seq: torch.Tensor
    v0: torch.Tensor | None
    k_tensor: torch.Tensor | None
    x_saved: torch.Tensor | None
    threshold: float
    rest: float
    soft: bool
    decay_input: bool
    detach: bool
    kind: str
    alpha: float
    store_v: bool
    steps: int
    n: int
    want_k: bool
    want_v0: bool


def kernel_backward_inputs(ctx) -> KernelBackwardInputs:
    """The inverse of `save_for_kernel_backward`, in a fused kernel's backward."""
    h_seq, v0, k_tensor, x_saved = ctx.saved_tensors
    return KernelBackwardInputs(
        h_seq, v0, k_tensor, x_saved, *ctx.settings, steps=h_seq.shape[0], n=h_seq[0].numel(),
        want_k=k_tensor is not None and ctx.needs_input_grad[2],
        want_v0=v0 is not None and ctx.needs_input_grad[1])


class FusedKernelBackend(Protocol):
    """One implementation of the fused neuron (the C kernel, the Triton kernels): its two
    launches, called by `FusedLIFMultiStep` on at least one neuron (n > 0)."""

    def launch_forward(self, buffers: KernelBuffers, k: Decay, threshold: float,
                       decay_input: bool, soft_reset: bool, store_v: bool) -> None:
        """Run all T steps: read `buffers.x` and `buffers.v0`, write `buffers.h_seq`,
        `buffers.spikes` and `buffers.v_out`. `k` is the decay as `_LIFMultiStep` takes it."""

    def launch_backward(self, saved: KernelBackwardInputs, k: Decay,
                        grad_spikes: torch.Tensor | None, grad_v: torch.Tensor | None,
                        grad_x: torch.Tensor, grad_v0: torch.Tensor | None
                        ) -> torch.Tensor | None:
        """The backward through time: write `grad_x` and `grad_v0` (when not None); `k` is
        the saved decay tensor or the fixed value, the incoming gradients as autograd gives
        them (None: zero). Returns the decay gradient summed (a 0-dim tensor) when
        `saved.want_k`, else None."""


class FusedLIFMultiStep(torch.autograd.Function):
    """`_LIFMultiStep`'s arguments and results on a fused kernel: the arguments of
    `_LIFMultiStep.apply` (without `state_grid`) followed by the `FusedKernelBackend` that
    runs them. Each backend's module subclasses it, so that autograd graphs and profiles name
    the kernel."""

    @staticmethod
    def forward(ctx, x_seq, v0, k, threshold, v_reset, decay_input, detach_reset, kind, alpha,
                store_v_seq, backend: FusedKernelBackend):
        buffers = kernel_buffers(x_seq, v0, v_reset, store_v_seq,
                                 training=any(ctx.needs_input_grad))
        if buffers.n > 0:
            backend.launch_forward(buffers, k, threshold, decay_input, v_reset is None,
                                   store_v_seq)
        save_for_kernel_backward(ctx, buffers.x, buffers.h_seq, buffers.v0, k, threshold,
                                 v_reset, decay_input, detach_reset, kind, alpha, store_v_seq)
        ctx.backend = backend
        return buffers.spikes, buffers.v_out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_spikes, grad_v):
        saved = kernel_backward_inputs(ctx)
        k = saved.k_tensor if saved.k_tensor is not None else ctx.k
        grad_x = step_buffer(saved.h_seq, training=True)
        # with no neurons (n = 0) both are empty: nothing to write
        grad_v0 = torch.empty_like(saved.h_seq[0]) if saved.want_v0 else None
        sum_k = None
        if saved.n > 0:
            sum_k = ctx.backend.launch_backward(saved, k, grad_spikes, grad_v, grad_x, grad_v0)
        grad_k = None
        if saved.want_k:
            k_tensor = saved.k_tensor
            total = sum_k if sum_k is not None else k_tensor.new_zeros(())
            grad_k = total.reshape(k_tensor.shape).to(k_tensor.dtype)
        return grad_x, grad_v0, grad_k, None, None, None, None, None, None, None, None


def check_sequence(x_seq: torch.Tensor, v0: torch.Tensor | None) -> torch.Tensor:
    """`x_seq` if it is [T, B, ...] and `v0` (if given) one step of it; else a ValueError."""
    if x_seq.dim() < 2:
        raise ValueError(
            f"multi-step neurons take [T, B, ...] tensors (time first); got shape "
            f"{tuple(x_seq.shape)}"
        )
    if v0 is not None and v0.shape != x_seq.shape[1:]:
        raise ValueError(
            f"initial membrane potential has shape {tuple(v0.shape)}, expected "
            f"{tuple(x_seq.shape[1:])} (one time step of the input)"
        )
    return x_seq


def lif_multistep(
    x_seq: torch.Tensor,
    v0: torch.Tensor | None = None,
    decay: Decay = 0.5,
    threshold: float = 1.0,
    v_reset: float | None = 0.0,
    decay_input: bool = True,
    detach_reset: bool = False,
    surrogate: str = "atan",
    alpha: float = 2.0,
    store_v_seq: bool = False,
    state_grid: StateGrid | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run T steps of the LIF neuron. `decay` = 1/tau, a float or a 0-dim tensor (learnable, as
    PLIF's sigmoid(w)). `v0` defaults to the resting potential (v_reset, or 0 for soft reset).
    `state_grid`: keep the membrane on that fixed-point grid (decay, v_reset and v0 are taken
    as given: the caller puts them on the grid).

    Returns (spikes [T, ...], v) with v the membrane potential after the last step, or after
    every step ([T, ...], after reset) when `store_v_seq`.

    Args:
        x_seq: the input current, a float tensor [T, B, ...] with time first (at least 2
            dimensions; a ValueError otherwise).
        v0: the membrane potential before the first step, one step of the input [B, ...];
            None (default): at rest.
        decay: k = 1 / tau, the share of the gap to rest (and of the input, with
            `decay_input`) taken each step. Default 0.5 (tau = 2).
        threshold: the firing threshold: a spike where h[t] >= threshold. Default 1.0.
        v_reset: the potential after a spike (hard reset) and the resting potential; None
            subtracts the threshold instead (soft reset, rest 0). Default 0.0.
        decay_input: scale the input by k too (h = v + k * (x - (v - r))); False adds it
            whole (h = v - k * (v - r) + x). Default True.
        detach_reset: treat the spike as a constant in the reset's backward. Default False.
        surrogate: the name of a registered surrogate ("atan" default; see
            spikequant.snn.surrogate.SURROGATES) whose derivative the backward pass uses;
            the forward pass is the Heaviside step whatever the surrogate.
        alpha: the surrogate's sharpness, used as given (not the record's default_alpha).
            Default 2.0 (atan's default).
        store_v_seq: return the membrane potential after every step instead of the last
            one. Default False.
        state_grid: a spikequant.snn.fixed_point.StateGrid for fixed-point state (the torch
            path then runs, with a straight-through backward); None (default): float state.
    """
    check_sequence(x_seq, v0)
    if v0 is None and v_reset:  # a nonzero resting potential enters h[0]
        v0 = torch.full_like(x_seq[0], v_reset)
    if isinstance(decay, torch.Tensor):
        decay = decay.to(x_seq.dtype)
    if use_triton(x_seq) and state_grid is None:  # fixed-point state: the reference path
        from . import kernels_triton  # imports triton: only where it runs

        args = (x_seq, v0, decay, float(threshold), v_reset, decay_input, detach_reset,
                surrogate, float(alpha), store_v_seq)
        # checked against this module's torch path on first use (spikequant.kernel_check)
        if kernels_triton.supports(surrogate) and kernels_triton.kernel_passes(*args):
            return kernels_triton.lif_multistep_triton(*args)
    elif state_grid is None and x_seq.device.type == "cpu":
        from . import cpu_kernel  # the compiled kernel; builds on first use

        if cpu_kernel.use_cpu_kernel(x_seq, v0, decay, surrogate):
            return cpu_kernel.lif_multistep_cpu(
                x_seq, v0, decay, float(threshold), v_reset, decay_input, detach_reset,
                surrogate, float(alpha), store_v_seq,
            )
    return _LIFMultiStep.apply(
        x_seq, v0, decay, float(threshold), v_reset, decay_input, detach_reset, surrogate,
        float(alpha), store_v_seq, state_grid,
    )
