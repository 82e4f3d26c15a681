"""The Triton kernels (fused multi-step neuron, fused sigmoid quantizer) against the torch
implementations they replace on CUDA. Without a GPU they run on CPU tensors under Triton's
interpreter (tests/conftest.py sets TRITON_INTERPRET=1 before triton is imported); on a GPU
(`benchmarks/gpu_check.sh`) the same tests run the compiled kernels on CUDA tensors.

triton is a dev dependency on Linux: where it is missing these tests fail, they do not skip."""

from __future__ import annotations

import itertools
import os
import sys

import pytest
import torch

if sys.platform != "linux":  # triton publishes Linux wheels only
    pytest.skip("triton is Linux-only", allow_module_level=True)

import triton  # noqa: E402,F401 - a missing dev dependency must fail here

from _helpers import assert_neuron_matches  # noqa: E402
from spikequant._kernels import MODES, kernel_mode, use_kernels, use_triton  # noqa: E402
from spikequant.quant import SigmoidQuantizer, power_of_two_levels, symmetric_levels  # noqa: E402
from spikequant.quant.kernels_triton import sigmoid_quantize_triton  # noqa: E402
from spikequant.quant.sigmoid_backends import SigmoidArgs  # noqa: E402
from spikequant.snn import lif_multistep  # noqa: E402
from spikequant.snn.kernels_triton import lif_multistep_triton  # noqa: E402
from spikequant.snn.surrogate import (  # noqa: E402
    SURROGATES,
    SurrogateKernel,
    SurrogateRecord,
    register_surrogate,
    unregister_surrogate,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    # the interpreter evaluates sigmoid with numpy's exp, which warns where it saturates
    pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning"),
]


