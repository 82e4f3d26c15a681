"""Parity with SpikingJelly's multi-step LIFNode / ParametricLIFNode (its CPU torch path)."""

from __future__ import annotations

import itertools

import pytest
import torch

from spikequant.snn import LIF, PLIF

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")

SURROGATES = {
    "atan": lambda: sj_surrogate.ATan(alpha=2.0),
    "sigmoid": lambda: sj_surrogate.Sigmoid(alpha=4.0),
}


def _pair(parametric: bool, v_reset, detach: bool, decay_input: bool, kind: str):
    options = dict(decay_input=decay_input, v_reset=v_reset, detach_reset=detach,
                   store_v_seq=True)
    sj_options = dict(options, v_threshold=1.0, surrogate_function=SURROGATES[kind](),
                      step_mode="m")
    if parametric:
        ours = PLIF(init_tau=2.0, surrogate=kind, **options)
        theirs = sj_neuron.ParametricLIFNode(init_tau=2.0, **sj_options)
    else:
        ours = LIF(tau=2.0, surrogate=kind, **options)
        theirs = sj_neuron.LIFNode(tau=2.0, **sj_options)
    return ours, theirs


@pytest.mark.parametrize(
    "parametric,v_reset,detach,decay_input,kind",
    list(itertools.product([False, True], [0.0, None], [False, True], [True, False],
                           list(SURROGATES))),
)
def test_spikes_potentials_and_gradients_match_spikingjelly(
    parametric, v_reset, detach, decay_input, kind
):
    ours, theirs = _pair(parametric, v_reset, detach, decay_input, kind)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 4, 3, 16, generator=gen) * 2
    weights = torch.rand(16, generator=gen)  # a loss that weights neurons differently
    results = []
    for neuron in (ours, theirs):
        xi = x.clone().requires_grad_()
        spikes = neuron(xi)
        v_seq = neuron.v_seq
        loss = (spikes * weights).sum() + (v_seq * v_seq).sum() * 0.1
        params = [neuron.w] if parametric else []
        grads = torch.autograd.grad(loss, [xi, *params])
        results.append((spikes.detach(), v_seq.detach(), grads))
    (s1, v1, g1), (s2, v2, g2) = results
    assert 0.05 < s2.mean() < 0.95
    assert torch.equal(s1, s2)
    assert torch.allclose(v1, v2, atol=1e-6)
    assert torch.allclose(g1[0], g2[0], atol=1e-5)  # input gradient
    if parametric:  # a sum over all neurons and steps: compare relative to its size
        assert torch.allclose(g1[1], g2[1], rtol=1e-5, atol=1e-5)
