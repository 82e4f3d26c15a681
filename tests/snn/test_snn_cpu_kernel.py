"""The compiled CPU kernel of the multi-step neuron (snn/cpu_kernel.py) against the torch
implementation it replaces (functional._LIFMultiStep): spikes, potentials and the gradients of
input, initial potential and learnable decay, for every reset x detach x decay_input x
surrogate combination, split over threads; and that `lif_multistep` dispatches to it."""

from __future__ import annotations

import itertools
import re
import shutil

import pytest
import torch

from _helpers import HAS_CC, assert_neuron_matches, run_neuron
from spikequant import _cpu_kernels
from spikequant._kernels import use_kernels
from spikequant.snn import lif_multistep
from spikequant.snn.cpu_kernel import KERNEL, lif_multistep_cpu, use_cpu_kernel
from spikequant.snn.surrogate import (
    SURROGATES,
    SurrogateKernel,
    SurrogateRecord,
    register_surrogate,
    unregister_surrogate,
)

pytestmark = pytest.mark.skipif(
    not HAS_CC, reason="no C compiler: the torch path runs "
    "(tests/quant/test_quant_cpu_kernel.py::test_the_kernel_builds_where_there_is_a_compiler "
    "checks)")


def test_the_kernel_builds():
    assert KERNEL.unavailable_reason() is None and shutil.which(_cpu_kernels.compiler())


def _assert_matches(*args):
    assert_neuron_matches(lif_multistep_cpu, *args)


KERNEL_SURROGATES = [r.name for r in SURROGATES.values() if r.kernel is not None]
CASES = list(itertools.product([0.0, None], [False, True], [True, False], KERNEL_SURROGATES))


@pytest.mark.parametrize("v_reset,detach,decay_input,kind", CASES)
def test_same_as_the_torch_implementation(v_reset, detach, decay_input, kind, monkeypatch):
    monkeypatch.setattr(_cpu_kernels, "PARALLEL_MIN", 64)  # several threads
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 700, generator=gen) * 1.5 + 0.3  # 2100 neurons: several chunks
    # PLIF (learnable decay), from rest, every potential kept
    _assert_matches(x, None, torch.tensor(0.45), v_reset, decay_input, detach, kind, True)
    # LIF (fixed decay) from a given potential, only the last one returned
    v0 = torch.randn(3, 700, generator=gen) * 0.5
    _assert_matches(x, v0, 0.45, v_reset, decay_input, detach, kind, False)


def test_plif_from_a_given_potential_with_the_decay_gradient():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 2, 301, generator=gen) * 1.5 + 0.3
    v0 = torch.randn(2, 301, generator=gen) * 0.5
    _assert_matches(x, v0, torch.tensor(0.3), None, True, False, "atan", True)
    _assert_matches(x, v0, torch.tensor(0.3), 0.0, False, True, "triangle", False)


def test_the_thread_split_does_not_change_the_result(monkeypatch):
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(4, 8, 1000, generator=gen) + 0.5
    weights = torch.rand(x.shape, generator=gen)
    results = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for minimum in (1 << 30, 64):  # one thread, then two
            monkeypatch.setattr(_cpu_kernels, "PARALLEL_MIN", minimum)
            results.append(run_neuron(lif_multistep_cpu, x, None, torch.tensor(0.4), None, True,
                                False, "sigmoid", False, weights))
    finally:
        torch.set_num_threads(before)
    (s1, v1, g1), (s2, v2, g2) = results
    assert torch.equal(s1, s2) and torch.equal(v1, v2) and torch.equal(g1[0], g2[0])
    torch.testing.assert_close(g1[1], g2[1], rtol=1e-6, atol=0)  # decay: sums split otherwise


def test_the_c_header_numbers_the_surrogates_as_python_does():
    header = (_cpu_kernels.SOURCES / "surrogate_kinds.h").read_text()
    in_c = {name: int(value) for name, value in
            re.findall(r"SURROGATE_([A-Z_]+)\s*=\s*(\d+)", header)}
    assert in_c == {k.name: int(k) for k in SurrogateKernel}
    assert sorted(SURROGATES[name].kernel for name in KERNEL_SURROGATES) == list(SurrogateKernel)


def test_lif_multistep_dispatches_to_it_and_falls_back():
    x = (torch.randn(4, 2, 33) * 1.5 + 0.5).requires_grad_()
    decay = torch.tensor(0.4, requires_grad=True)
    spikes, _ = lif_multistep(x, None, decay, 1.0, 0.0, True, False, "atan", 2.0)
    assert type(spikes.grad_fn).__name__ == "_LIFMultiStepCPUBackward"
    with use_kernels("torch"):
        spikes, _ = lif_multistep(x, None, decay, 1.0, 0.0, True, False, "atan", 2.0)
    assert type(spikes.grad_fn).__name__ == "_LIFMultiStepBackward"
    spikes, _ = lif_multistep(x.double(), None, 0.4, 1.0, 0.0, True, False, "atan", 2.0)
    assert type(spikes.grad_fn).__name__ == "_LIFMultiStepBackward"  # float64: torch
    assert not use_cpu_kernel(x.double(), None, 0.4, "atan")
    record = SurrogateRecord("box", lambda x, a: (a * x + 0.5).clamp(0, 1),
                             lambda x, a, inplace=False: (x.abs() < 0.5 / a).to(x.dtype) * a, 1.0)
    register_surrogate(record)
    try:
        spikes, _ = lif_multistep(x, None, 0.5, 1.0, 0.0, True, False, "box", 1.0)
        assert type(spikes.grad_fn).__name__ == "_LIFMultiStepBackward"
    finally:
        unregister_surrogate("box")


def test_a_neuron_layer_trains_the_same_either_way():
    """A PLIF layer's step (forward, backward through time, decay gradient) through the
    public API: kernel and torch implementation agree."""
    from spikequant.snn import PLIF

    torch.manual_seed(6)
    x = torch.randn(8, 4, 16, 5, 5) + 0.6
    layer = PLIF()
    grads = []
    for mode in ("auto", "torch"):
        layer.zero_grad(set_to_none=True)
        xi = x.clone().requires_grad_()
        with use_kernels(mode):
            out = layer(xi)
        (out * torch.linspace(0, 1, out.numel()).reshape(out.shape)).sum().backward()
        grads.append((out.detach(), xi.grad, [p.grad for p in layer.parameters()]))
    (o1, x1, p1), (o2, x2, p2) = grads
    assert torch.equal(o1, o2)
    torch.testing.assert_close(x1, x2, rtol=1e-5, atol=1e-6)
    for a, b in zip(p1, p2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