def test_runs_compiled_on_cuda_or_interpreted_on_cpu():
    """The kernels themselves, not the variable conftest.py sets: triton.jit reads
    TRITON_INTERPRET when a kernel module is imported, so a kernel module imported before
    conftest.py set it (a plugin, an earlier import) gives compiled kernels on a CPU, which the
    tests below meet only as unrelated-looking failures (dispatch falling back to torch)."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    from spikequant.quant import kernels_triton as quant_kernels
    from spikequant.snn import kernels_triton as neuron_kernels

    kernels = {"lif forward": neuron_kernels._lif_forward_kernel,
               "lif backward": neuron_kernels._lif_backward_kernel,
               "quantize forward": quant_kernels._quantize_forward_kernel,
               "quantize backward": quant_kernels._quantize_backward_kernel}
    expected = JITFunction if DEVICE == "cuda" else InterpretedFunction
    assert {name: type(k).__name__ for name, k in kernels.items()} == dict.fromkeys(
        kernels, expected.__name__)


# ------------------------------------------------------------------------------- the neuron


def _assert_neuron_matches(*args, **kw):
    assert_neuron_matches(lif_multistep_triton, *args, **kw)


KERNEL_SURROGATES = [r.name for r in SURROGATES.values() if r.kernel is not None]
NEURON_CASES = list(itertools.product([0.0, None], [False, True], [True, False],
                                      KERNEL_SURROGATES))


@pytest.mark.parametrize("v_reset,detach,decay_input,kind", NEURON_CASES)
def test_neuron_kernel_matches_reference(v_reset, detach, decay_input, kind):
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(6, 3, 70, generator=gen) * 1.5 + 0.3).to(DEVICE)
    # PLIF (learnable decay), starting at rest, every potential kept
    _assert_neuron_matches(x, None, torch.tensor(0.45, device=DEVICE), v_reset, decay_input,
                           detach, kind, store_v=True)
    # LIF (fixed decay) from a given potential, only the last one returned
    v0 = (torch.randn(3, 70, generator=gen) * 0.5).to(DEVICE)
    _assert_neuron_matches(x, v0, 0.45, v_reset, decay_input, detach, kind, store_v=False)


def test_neuron_kernel_plif_from_a_given_potential_over_several_blocks():
    gen = torch.Generator().manual_seed(2)
    # 2 * 700 neurons: three kernel programs, the last one partly masked
    x = (torch.randn(5, 2, 700, generator=gen) * 1.5 + 0.3).to(DEVICE)
    v0 = (torch.randn(2, 700, generator=gen) * 0.5).to(DEVICE)
    _assert_neuron_matches(x, v0, torch.tensor(0.3, device=DEVICE), None, True, False, "atan",
                           store_v=True)


def test_every_kernel_surrogate_number_has_its_registered_record():
    # the cases above run each record with a kernel number; none may be left without one
    assert sorted(SURROGATES[name].kernel for name in KERNEL_SURROGATES) == list(SurrogateKernel)


def test_a_surrogate_without_a_kernel_code_runs_the_torch_implementation():
    record = SurrogateRecord("box", lambda x, a: (a * x + 0.5).clamp(0, 1),
                             lambda x, a, inplace=False: (x.abs() < 0.5 / a).to(x.dtype) * a, 1.0)
    register_surrogate(record)
    try:
        x = (torch.randn(4, 2, 9) * 2).to(DEVICE).requires_grad_()
        with use_kernels("triton"):
            spikes, _ = lif_multistep(x, None, 0.5, 1.0, 0.0, True, False, "box", 1.0)
        assert "Triton" not in type(spikes.grad_fn).__name__
        spikes.sum().backward()
        assert x.grad.abs().sum() > 0
    finally:
        unregister_surrogate("box")


@pytest.mark.parametrize("v_reset", [0.3, None])
def test_dispatch_through_lif_multistep(v_reset):
    """The public function picks the kernel under mode "triton" and gives the torch result;
    a nonzero resting potential enters h[0] through the v0 it creates."""
    gen = torch.Generator().manual_seed(3)
    x = (torch.randn(4, 2, 33, generator=gen) * 1.5 + 0.5).to(DEVICE)
    decay = torch.tensor(0.4, device=DEVICE, requires_grad=True)
    results = []
    for mode in ("torch", "triton"):
        xi = x.clone().requires_grad_()
        with use_kernels(mode):
            spikes, v_seq = lif_multistep(xi, None, decay, 1.0, v_reset, True, False,
                                          "sigmoid", 4.0, True)
        grads = torch.autograd.grad((spikes * x).sum() + v_seq.sum(), [xi, decay])
        name = type(spikes.grad_fn).__name__
        results.append((name, spikes.detach(), v_seq.detach(), grads))
    (n_ref, s_ref, v_ref, g_ref), (n_tri, s_tri, v_tri, g_tri) = results
    assert "Triton" in n_tri and "Triton" not in n_ref
    assert torch.equal(s_tri, s_ref)
    torch.testing.assert_close(v_tri, v_ref)
    for got, want in zip(g_tri, g_ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_neuron_kernel_half_precision_close_to_float():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(6, 4, 64, generator=gen) * 1.5 + 0.3
    s32, v32 = lif_multistep_triton(x.to(DEVICE), None, 0.5, 1.0, 0.0, True, False, "atan",
                                    2.0, True)
    s16, v16 = lif_multistep_triton(x.to(DEVICE).half(), None, 0.5, 1.0, 0.0, True, False,
                                    "atan", 2.0, True)
    assert s16.dtype == v16.dtype == torch.float16
    assert (s16.float() != s32).float().mean() < 0.02  # rounding flips only borderline spikes
    assert (v16.float() - v32).abs().median() < 1e-2


# ---------------------------------------------------------------------------- the quantizer

LEVEL_SETS = {
    "binary": torch.tensor([-1.0, 1.0]),
    "ternary": torch.tensor([-1.0, 0.0, 1.0]),
    "3bit": symmetric_levels(3),
    "pow2": power_of_two_levels(2),
}


def _quantizer(levels: torch.Tensor, per_channel: bool, w: torch.Tensor) -> SigmoidQuantizer:
    q = SigmoidQuantizer(levels, temperature=3.0, per_channel=per_channel).to(w.device)
    q.reset(w)
    return q.train()


def _quantize_grads(q: SigmoidQuantizer, w: torch.Tensor, grad_out: torch.Tensor, mode: str):
    wi = w.clone().requires_grad_()
    q.zero_grad(set_to_none=True)
    with use_kernels(mode):
        out = q(wi)
    (out * grad_out).sum().backward()
    return out.detach(), wi.grad, q.alpha.grad.clone(), q.beta.grad.clone(), out.grad_fn


@pytest.mark.parametrize("name", LEVEL_SETS)
@pytest.mark.parametrize("per_channel", [False, True])
def test_quantizer_kernel_matches_torch(name, per_channel):
    gen = torch.Generator().manual_seed(0)
    # 5 rows of 1100: two programs a row per channel, the second one partly masked
    w = (torch.randn(5, 1100, generator=gen) * 0.2).to(DEVICE)
    grad_out = torch.randn(w.shape, generator=gen).to(DEVICE)
    q = _quantizer(LEVEL_SETS[name], per_channel, w)
    *ref, ref_fn = _quantize_grads(q, w, grad_out, "torch")
    *tri, tri_fn = _quantize_grads(q, w, grad_out, "triton")
    assert "Triton" in type(tri_fn).__name__ and "Triton" not in type(ref_fn).__name__
    for what, got, want in zip(("Q(w)", "grad w", "grad alpha", "grad beta"), tri, ref):
        assert got.shape == want.shape, what
        # alpha and beta gradients are float32 sums of 1100 terms of either sign
        atol = 5e-5 if what.startswith("grad ") and what != "grad w" else 1e-6
        torch.testing.assert_close(got, want, rtol=2e-5, atol=atol,
                                   msg=lambda m, what=what: f"{what}: {m}")


def test_quantizer_kernel_eight_bits_on_a_conv_weight():
    gen = torch.Generator().manual_seed(1)
    w = (torch.randn(4, 3, 3, 3, generator=gen) * 0.2).to(DEVICE)
    grad_out = torch.randn(w.shape, generator=gen).to(DEVICE)
    q = _quantizer(symmetric_levels(8), True, w)
    assert q.positions.numel() == 254
    *ref, _ = _quantize_grads(q, w, grad_out, "torch")
    *tri, _ = _quantize_grads(q, w, grad_out, "triton")
    for got, want in zip(tri, ref):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["binary", "ternary"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_quantizer_kernel_reference_gradient(name, per_channel):
    """Quantization Networks' gradient: the T = 1 sigmoids' slope scaled by T, in float64."""
    gen = torch.Generator().manual_seed(2)
    w = (torch.randn(3, 40, generator=gen) * 0.3).to(DEVICE)
    grad_out = torch.randn(w.shape, generator=gen).to(DEVICE)
    q = _quantizer(LEVEL_SETS[name], per_channel, w)
    wi = w.clone().requires_grad_()
    alpha = q.alpha.detach().clone().requires_grad_()
    beta = q.beta.detach().clone().requires_grad_()
    out = sigmoid_quantize_triton(wi, SigmoidArgs(alpha, beta, q.positions, q.heights,
                                              q.temperature, q.levels[0],
                                              reference_gradient=True))
    (out * grad_out).sum().backward()

    t = float(q.temperature)
    wd, g = w.double(), grad_out.double()
    a = alpha.detach().double().reshape(-1, 1)
    b = beta.detach().double().reshape(-1, 1)
    x = b * wd
    soft = sum(s * torch.sigmoid(t * (x - p)) for s, p in zip(q.heights.double(),
                                                              q.positions.double()))
    sig1 = [torch.sigmoid(x - p) for p in q.positions.double()]
    slope = t * sum(s * z * (1 - z) for s, z in zip(q.heights.double(), sig1))
    lv0 = float(q.levels[0])
    reduce = (lambda v: v.sum(1)) if per_channel else (lambda v: v.sum())
    torch.testing.assert_close(out.double(), a * (soft + lv0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(wi.grad.double(), g * a * b * slope, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(alpha.grad.double(), reduce(g * (soft + lv0)).reshape(
        alpha.shape), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(beta.grad.double(), reduce(g * a * slope * wd).reshape(
        beta.shape), rtol=1e-5, atol=1e-5)
    # far from the step the exact gradient vanishes at large T, the reference one does not
    assert (wi.grad.abs() > 1e-6).float().mean() > 0.9


def test_quantized_network_step_matches_torch():
    """A whole training step of the ndigits network (binary sigmoid weights, PLIF neurons):
    every parameter's gradient through the kernels equals the torch one."""
    from spikequant.models import build

    torch.manual_seed(0)
    model = build("ndigits", quantizer="sigmoid", bits=1).to(DEVICE).train()
    x = (torch.rand(2, 1, 2, 34, 34) < 0.3).float().to(DEVICE)
    grads = {}
    for mode in ("torch", "triton"):
        model.zero_grad(set_to_none=True)
        with use_kernels(mode):
            rates = model(x)
        (rates - 0.5).square().sum().backward()
        grads[mode] = {n: p.grad.clone() for n, p in model.named_parameters()
                       if p.grad is not None}
    assert grads["torch"].keys() == grads["triton"].keys()
    assert len(grads["torch"]) == sum(1 for _ in model.parameters())
    assert any(g.abs().sum() > 0 for g in grads["torch"].values())
    for name, want in grads["torch"].items():
        torch.testing.assert_close(grads["triton"][name], want, rtol=1e-4, atol=1e-6,
                                   msg=lambda m, name=name: f"{name}: {m}")


# ---------------------------------------------------------------------- choosing the kernels


def test_kernel_modes():
    x = torch.zeros(2, 3, device=DEVICE)
    assert kernel_mode() in MODES
    with use_kernels("torch"):
        assert not use_triton(x)
    with use_kernels("auto"):
        assert use_triton(x) == x.is_cuda
    with use_kernels("triton"):
        assert use_triton(x)
    with pytest.raises(ValueError, match="kernel mode"):
        with use_kernels("cuda"):
            pass


def test_triton_mode_on_cpu_without_the_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with use_kernels("triton"), pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        use_triton(torch.zeros(2))


def test_unknown_mode_in_the_environment_is_refused():
    """Refused where a kernel is chosen (not at import, which would make every import of
    spikequant fail with a traceback), as a ConfigError naming the variable and its value."""
    import subprocess

    probe = ("import spikequant._kernels as k\n"
             "try:\n    k.kernel_mode()\n"
             "except __import__('spikequant.errors').errors.ConfigError as err:\n"
             "    raise SystemExit(str(err))")
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True,
        env={**os.environ, "SPIKEQUANT_KERNELS": "fast"}, timeout=120,
    )
    assert done.returncode != 0 and "SPIKEQUANT_KERNELS='fast'" in done.stderr
