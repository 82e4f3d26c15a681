"""The sigmoid quantizer's one dispatcher (quant/sigmoid_backends.py): which backend it picks,
and that every CPU backend computes the same function and gradients from the same
SigmoidArgs. (The Triton backend is checked in test_kernels_triton.py under the interpreter.)"""

from __future__ import annotations

import pytest
import torch

from _helpers import HAS_CC
from spikequant._kernels import use_kernels
from spikequant.quant import make_quantizer
from spikequant.quant.sigmoid_backends import (
    BACKENDS,
    SigmoidArgs,
    backend_for,
    sigmoid_quantize,
)


def _quantizer(bits, per_channel):
    q = make_quantizer("sigmoid", bits=bits, per_channel=per_channel, temperature=8.0)
    w = torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(bits)) * 0.3
    q.reset(w)
    q.train()
    return q, w


@pytest.mark.parametrize("bits, expected", [(1, "c-binary"), (2, "c-multilevel"),
                                            (4, "c-multilevel")])
def test_the_dispatcher_picks_the_kernel_on_cpu_float32_and_torch_otherwise(bits, expected):
    q, w = _quantizer(bits, False)
    args = q.sigmoid_args()
    assert backend_for(w, args) == (expected if HAS_CC else
                                    "torch-binary" if bits == 1 else "torch")
    with use_kernels("torch"):
        assert backend_for(w, args) == ("torch-binary" if bits == 1 else "torch")
    assert backend_for(w.double(), args) == ("torch-binary" if bits == 1 else "torch")


def _run(w, args, backend):
    wi = w.clone().requires_grad_()
    alpha = args.alpha.detach().clone().requires_grad_()
    beta = args.beta.detach().clone().requires_grad_()
    fields = args.as_tuple()
    out = sigmoid_quantize(wi, SigmoidArgs(alpha, beta, *fields[2:]), backend=backend)
    grad_out = torch.randn(w.shape, generator=torch.Generator().manual_seed(9))
    (out * grad_out).sum().backward()
    return out.detach(), wi.grad, alpha.grad, beta.grad


@pytest.mark.parametrize("bits", [1, 2, 3])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("gradient", ["exact", "reference"])
def test_every_cpu_backend_computes_the_same(bits, per_channel, gradient):
    q, w = _quantizer(bits, per_channel)
    q.gradient = gradient
    args = q.sigmoid_args()
    names = ["torch"] + (["torch-binary", "c-binary"] if bits == 1 else ["c-multilevel"])
    if not HAS_CC:
        names = [n for n in names if not n.startswith("c-")]
    want = _run(w, args, "torch")  # the staircase in torch ops: any number of steps
    for name in names[1:]:
        got = _run(w, args, name)
        for what, g, e in zip(("Q(w)", "grad w", "grad alpha", "grad beta"), got, want):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5,
                                       msg=lambda m, what=what, name=name: f"{name} {what}: {m}")


def test_an_unknown_backend_is_named_in_the_error():
    q, w = _quantizer(1, False)
    with pytest.raises(ValueError, match="unknown sigmoid backend 'cuda'.*c-binary"):
        sigmoid_quantize(w, q.sigmoid_args(), backend="cuda")
    assert len(set(BACKENDS)) == 5
