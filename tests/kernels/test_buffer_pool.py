"""The pool of large CPU output buffers (spikequant._buffer_pool): a buffer is lent again only
once nothing can read it any more (no tensor, view, saved tensor or .grad over it), reuse
keeps the same memory, and the binary quantizer's kernel gives the same values and gradients
step after step while taking its outputs from it."""

from __future__ import annotations

import gc

import pytest
import torch

from spikequant._buffer_pool import BufferPool
from spikequant.quant import SigmoidQuantizer
from spikequant.quant.cpu_kernel import KERNEL

SHAPE = (4, 8)


def _slot(pool: BufferPool):
    (slot,) = pool._slots[(SHAPE, torch.float32)]
    return slot


def test_a_buffer_is_lent_again_only_when_every_tensor_over_it_is_gone():
    pool = BufferPool(min_bytes=0)
    a = pool.empty(SHAPE).fill_(1.0)
    first = a.data_ptr()
    view = a[1:].view(-1)
    del a
    gc.collect()
    b = pool.empty(SHAPE)  # the first is still read through `view`: another buffer
    second = b.data_ptr()
    assert second != first
    b.fill_(5.0)
    assert torch.equal(view, torch.ones(24))
    del view, b
    gc.collect()
    c, d = pool.empty(SHAPE), pool.empty(SHAPE)
    assert {c.data_ptr(), d.data_ptr()} == {first, second}
    assert len(pool._slots[(SHAPE, torch.float32)]) == 2  # nothing new allocated


def test_a_tensor_autograd_saved_keeps_its_buffer():
    pool = BufferPool(min_bytes=0)

    class Double(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            q = pool.empty(x.shape)
            q.copy_(x * 2)
            ctx.save_for_backward(q)
            return q

        @staticmethod
        def backward(ctx, g):
            (q,) = ctx.saved_tensors
            return g * q

    x = torch.ones(SHAPE, requires_grad=True)
    total = Double.apply(x).sum()
    gc.collect()
    assert not _slot(pool).free()
    other = pool.empty(SHAPE).fill_(-7.0)  # must not be the saved one
    total.backward()
    assert torch.equal(x.grad, torch.full(SHAPE, 2.0))
    del total, other
    gc.collect()
    assert all(s.free() for s in pool._slots[(SHAPE, torch.float32)])


def test_small_requests_and_a_full_pool_fall_back_to_torch_empty():
    pool = BufferPool(per_shape=1, min_bytes=1 << 20)
    assert pool.empty(SHAPE).shape == SHAPE
    assert pool.held_bytes() == 0  # under min_bytes: not pooled
    big = (512, 1024)
    first, second = pool.empty(big), pool.empty(big)
    assert first.shape == second.shape == big
    assert pool.held_bytes() == 512 * 1024 * 4  # the second came from torch.empty


@pytest.mark.skipif(KERNEL.unavailable_reason() is not None, reason="no C kernel here")
def test_the_binary_kernel_never_writes_over_an_output_still_in_use():
    torch.manual_seed(0)
    w0 = torch.randn(1024, 1100)  # 4.5 MB: above the pool's threshold
    q = SigmoidQuantizer(torch.tensor([-1.0, 1.0]), temperature=5.0)
    q.train()
    weight = torch.linspace(-1, 1, w0.numel()).view_as(w0)
    w1 = w0.clone().requires_grad_()
    out1 = q(w1)  # alive, with its graph, while the next two run
    kept = out1.detach().clone()
    steps = []
    for _ in range(2):
        w = w0.clone().requires_grad_()
        out = q(w)
        (out * weight).sum().backward()
        steps.append((out.detach().clone(), w.grad.clone()))
        del out
    assert torch.equal(out1, kept)
    (out1 * weight).sum().backward()
    assert torch.equal(out1.detach(), steps[0][0]) and torch.equal(w1.grad, steps[0][1])
    assert torch.equal(steps[0][0], steps[1][0]) and torch.equal(steps[0][1], steps[1][1])
