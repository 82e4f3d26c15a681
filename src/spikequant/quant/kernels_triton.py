"""The sigmoid quantizer as two Triton kernels: one pass forward, one pass backward.

    Q(w) = alpha * ( sum_i s_i * sigmoid(T * (beta * w - b_i)) + q_0 )

The weight is viewed as [C, K]: one row per output channel with per-channel scales, a single
row with per-tensor ones. The forward reads w and writes Q(w), nothing else: no sigmoid is
saved. The backward reads w and the incoming gradient once, recomputes the sigmoids, writes
the weight gradient and sums the alpha and beta gradients of its block in float32 (one partial
sum per program, added by torch: deterministic). Binary (one step) and multi-level (a loop over
the steps inside the kernel, so memory stays O(|w|) at 8 bits) share the code.

Gradients, with x = beta * w and sigma_i = sigmoid(T * (x - b_i)):

    dQ/dw     = alpha * beta * T * sum_i s_i sigma_i (1 - sigma_i)
    dQ/dalpha = sum_i s_i sigma_i + q_0
    dQ/dbeta  = alpha * w * T * sum_i s_i sigma_i (1 - sigma_i)

With the reference gradient (Quantization Networks' code) the slope uses the T = 1 sigmoids
sigmoid(x - b_i) and is still scaled by T; the forward is unchanged.

The `triton` backend of sigmoid_backends.py, for CUDA weights (see `spikequant._kernels`); the
torch backends are the reference, and the tests run these kernels on CPU tensors
under Triton's interpreter.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .sigmoid_backends import SigmoidArgs

BLOCK = 1024


@triton.jit
def _row_block(w_ptr, alpha_ptr, beta_ptr, t_ptr, row_len, blocks_per_row,
               BLOCK_SIZE: tl.constexpr):
    """This program's block of one weight row: offsets, mask, weights, the row's alpha and
    beta, and the temperature."""
    # one flat grid (rows x blocks_per_row): a second grid axis would cap a row at 65535 blocks
    slot = tl.program_id(0)
    row = slot // blocks_per_row
    cols = (slot % blocks_per_row).to(tl.int64) * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = cols < row_len
    offs = row.to(tl.int64) * row_len + cols
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    alpha = tl.load(alpha_ptr + row).to(tl.float32)
    beta = tl.load(beta_ptr + row).to(tl.float32)
    t = tl.load(t_ptr).to(tl.float32)
    return offs, mask, w, alpha, beta, t


@triton.jit
def _quantize_forward_kernel(
    w_ptr, alpha_ptr, beta_ptr, b_ptr, s_ptr, t_ptr, q0_ptr, out_ptr,
    row_len, steps, blocks_per_row,
    BLOCK_SIZE: tl.constexpr,
):
    offs, mask, w, alpha, beta, t = _row_block(w_ptr, alpha_ptr, beta_ptr, t_ptr, row_len,
                                               blocks_per_row, BLOCK_SIZE)
    x = beta * w
    soft = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    for i in range(steps):
        b = tl.load(b_ptr + i).to(tl.float32)
        s = tl.load(s_ptr + i).to(tl.float32)
        soft += s * tl.sigmoid(t * (x - b))
    q0 = tl.load(q0_ptr).to(tl.float32)
    tl.store(out_ptr + offs, (alpha * (soft + q0)).to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _quantize_backward_kernel(
    grad_ptr, w_ptr, alpha_ptr, beta_ptr, b_ptr, s_ptr, t_ptr, q0_ptr,
    grad_w_ptr, partial_alpha_ptr, partial_beta_ptr,
    row_len, steps, blocks_per_row,
    REFERENCE: tl.constexpr, BLOCK_SIZE: tl.constexpr,
):
    slot = tl.program_id(0)
    offs, mask, w, alpha, beta, t = _row_block(w_ptr, alpha_ptr, beta_ptr, t_ptr, row_len,
                                               blocks_per_row, BLOCK_SIZE)
    g = tl.load(grad_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    x = beta * w
    soft = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    slope = tl.zeros([BLOCK_SIZE], dtype=tl.float32)
    for i in range(steps):
        b = tl.load(b_ptr + i).to(tl.float32)
        s = tl.load(s_ptr + i).to(tl.float32)
        sig = tl.sigmoid(t * (x - b))
        soft += s * sig
        if REFERENCE:
            sig = tl.sigmoid(x - b)
        slope += s * sig * (1.0 - sig)
    q0 = tl.load(q0_ptr).to(tl.float32)
    grad_x = g * (alpha * t) * slope  # d loss / d(beta * w)
    tl.store(grad_w_ptr + offs, (grad_x * beta).to(grad_w_ptr.dtype.element_ty), mask=mask)
    tl.store(partial_alpha_ptr + slot, tl.sum(tl.where(mask, g * (soft + q0), 0.0), axis=0))
    tl.store(partial_beta_ptr + slot, tl.sum(tl.where(mask, grad_x * w, 0.0), axis=0))


def _rows(w: torch.Tensor, scale: torch.Tensor) -> tuple[int, int]:
    rows = scale.numel()
    if rows < 1 or w.numel() % rows:
        raise ValueError(f"{rows} scales do not divide a weight of shape {tuple(w.shape)} into "
                         "equal rows (one scale per output channel, or one per tensor)")
    return rows, w.numel() // rows


class _SigmoidQuantizeTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, alpha, beta, positions, heights, temperature, q0, reference):
        w_c = w.contiguous()
        rows, row_len = _rows(w_c, alpha)
        b = positions.reshape(-1).contiguous()
        s = heights.reshape(-1).contiguous()
        out = torch.empty_like(w_c)
        blocks = triton.cdiv(row_len, BLOCK)
        if w_c.numel():
            _quantize_forward_kernel[(rows * blocks,)](
                w_c, alpha.reshape(-1).contiguous(), beta.reshape(-1).contiguous(), b, s,
                temperature.reshape(1), q0.reshape(1), out, row_len, b.numel(), blocks,
                BLOCK_SIZE=BLOCK,
            )
        ctx.save_for_backward(w_c, alpha, beta, b, s, temperature, q0)
        ctx.reference = bool(reference)
        return out

    @staticmethod
    def backward(ctx, grad):
        w, alpha, beta, b, s, temperature, q0 = ctx.saved_tensors
        grad = grad.contiguous()
        rows, row_len = _rows(w, alpha)
        blocks = triton.cdiv(row_len, BLOCK)
        grad_w = torch.empty_like(w)
        partial_alpha = torch.zeros(rows, max(blocks, 1), dtype=torch.float32, device=w.device)
        partial_beta = torch.zeros_like(partial_alpha)
        if w.numel():
            _quantize_backward_kernel[(rows * blocks,)](
                grad, w, alpha.reshape(-1).contiguous(), beta.reshape(-1).contiguous(), b, s,
                temperature.reshape(1), q0.reshape(1), grad_w, partial_alpha, partial_beta,
                row_len, b.numel(), max(blocks, 1), REFERENCE=ctx.reference, BLOCK_SIZE=BLOCK,
            )
        grad_alpha = grad_beta = None
        if ctx.needs_input_grad[1]:
            grad_alpha = partial_alpha.sum(1).reshape(alpha.shape).to(alpha.dtype)
        if ctx.needs_input_grad[2]:
            grad_beta = partial_beta.sum(1).reshape(beta.shape).to(beta.dtype)
        return grad_w, grad_alpha, grad_beta, None, None, None, None, None


def sigmoid_quantize_triton(w: torch.Tensor, args: SigmoidArgs) -> torch.Tensor:
    """The `triton` backend of sigmoid_backends.py: Q(w) in training mode, differentiable in
    w, alpha and beta (alpha and beta: one value, or one per output channel)."""
    dt = w.dtype
    return _SigmoidQuantizeTriton.apply(
        w, args.alpha.to(dt), args.beta.to(dt), args.positions.to(dt), args.heights.to(dt),
        args.temperature.to(dt), args.q0.to(dt), args.reference_gradient,
    )


NAME = "sigmoid quantizer"


def sigmoid_quantize_reference(w: torch.Tensor, args: SigmoidArgs) -> torch.Tensor:
    """`sigmoid_quantize_triton` written with plain torch autograd ops: the reference of the
    first-use self-check (spikequant.kernel_check), differentiated by autograd itself.
    Memory grows with the number of steps, so it is meant for the check's small slices."""
    alpha, beta = args.alpha, args.beta
    shape = (alpha.numel(),) + (1,) * (w.dim() - 1) if alpha.numel() > 1 else ()
    x = beta.reshape(shape) * w
    t = args.temperature.detach()
    soft = torch.zeros_like(x)
    for b, s in zip(args.positions.reshape(-1), args.heights.reshape(-1)):
        sig = torch.sigmoid(t * (x - b))
        if args.reference_gradient:  # the slope of the T = 1 sigmoid, scaled by T
            sig1 = torch.sigmoid(x - b)
            sig = sig.detach() + t * (sig1 - sig1.detach())
        soft = soft + s * sig
    return alpha.reshape(shape) * (soft + args.q0)


