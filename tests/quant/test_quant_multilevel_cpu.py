"""The compiled CPU kernel of the multi-level (2- to 8-bit) sigmoid quantizer
(quant/multilevel_cpu.py) against the quantizer's torch path (SPIKEQUANT_KERNELS=torch): values
and the gradients of w, alpha and beta, per tensor and per channel, exact and reference
gradient, low to high temperature, saturated weights, alpha = 0, split over threads; that the
quantizer uses it where it should and only there."""

from __future__ import annotations

import pytest
import torch

from _helpers import HAS_CC
from spikequant import _cpu_kernels
from spikequant._kernels import use_kernels
from spikequant.quant import SigmoidQuantizer, quantize_model, symmetric_levels
from spikequant.quant.multilevel_cpu import (
    multilevel_sigmoid_cpu,
    one_exp_tables,
    unavailable_reason,
    use_multilevel_cpu,
)
from spikequant.quant.sigmoid_backends import SigmoidArgs

needs_kernel = pytest.mark.skipif(not HAS_CC, reason="no C compiler: the torch path runs "
                                  "(test_the_kernel_builds_where_there_is_a_compiler checks)")
KERNEL_BACKWARD = "_MultilevelSigmoidCPUBackward"


def test_the_kernel_builds_where_there_is_a_compiler():
    reason = unavailable_reason()
    if HAS_CC:
        assert reason is None
    else:
        assert "C compiler" in reason
        assert not use_multilevel_cpu(torch.zeros(3), torch.tensor([-0.5, 0.5]))


def _quantizer(bits, reference, per_channel, temperature, w):
    q = SigmoidQuantizer(symmetric_levels(bits), temperature=temperature,
                         per_channel=per_channel,
                         gradient="reference" if reference else "exact")
    q.init_from_weight(w)
    q.train()
    return q


def _run(q, w, grad_out, mode):
    """Q(w) and the gradients of w, alpha and beta under kernel mode `mode`."""
    q.zero_grad(set_to_none=True)
    wi = w.clone().requires_grad_()
    with use_kernels(mode):
        out = q(wi)
    backend = type(out.grad_fn).__name__
    (out * grad_out).sum().backward()
    return backend, (out.detach(), wi.grad, q.alpha.grad, q.beta.grad)


def _reference(q, w, grad_out):
    """The torch path in float32 and in float64 (the truth both are measured against)."""
    _, in_float = _run(q, w, grad_out, "torch")
    q64 = SigmoidQuantizer(q.levels.double(), temperature=float(q.temperature),
                           per_channel=q.per_channel, gradient=q.gradient)
    q64.load_state_dict(q.state_dict())
    q64.double().train()
    _, in_double = _run(q64, w.double(), grad_out.double(), "torch")
    return in_float, in_double


def _assert_same(got, in_float, in_double, atol=2e-5):
    """The kernel is as close to the float64 result as the float32 torch path is (a sum that
    cancels, such as a per-tensor beta's gradient, loses digits either way), and within
    `atol` of the largest value otherwise."""
    for what, g, f, d in zip(("Q(w)", "grad w", "grad alpha", "grad beta"), got, in_float,
                             in_double):
        assert g.shape == f.shape and g.dtype == f.dtype, what
        assert torch.isfinite(g).all(), what
        scale = d.abs().max().clamp_min(1e-12)
        kernel_error = float((g.double() - d).abs().max() / scale)
        torch_error = float((f.double() - d).abs().max() / scale)
        assert kernel_error <= max(atol, 2 * torch_error), (
            f"{what}: kernel off by {kernel_error:.2e} of the largest value, torch ops "
            f"{torch_error:.2e}")


@needs_kernel
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("reference", [True, False])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("temperature", [1.0, 40.0, 1000.0])
def test_same_values_and_gradients_as_the_torch_path(bits, reference, per_channel,
                                                     temperature, monkeypatch):
    monkeypatch.setattr(_cpu_kernels, "PARALLEL_MIN", 1000)  # several threads even when small
    gen = torch.Generator().manual_seed(bits * 100 + int(temperature))
    w = torch.randn(24, 6, 3, 3, generator=gen) * 0.2
    grad_out = torch.randn(w.shape, generator=gen)
    q = _quantizer(bits, reference, per_channel, temperature, w)
    backend, got = _run(q, w, grad_out, "auto")
    assert backend == KERNEL_BACKWARD
    backend, _ = _run(q, w, grad_out, "torch")
    assert backend != KERNEL_BACKWARD
    _assert_same(got, *_reference(q, w, grad_out))


