"""The compiled CPU kernel of the binary sigmoid quantizer (quant/cpu_kernel.py) against the
torch-ops path (quant/binary_torch.py, itself checked against autograd in float64): values and
the gradients of w, alpha and beta, per tensor and per channel, exact and reference gradient,
split over threads; that the quantizer uses it; and that it falls back cleanly."""

from __future__ import annotations

import pytest
import torch

from _helpers import HAS_CC
from spikequant import _cpu_kernels
from spikequant._kernels import use_kernels
from spikequant.quant import SigmoidQuantizer, cpu_kernel
from spikequant.quant.binary_torch import binary_sigmoid
from spikequant.quant.cpu_kernel import binary_sigmoid_cpu, unavailable_reason, use_cpu_kernel
from spikequant.quant.sigmoid_backends import SigmoidArgs


def test_the_kernel_builds_where_there_is_a_compiler():
    reason = unavailable_reason()
    if HAS_CC:
        assert reason is None
    else:  # the machine has none: the reason says so, and the torch ops run instead
        assert "C compiler" in reason
        assert not use_cpu_kernel(torch.zeros(3))


needs_kernel = pytest.mark.skipif(not HAS_CC, reason="no C compiler: the torch path runs "
                                  "(test_the_kernel_builds_where_there_is_a_compiler checks)")


def _both(w, alpha, beta, grad_out, reference, t=6.0):
    scalars = (torch.tensor(0.05), torch.tensor(2.0), torch.tensor(t), torch.tensor(-1.0))
    out = []
    for fn in (binary_sigmoid, binary_sigmoid_cpu):
        wi = w.clone().requires_grad_()
        a, b = alpha.clone().requires_grad_(), beta.clone().requires_grad_()
        q = fn(wi, SigmoidArgs(a, b, *scalars, reference))
        (q * grad_out).sum().backward()
        out.append((q.detach(), wi.grad, a.grad, b.grad))
    return out


@needs_kernel
@pytest.mark.parametrize("shape", [(7, 5), (64, 3, 3, 3), (300, 1100)])
@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("reference", [False, True])
def test_same_values_and_gradients_as_the_torch_ops(shape, per_channel, reference, monkeypatch):
    monkeypatch.setattr(_cpu_kernels, "PARALLEL_MIN", 1000)  # several threads even when small
    gen = torch.Generator().manual_seed(sum(shape))
    w = torch.randn(shape, generator=gen) * 0.1
    grad_out = torch.randn(shape, generator=gen)
    rows = (shape[0],) if per_channel else ()
    alpha = torch.rand(rows, generator=gen) * 0.2 + 0.05
    beta = torch.rand(rows, generator=gen) * 10 + 5
    (want, got) = _both(w, alpha, beta, grad_out, reference)
    for what, g, e in zip(("Q(w)", "grad w", "grad alpha", "grad beta"), got, want):
        assert g.shape == e.shape and g.dtype == e.dtype, what
        # the kernel's exp is a polynomial within 2 ulp, its sums are blocked: rounding only
        scale = e.abs().max().clamp_min(1e-12)
        torch.testing.assert_close(g / scale, e / scale, rtol=0, atol=2e-5,
                                   msg=lambda m, what=what: f"{what}: {m}")


@needs_kernel
def test_an_alpha_of_zero_under_the_reference_gradient():
    """The reference gradient reads alpha's gradient off Q(w) / alpha; a row at alpha = 0
    recomputes the sigmoid instead of dividing by zero."""
    gen = torch.Generator().manual_seed(3)
    w = torch.randn(3, 40, generator=gen)
    grad_out = torch.randn(w.shape, generator=gen)
    alpha, beta = torch.tensor([0.5, 0.0, 1.0]), torch.ones(3)
    (want, got) = _both(w, alpha, beta, grad_out, True, t=2.0)
    assert torch.isfinite(got[2]).all()
    for g, e in zip(got, want):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