def _positional(fn_name: str):
    """kernel_check passes arguments by position (the gradients it compares are of positions
    0-2: w, alpha, beta): `fn(w, SigmoidArgs(...))` looked up when called."""
    def call(w, *fields):
        return globals()[fn_name](w, SigmoidArgs(*fields))
    return call


def kernel_passes(w: torch.Tensor, args: SigmoidArgs) -> bool:
    """Whether the kernels may quantize `w` with `args`: the first time a shape class is seen
    on a device the kernels are checked against `sigmoid_quantize_reference` on a slice of w
    (at most 4 rows; see kernel_check)."""
    from .. import kernel_check as kc

    rows = max(args.alpha.numel(), 1)
    row_len, steps = w.numel() // rows, args.positions.numel()
    shape_class = (f"{str(w.dtype).removeprefix('torch.')}, {steps} step(s), row length "
                   f"{kc.size_class(row_len)}, "
                   f"{'reference' if args.reference_gradient else 'exact'} gradient")

    def slice_args():
        keep = min(rows, 4)
        part = w.detach().reshape(rows, row_len)[:keep, :kc.slice_size(row_len)]
        scale = (lambda p: p.detach().reshape(-1)[:keep]) if rows > 1 else (
            lambda p: p.detach())
        return (part, scale(args.alpha), scale(args.beta), *args.as_tuple()[2:])

    return kc.kernel_passes(NAME, w.device, shape_class, _positional("sigmoid_quantize_triton"),
                            _positional("sigmoid_quantize_reference"), slice_args,
                            diff=(0, 1, 2))
