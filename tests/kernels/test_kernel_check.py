"""The Triton kernels' first-use self-check (spikequant.kernel_check): on the CPU under
Triton's interpreter (tests/conftest.py), with the real kernels and with kernels made wrong."""

from __future__ import annotations

import sys
import warnings

import pytest
import torch

if sys.platform != "linux":  # triton publishes Linux wheels only
    pytest.skip("triton is Linux-only", allow_module_level=True)

from spikequant import kernel_check  # noqa: E402
from spikequant._kernels import use_kernels  # noqa: E402
from spikequant.errors import KernelFallbackWarning  # noqa: E402
from spikequant.models import build  # noqa: E402
from spikequant.quant import kernels_triton as qk  # noqa: E402
from spikequant.quant.sigmoid_backends import SigmoidArgs  # noqa: E402
from spikequant.snn import kernels_triton as nk  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")]


@pytest.fixture(autouse=True)
def fresh_checks():
    kernel_check.clear()
    yield
    kernel_check.clear()


def _step(mode: str):
    """One training step of the binary ndigits network: its parameters' gradients and the
    grad_fn names of one quantized weight and of the output."""
    torch.manual_seed(0)
    model = build("ndigits", quantizer="sigmoid", bits=1).train()
    x = (torch.rand(2, 1, 2, 34, 34, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with use_kernels(mode):
        rates = model(x)
        layer = next(m for m in model.modules() if hasattr(m, "weight_quantizer"))
        qname = type(layer.weight_quantizer(layer.weight).grad_fn).__name__
    (rates - 0.5).square().sum().backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}, qname


def _fallbacks(record):
    return [w for w in record if issubclass(w.category, KernelFallbackWarning)]


def test_the_kernels_pass_their_check_and_run():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _, qname = _step("triton")
    assert not _fallbacks(record)
    assert "Triton" in qname
    done = kernel_check.results()
    assert {r.kernel for r in done} == {"sigmoid quantizer", "LIF neuron"}
    assert all(r.passed and r.detail == "agrees" for r in done)


def _scaled(fn, factor):
    def wrong(*args):
        out = fn(*args)
        return tuple(o * factor for o in out) if isinstance(out, tuple) else out * factor
    return wrong


class _WrongGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w, alpha, beta, positions, heights, temperature, q0, reference):
        return qk.sigmoid_quantize_reference(w, SigmoidArgs(alpha, beta, positions, heights,
                                                         temperature, q0, reference)).detach()

    @staticmethod
    def backward(ctx, grad):
        return (grad * 1.1,) + (None,) * 7  # a wrong weight gradient, none for the scales


@pytest.mark.parametrize("broken", ["quantizer output", "quantizer gradient", "neuron output"])
def test_a_wrong_kernel_falls_back_with_one_warning_and_training_stays_correct(
        monkeypatch, broken):
    want, _ = _step("torch")
    if broken == "quantizer output":
        monkeypatch.setattr(qk, "sigmoid_quantize_triton", _scaled(qk.sigmoid_quantize_triton,
                                                                   1.1))
    elif broken == "quantizer gradient":
        monkeypatch.setattr(qk, "sigmoid_quantize_triton",
                            lambda w, args: _WrongGradient.apply(w, *args.as_tuple()))
    else:
        monkeypatch.setattr(nk, "lif_multistep_triton", _scaled(nk.lif_multistep_triton, 1.1))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        got, qname = _step("triton")
        _step("triton")  # a second step: no second check, no second warning
    (warning,) = _fallbacks(record)
    kernel = "LIF neuron" if broken.startswith("neuron") else "sigmoid quantizer"
    text = str(warning.message)
    assert kernel in text and "cpu" in text and "SPIKEQUANT_KERNELS=torch" in text
    assert ("Triton" in qname) == broken.startswith("neuron")
    failed = [r for r in kernel_check.results() if not r.passed]
    assert failed and {r.kernel for r in failed} == {kernel}
    assert got.keys() == want.keys()
    for name, grad in want.items():  # the torch path ran where the kernel was wrong
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6)


def test_a_kernel_that_does_not_compile_falls_back(monkeypatch):
    def broken(*args):
        raise RuntimeError("CompilationError: at 12:4: unsupported\nmore lines")

    monkeypatch.setattr(qk, "sigmoid_quantize_triton", broken)
    with pytest.warns(KernelFallbackWarning, match="sigmoid quantizer.*CompilationError"):
        _, qname = _step("triton")
    assert "Triton" not in qname


def test_the_result_is_cached(monkeypatch):
    calls = []
    check = kernel_check._check
    monkeypatch.setattr(kernel_check, "_check", lambda *a: calls.append(1) or check(*a))
    _step("triton")
    first = len(calls)
    assert first == len(kernel_check.results()) >= 2
    _step("triton")
    assert len(calls) == first


def test_torch_mode_checks_nothing(monkeypatch):
    monkeypatch.setattr(kernel_check, "_check", lambda *a: pytest.fail("checked"))
    _step("torch")
    assert kernel_check.results() == []


def test_compare_tolerates_rounding_but_not_a_wrong_value():
    gen = torch.Generator().manual_seed(0)
    want = torch.randn(1000, generator=gen)
    assert kernel_check.compare(want * (1 + 1e-6), want, torch.float32) is None
    assert "outside" in kernel_check.compare(want * 1.01, want, torch.float32)
    assert kernel_check.compare(want.bfloat16().float(), want, torch.bfloat16) is None
    assert "outside" in kernel_check.compare(want * 1.1, want, torch.bfloat16)
    spikes = (want > 1).float()
    flipped = spikes.clone()
    flipped[0] = 1 - flipped[0]  # one borderline spike of 1000 elements
    assert kernel_check.compare(flipped, spikes, torch.bfloat16) is None
    assert kernel_check.size_class(1) == "1" and kernel_check.size_class(32) == "16k"
    assert kernel_check.slice_size(100_003) % 16 == 100_003 % 16
