"""The multi-step LIF / PLIF neuron as two Triton kernels: one launch runs all T steps forward,
one runs the backward through time.

Each program owns a block of neurons and walks the time axis with the membrane potential and
the backward carry in registers, so every [T, N] tensor is read or written exactly once a pass
(the torch implementation in `functional.py` launches 3-4 kernels per step). The dynamics,
options and saved state are those of `functional._LIFMultiStep`, which stays the reference:
the forward keeps the charged potentials h [T, N] (in the input's dtype; spikes are taken from
the stored value so that forward and backward agree in half precision) and the backward
recomputes spikes, surrogate and reset slopes from them. The decay gradient (PLIF) is summed
per program in float32 and the partial sums are added by torch, so it is deterministic. The
autograd Function is `functional.FusedLIFMultiStep`, with `TritonKernelBackend` launching
these kernels.

Used by `functional.lif_multistep` for CUDA tensors (see `spikequant._kernels`); runs on CPU
tensors under Triton's interpreter (TRITON_INTERPRET=1), which is how the tests check it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .functional import Decay, FusedLIFMultiStep, KernelBackwardInputs, KernelBuffers
from .surrogate import SurrogateKernel, kernel_code

BLOCK = 512
# the kernels' surrogate numbers, as compile-time constants of the kernels below
ATAN: tl.constexpr = tl.constexpr(int(SurrogateKernel.ATAN))
SIGMOID: tl.constexpr = tl.constexpr(int(SurrogateKernel.SIGMOID))
FAST_SIGMOID: tl.constexpr = tl.constexpr(int(SurrogateKernel.FAST_SIGMOID))


def supports(kind: str) -> bool:
    return kernel_code(kind) is not None


@triton.jit
def _surrogate_grad(x, alpha, KIND: tl.constexpr):
    # one branch a SurrogateKernel (the tests compare each with its record's derivative)
    if KIND == ATAN:
        z = 1.5707963267948966 * alpha * x  # pi / 2
        return (alpha * 0.5) / (1.0 + z * z)
    elif KIND == SIGMOID:
        s = tl.sigmoid(alpha * x)
        return alpha * s * (1.0 - s)
    elif KIND == FAST_SIGMOID:
        d = 1.0 + alpha * tl.abs(x)
        return (alpha * 0.5) / (d * d)
    else:  # TRIANGLE
        return alpha * tl.maximum(1.0 - alpha * tl.abs(x), 0.0)


@triton.jit
def _block(n, BLOCK_SIZE: tl.constexpr):
    """This program's neuron offsets and which of them exist."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    return offs, offs < n


@triton.jit
def _decay(k_ptr, k_value, K_FROM_PTR: tl.constexpr):
    """k = 1/tau: a learnable decay is read from memory, a fixed one is an argument."""
    k = k_value
    if K_FROM_PTR:
        k = tl.load(k_ptr).to(tl.float32)
    return k


