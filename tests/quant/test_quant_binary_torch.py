"""The binary sigmoid quantizer's CPU path (quant/binary_torch.py) against the formula
differentiated by autograd in float64: output and the gradients of w, alpha and beta, per tensor
and per channel, exact and reference gradient, and where alpha is 0."""

from __future__ import annotations

import pytest
import torch

from spikequant.quant.binary_torch import binary_sigmoid
from spikequant.quant.sigmoid_backends import SigmoidArgs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _by_autograd(w, alpha, beta, b, s, t, q0, grad_out, reference):
    """Output and gradients of the composed formula in float64. The reference gradient is the
    exact one of a function whose sigmoid slope is the T = 1 one scaled by T."""
    w, alpha, beta = (v.detach().double().requires_grad_() for v in (w, alpha, beta))
    view = (-1,) + (1,) * (w.dim() - 1)
    a = alpha.reshape(view) if alpha.dim() else alpha
    bt = beta.reshape(view) if beta.dim() else beta
    x = bt * w
    sig = torch.sigmoid(t * (x - b))
    if reference:  # value of sig, slope of T * sigmoid(x - b) / ... : swap the derivative in
        sig1 = torch.sigmoid(x - b)
        slope_part = (t * sig1 * (1 - sig1)).detach()
        sig = sig.detach() + slope_part * (x - x.detach())
    out = a * (s * sig + q0)
    (out * grad_out.double()).sum().backward()
    return out.detach(), w.grad, alpha.grad, beta.grad


CASES = [(pc, ref) for pc in (False, True) for ref in (False, True)]


@pytest.mark.parametrize("per_channel,reference", CASES)
def test_binary_sigmoid_matches_the_formula(per_channel, reference):
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, 5, 5, generator=gen) * 0.3
    grad_out = torch.randn(w.shape, generator=gen)
    shape = (4,) if per_channel else ()
    alpha = (torch.rand(shape, generator=gen) + 0.5).requires_grad_()
    beta = (torch.rand(shape, generator=gen) * 3 + 1).requires_grad_()
    b, s, t, q0 = torch.tensor(0.1), torch.tensor(2.0), torch.tensor(4.0), torch.tensor(-1.0)
    wi = w.clone().requires_grad_()
    out = binary_sigmoid(wi, SigmoidArgs(alpha, beta, b, s, t, q0, reference))
    (out * grad_out).sum().backward()
    want = _by_autograd(w, alpha, beta, 0.1, 2.0, 4.0, -1.0, grad_out, reference)
    for what, got, expected in zip(("Q(w)", "grad w", "grad alpha", "grad beta"),
                                   (out.detach(), wi.grad, alpha.grad, beta.grad), want):
        assert got.shape == expected.shape, what
        # float32 against float64: 1 - sigma loses digits where sigma is near 1
        torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5,
                                   msg=lambda m, what=what: f"{what}: {m}")


def test_alpha_zero_still_gets_its_gradient():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(3, 8, generator=gen)
    grad_out = torch.randn(w.shape, generator=gen)
    alpha = torch.tensor([0.5, 0.0, 1.0], requires_grad=True)  # one channel at 0
    beta = torch.ones(3, requires_grad=True)
    b, s, t, q0 = torch.tensor(0.0), torch.tensor(2.0), torch.tensor(1.0), torch.tensor(-1.0)
    (binary_sigmoid(w, SigmoidArgs(alpha, beta, b, s, t, q0)) * grad_out).sum().backward()
    want = _by_autograd(w, alpha, beta, 0.0, 2.0, 1.0, -1.0, grad_out, False)[2]
    assert torch.isfinite(alpha.grad).all()
    torch.testing.assert_close(alpha.grad.double(), want, rtol=1e-5, atol=1e-6)
