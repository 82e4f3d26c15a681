"""The fused neuron kernel's full-size buffers while training on the CPU (functional.step_buffer):
potentials, spikes and the input gradient come from the buffer pool, a later step reuses the
same memory, an earlier step's outputs that are still alive are never written over, and
inference keeps nothing in the pool."""

from __future__ import annotations

import gc

import pytest
import torch

from _helpers import HAS_CC, run_neuron
from spikequant._buffer_pool import POOL
from spikequant.snn.cpu_kernel import lif_multistep_cpu
from spikequant.snn.functional import _LIFMultiStep
from spikequant.snn.surrogate import SURROGATES

pytestmark = pytest.mark.skipif(
    not HAS_CC, reason="no C compiler: the torch path runs, which takes nothing from the pool"
)

SHAPE = (4, 3, 64, 32)  # 96 KiB: above the pool's threshold
ALPHA = SURROGATES["atan"].default_alpha


def _pooled_pointers() -> set[int]:
    return {slot.array.ctypes.data for slot in POOL._slots.get((SHAPE, torch.float32), [])}


def _step(x: torch.Tensor, weights: torch.Tensor):
    return run_neuron(lif_multistep_cpu, x, None, 0.5, 0.0, True, False, "atan", False, weights)


def test_a_training_step_takes_its_buffers_from_the_pool_and_the_next_reuses_them():
    torch.manual_seed(0)
    x = torch.rand(SHAPE) * 2
    xi = x.clone().requires_grad_()
    spikes, _ = lif_multistep_cpu(xi, None, 0.5, 1.0, 0.0, True, False, "atan", ALPHA, False)
    first = spikes.data_ptr()
    assert first in _pooled_pointers()
    (grad_x,) = torch.autograd.grad(spikes.sum(), xi)
    assert grad_x.data_ptr() in _pooled_pointers()
    del spikes, grad_x
    gc.collect()
    held = len(POOL._slots[(SHAPE, torch.float32)])
    xi = x.clone().requires_grad_()
    spikes, _ = lif_multistep_cpu(xi, None, 0.5, 1.0, 0.0, True, False, "atan", ALPHA, False)
    assert spikes.data_ptr() in _pooled_pointers()
    assert len(POOL._slots[(SHAPE, torch.float32)]) == held  # no new buffer for step two


def test_inference_takes_nothing_from_the_pool():
    x = torch.rand(SHAPE) * 2
    with torch.no_grad():
        spikes, v = lif_multistep_cpu(x, None, 0.5, 1.0, 0.0, True, False, "atan", ALPHA, False)
    assert spikes.data_ptr() not in _pooled_pointers()


def test_an_earlier_steps_outputs_still_alive_are_not_written_over():
    torch.manual_seed(1)
    x1, x2 = torch.rand(SHAPE) * 2, torch.rand(SHAPE) * 2
    weights = torch.randn(SHAPE)
    x1i = x1.clone().requires_grad_()
    spikes1, v1 = lif_multistep_cpu(x1i, None, 0.5, 1.0, 0.0, True, False, "atan", ALPHA, False)
    kept = spikes1.detach().clone()
    for _ in range(3):  # steps on other data while step one's outputs and graph live
        _step(x2, weights)
    assert torch.equal(spikes1, kept)
    (grad1,) = torch.autograd.grad((spikes1 * weights).sum() + 0.1 * (v1 * v1).sum(), x1i)
    ref_spikes, _, (ref_grad,) = run_neuron(_LIFMultiStep.apply, x1, None, 0.5, 0.0, True,
                                            False, "atan", False, weights)
    assert torch.equal(spikes1.detach(), ref_spikes)
    torch.testing.assert_close(grad1, ref_grad, rtol=1e-5, atol=1e-6)