@triton.jit
def _lif_forward_kernel(
    x_ptr, v0_ptr, k_ptr, h_ptr, s_ptr, v_ptr,
    n, steps, k_value, threshold, rest,
    HAS_V0: tl.constexpr, K_FROM_PTR: tl.constexpr, DECAY_INPUT: tl.constexpr,
    SOFT_RESET: tl.constexpr, STORE_V: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):
    offs, mask = _block(n, BLOCK_SIZE)
    k = _decay(k_ptr, k_value, K_FROM_PTR)
    retain = 1.0 - k
    if HAS_V0:
        v = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        v = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    for t in range(steps):
        x = tl.load(x_ptr + t * n + offs, mask=mask, other=0.0).to(tl.float32)
        if DECAY_INPUT:
            drive = (x + rest) * k
        else:
            drive = x + rest * k
        h = drive + v * retain
        h_stored = h.to(h_ptr.dtype.element_ty)
        tl.store(h_ptr + t * n + offs, h_stored, mask=mask)
        h = h_stored.to(tl.float32)
        fired = h >= threshold
        tl.store(s_ptr + t * n + offs, fired.to(s_ptr.dtype.element_ty), mask=mask)
        if SOFT_RESET:
            v = tl.where(fired, h - threshold, h)
        else:
            v = tl.where(fired, rest, h)
        if STORE_V:
            tl.store(v_ptr + t * n + offs, v.to(v_ptr.dtype.element_ty), mask=mask)
    if not STORE_V:
        tl.store(v_ptr + offs, v.to(v_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _lif_backward_kernel(
    grad_s_ptr, grad_v_ptr, h_ptr, x_ptr, v0_ptr, k_ptr,
    grad_x_ptr, grad_v0_ptr, grad_k_ptr,
    n, steps, k_value, threshold, rest, alpha,
    HAS_GRAD_V: tl.constexpr, HAS_V0: tl.constexpr, K_FROM_PTR: tl.constexpr,
    DECAY_INPUT: tl.constexpr, SOFT_RESET: tl.constexpr, DETACH_RESET: tl.constexpr,
    STORE_V: tl.constexpr, WANT_K: tl.constexpr, WANT_V0: tl.constexpr,
    SURROGATE: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):
    offs, mask = _block(n, BLOCK_SIZE)
    k = _decay(k_ptr, k_value, K_FROM_PTR)
    retain = 1.0 - k
    carry = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    if HAS_GRAD_V and not STORE_V:
        carry = tl.load(grad_v_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    grad_k = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    if HAS_V0:
        v_start = tl.load(v0_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    else:
        v_start = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    # each h[t] is read once: step t's h[t-1] is the next iteration's h
    h_next = tl.load(h_ptr + (steps - 1) * n + offs, mask=mask, other=0.0).to(tl.float32)
    for i in range(steps):
        t = steps - 1 - i
        h = h_next
        t_prev = tl.maximum(t - 1, 0)  # at t = 0 a harmless reread, replaced by v_start below
        h_next = tl.load(h_ptr + t_prev * n + offs, mask=mask, other=0.0).to(tl.float32)
        fired = h >= threshold
        sg = _surrogate_grad(h - threshold, alpha, SURROGATE)
        grad_h = sg * tl.load(grad_s_ptr + t * n + offs, mask=mask, other=0.0).to(tl.float32)
        if HAS_GRAD_V and STORE_V:
            carry += tl.load(grad_v_ptr + t * n + offs, mask=mask, other=0.0).to(tl.float32)
        if not DETACH_RESET:
            if SOFT_RESET:
                grad_h += carry * (1.0 - threshold * sg)
            else:
                grad_h += carry * ((rest - h) * sg + tl.where(fired, 0.0, 1.0))
        elif SOFT_RESET:
            grad_h += carry
        else:
            grad_h += tl.where(fired, 0.0, carry)
        if WANT_K:
            # dh[t]/dk = (x[t] +) r - v[t-1], v[t-1] rebuilt from h[t-1] (v0 or rest at t = 0)
            if SOFT_RESET:
                v_prev = tl.where(h_next >= threshold, h_next - threshold, h_next)
            else:
                v_prev = tl.where(h_next >= threshold, rest, h_next)
            v_prev = tl.where(t > 0, v_prev, v_start)
            slope = rest - v_prev
            if DECAY_INPUT:
                slope += tl.load(x_ptr + t * n + offs, mask=mask, other=0.0).to(tl.float32)
            grad_k += tl.where(mask, grad_h * slope, 0.0)
        carry = grad_h * retain
        if DECAY_INPUT:
            grad_x = grad_h * k
        else:
            grad_x = grad_h
        tl.store(grad_x_ptr + t * n + offs, grad_x.to(grad_x_ptr.dtype.element_ty), mask=mask)
    if WANT_V0:
        tl.store(grad_v0_ptr + offs, carry.to(grad_v0_ptr.dtype.element_ty), mask=mask)
    if WANT_K:
        tl.store(grad_k_ptr + tl.program_id(0), tl.sum(grad_k, axis=0))


def _grid(n: int) -> tuple[int]:
    return (triton.cdiv(n, BLOCK),)


def _decay_args(k: float | torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, float, bool]:
    if isinstance(k, torch.Tensor):
        return k.reshape(1), 0.0, True
    return like, float(k), False  # the pointer is never read when K_FROM_PTR is False


class TritonKernelBackend:
    """`functional.FusedLIFMultiStep`'s launches on the Triton kernels above."""

    def launch_forward(self, buffers: KernelBuffers, k: Decay, threshold: float,
                       decay_input: bool, soft_reset: bool, store_v: bool) -> None:
        """`_lif_forward_kernel`, one program a block of neurons."""
        x, v0 = buffers.x, buffers.v0
        k_ptr, k_value, k_from_ptr = _decay_args(k, x)
        _lif_forward_kernel[_grid(buffers.n)](
            x, v0 if v0 is not None else x, k_ptr, buffers.h_seq, buffers.spikes, buffers.v_out,
            buffers.n, buffers.steps, k_value, float(threshold), buffers.rest,
            HAS_V0=v0 is not None, K_FROM_PTR=k_from_ptr, DECAY_INPUT=decay_input,
            SOFT_RESET=soft_reset, STORE_V=store_v, BLOCK_SIZE=BLOCK,
        )

    def launch_backward(self, saved: KernelBackwardInputs, k: Decay,
                        grad_spikes: torch.Tensor | None, grad_v: torch.Tensor | None,
                        grad_x: torch.Tensor, grad_v0: torch.Tensor | None
                        ) -> torch.Tensor | None:
        """`_lif_backward_kernel`; each program's part of the decay gradient in its own float32
        slot, the slots added by torch."""
        h_seq = saved.h_seq  # also the pointer of every absent tensor: never read
        grad_s = grad_spikes.contiguous() if grad_spikes is not None else torch.zeros_like(h_seq)
        blocks = _grid(saved.n)[0]
        partial_k = torch.empty(blocks, dtype=torch.float32, device=h_seq.device)
        k_ptr, k_value, k_from_ptr = _decay_args(k, h_seq)
        _lif_backward_kernel[(blocks,)](
            grad_s, grad_v.contiguous() if grad_v is not None else h_seq, h_seq,
            saved.x_saved if saved.x_saved is not None else h_seq,
            saved.v0 if saved.v0 is not None else h_seq,
            k_ptr, grad_x, grad_v0 if grad_v0 is not None else h_seq, partial_k,
            saved.n, saved.steps, k_value, saved.threshold, saved.rest, saved.alpha,
            HAS_GRAD_V=grad_v is not None, HAS_V0=saved.v0 is not None, K_FROM_PTR=k_from_ptr,
            DECAY_INPUT=saved.decay_input, SOFT_RESET=saved.soft, DETACH_RESET=saved.detach,
            STORE_V=saved.store_v, WANT_K=saved.want_k, WANT_V0=saved.want_v0,
            SURROGATE=kernel_code(saved.kind), BLOCK_SIZE=BLOCK,
        )
        return partial_k.sum() if saved.want_k else None


TRITON_BACKEND = TritonKernelBackend()


class _LIFMultiStepTriton(FusedLIFMultiStep):
    """`functional._LIFMultiStep` with the same arguments and results, in two kernel launches."""


def lif_multistep_triton(x_seq, v0, k, threshold, v_reset, decay_input, detach_reset, kind,
                         alpha, store_v_seq):
    """The arguments of `functional._LIFMultiStep.apply`, run by the Triton kernels."""
    return _LIFMultiStepTriton.apply(x_seq, v0, k, threshold, v_reset, decay_input,
                                     detach_reset, kind, alpha, store_v_seq, TRITON_BACKEND)


NAME = "LIF neuron"


def _reference(x_seq, v0, k, threshold, v_reset, decay_input, detach_reset, kind, alpha,
               store_v_seq):
    from .functional import _LIFMultiStep

    return _LIFMultiStep.apply(x_seq, v0, k, threshold, v_reset, decay_input, detach_reset,
                               kind, alpha, store_v_seq, None)


def kernel_passes(x_seq, v0, k, threshold, v_reset, decay_input, detach_reset, kind, alpha,
                  store_v_seq) -> bool:
    """Whether the kernels may run these arguments of `lif_multistep_triton`: the first time
    a shape class is seen on a device they are checked against `functional._LIFMultiStep` on
    a slice of the neurons (and of the time steps; see spikequant.kernel_check)."""
    from .. import kernel_check as kc

    steps, n = x_seq.shape[0], x_seq[0].numel()
    tensor_k = isinstance(k, torch.Tensor)
    shape_class = (
        f"{str(x_seq.dtype).removeprefix('torch.')}, steps {kc.size_class(steps)}, neurons "
        f"{kc.size_class(n)}, {'v0' if v0 is not None else 'at rest'}, "
        f"{'learned' if tensor_k else 'fixed'} decay, "
        f"{'soft' if v_reset is None else 'hard'} reset, decay_input={decay_input}, "
        f"detach_reset={detach_reset}, {kind}, store_v_seq={store_v_seq}")

    def slice_args():
        t, m = kc.slice_size(steps, 16), kc.slice_size(n)
        x = x_seq.detach().reshape(steps, n)[:t, :m]
        v = v0.detach().reshape(n)[:m] if v0 is not None else None
        kk = k.detach() if tensor_k else k
        return (x, v, kk, threshold, v_reset, decay_input, detach_reset, kind, alpha,
                store_v_seq)

    diff = (0,) + ((1,) if v0 is not None else ()) + ((2,) if tensor_k else ())
    return kc.kernel_passes(NAME, x_seq.device, shape_class, lif_multistep_triton, _reference,
                            slice_args, diff)