@needs_kernel
def test_threads_split_the_work_deterministically(monkeypatch):
    monkeypatch.setattr(_cpu_kernels, "PARALLEL_MIN", 1000)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert _cpu_kernels.parts(40_000) == 2
        gen = torch.Generator().manual_seed(4)
        w, g = torch.randn(200, 200, generator=gen), torch.randn(200, 200, generator=gen)
        runs = [_both(w, torch.tensor(0.3), torch.tensor(4.0), g, True)[1] for _ in range(3)]
    finally:
        torch.set_num_threads(before)
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            assert torch.equal(a, b)


@needs_kernel
def test_the_quantizer_uses_it_on_cpu_float32_only():
    q = SigmoidQuantizer(torch.tensor([-1.0, 1.0]), temperature=5.0)
    w = torch.randn(16, 32) * 0.1
    q.reset(w)
    q.train()
    assert type(q(w.requires_grad_()).grad_fn).__name__ == "_BinarySigmoidCPUBackward"
    with use_kernels("torch"):  # SPIKEQUANT_KERNELS=torch: the reference ops
        assert type(q(w).grad_fn).__name__ != "_BinarySigmoidCPUBackward"
    q64 = q.double()
    out = q64(w.double())
    assert out.dtype == torch.float64
    assert type(out.grad_fn).__name__ != "_BinarySigmoidCPUBackward"


@needs_kernel
def test_a_training_step_is_the_same_either_way():
    """One step of a quantized layer: loss and every gradient agree with the torch ops."""
    from spikequant.quant import quantize_model

    torch.manual_seed(5)
    model = quantize_model(torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(),
                                               torch.nn.Linear(32, 4)), "sigmoid", bits=1)
    x = torch.randn(16, 64)
    grads = []
    for mode in ("auto", "torch"):
        model.zero_grad(set_to_none=True)
        with use_kernels(mode):
            model(x).square().mean().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_a_failing_compiler_leaves_the_torch_ops(tmp_path, monkeypatch):
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'fake cc: cannot compile' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CC", str(fake))
    monkeypatch.setenv("SPIKEQUANT_CPU_KERNEL_DIR", str(tmp_path / "cache"))
    cpu_kernel.KERNEL.reset()
    try:
        assert "cannot compile" in unavailable_reason()
        assert not use_cpu_kernel(torch.zeros(3))
        q = SigmoidQuantizer(torch.tensor([-1.0, 1.0]))
        q.reset(torch.randn(4, 4))
        q.train()
        out = q(torch.randn(4, 4, requires_grad=True))
        out.sum().backward()  # the torch path still trains
        assert type(out.grad_fn).__name__ != "_BinarySigmoidCPUBackward"
        assert not list((tmp_path / "cache").glob("*"))  # no half-written library left
    finally:
        monkeypatch.undo()
        cpu_kernel.KERNEL.reset()


@needs_kernel
def test_the_library_is_built_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKEQUANT_CPU_KERNEL_DIR", str(tmp_path))
    cc = _cpu_kernels.compiler()
    lib = _cpu_kernels.build(cpu_kernel.KERNEL.source, cc)
    assert lib.parent == tmp_path and lib.suffix == ".so"
    stamp = lib.stat().st_mtime_ns
    again = _cpu_kernels.build(cpu_kernel.KERNEL.source, cc)
    assert again == lib and lib.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [lib.name]


@needs_kernel
def test_a_kernel_directory_others_can_write_is_refused(tmp_path, monkeypatch):
    """A library there could have been put by someone else: no load, the torch ops run."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("SPIKEQUANT_CPU_KERNEL_DIR", str(shared))
    cpu_kernel.KERNEL.reset()
    try:
        reason = unavailable_reason()
        assert "writable by others" in reason and str(shared) in reason
        assert not use_cpu_kernel(torch.zeros(3))
        assert not list(shared.iterdir())  # nothing was built there either
    finally:
        monkeypatch.undo()
        cpu_kernel.KERNEL.reset()