@needs_kernel
@pytest.mark.parametrize("reference", [True, False])
def test_weights_far_outside_the_levels_saturate(reference):
    """exp(-x) * exp(b_i) for |x| in the hundreds is clamped, never 0 * inf: the sigmoids end
    at 0 or 1 and the gradient stays finite."""
    w = torch.tensor([[-300.0, -5.0, -0.01, 0.0, 0.02, 7.0, 500.0, 1e4]])
    grad_out = torch.ones_like(w)
    q = _quantizer(2, reference, False, 200.0, torch.tensor([[-1.0, 1.0]]))
    _, got = _run(q, w, grad_out, "auto")
    _assert_same(got, *_reference(q, w, grad_out))
    levels = q.alpha.detach() * q.levels
    assert torch.allclose(got[0][0, [0, -1]], levels[[0, -1]])


@needs_kernel
@pytest.mark.parametrize("reference", [True, False])
def test_an_alpha_of_zero(reference):
    """alpha's gradient is read off Q(w) / alpha; a channel at alpha = 0 recomputes the soft
    staircase instead of dividing by zero."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(3, 40, generator=gen) * 0.3
    grad_out = torch.randn(w.shape, generator=gen)
    q = _quantizer(4, reference, True, 5.0, w)
    with torch.no_grad():
        q.alpha[1] = 0.0
    _, got = _run(q, w, grad_out, "auto")
    assert got[2][1] != 0
    _assert_same(got, *_reference(q, w, grad_out))


@needs_kernel
def test_threads_split_the_work_deterministically(monkeypatch):
    monkeypatch.setattr(_cpu_kernels, "PARALLEL_MIN", 1000)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert _cpu_kernels.parts(40_000) == 2
        gen = torch.Generator().manual_seed(4)
        w, g = torch.randn(200, 200, generator=gen) * 0.1, torch.randn(200, 200, generator=gen)
        q = _quantizer(4, True, False, 20.0, w)
        runs = [_run(q, w, g, "auto")[1] for _ in range(3)]
    finally:
        torch.set_num_threads(before)
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            assert torch.equal(a, b)


@needs_kernel
def test_the_quantizer_uses_it_only_for_multilevel_cpu_float32():
    w = torch.randn(16, 32) * 0.1
    two_bit = _quantizer(2, True, False, 5.0, w)
    assert type(two_bit(w.requires_grad_()).grad_fn).__name__ == KERNEL_BACKWARD
    assert use_multilevel_cpu(w, two_bit.positions)
    binary = _quantizer(1, True, False, 5.0, w)  # binary has its own kernel
    assert not use_multilevel_cpu(w, binary.positions)
    assert type(binary(w).grad_fn).__name__ != KERNEL_BACKWARD
    assert type(two_bit.double()(w.double()).grad_fn).__name__ != KERNEL_BACKWARD


@needs_kernel
def test_a_training_step_is_the_same_either_way():
    """One step of a 4-bit network: loss and every gradient agree with the torch path."""
    torch.manual_seed(5)
    model = quantize_model(torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(),
                                               torch.nn.Linear(32, 4)), "sigmoid", bits=4)
    x = torch.randn(16, 64)
    grads = []
    for mode in ("auto", "torch"):
        model.zero_grad(set_to_none=True)
        with use_kernels(mode):
            model(x).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@needs_kernel
def test_the_direct_call_refuses_a_temperature_that_is_not_finite():
    w = torch.randn(4, 4)
    with pytest.raises(ValueError, match="temperature"):
        multilevel_sigmoid_cpu(w, SigmoidArgs(torch.tensor(1.0), torch.tensor(1.0),
                                              torch.tensor([-0.5, 0.5]),
                                              torch.tensor([1.0, 1.0]),
                                              torch.tensor(float("inf")), torch.tensor(-1.0)))


@pytest.mark.parametrize("bits, temperature, reference, tables", [
    (4, 1.0, True, (True, True)),     # 4 bits: positions within 6.5, T = 1
    (4, 40.0, True, (True, False)),   # T * 6.5 > 40: one exp a step at T
    (4, 40.0, False, (False, False)),  # the exact gradient needs no T = 1 sigmoids
    (8, 1.0, True, (False, False)),   # positions reach 126.5
])
def test_the_one_exp_sigmoids_run_only_where_they_are_exact(bits, temperature, reference,
                                                            tables):
    """Which tables the kernel gets decides its path; both paths are compared with the torch
    path and float64 above (T = 1 takes the one-exp path, T = 40 and 1000 the other)."""
    w = torch.randn(8, 8) * 0.3
    q = _quantizer(bits, reference, False, temperature, w)
    got = one_exp_tables(q.sigmoid_args())
    assert tuple(t is not None for t in got) == tables
    if got[1] is not None:
        torch.testing.assert_close(got[1].double(), torch.exp(temperature * q.positions.double()),
                                   rtol=1e-6, atol=0)
