"""The registries of spikequant.snn: surrogates as one record each (the built-in ones unchanged
from the formulas they had), neurons registered by name, and both read by every consumer."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from spikequant.models import build
from spikequant.snn import (
    LIF,
    NEURONS,
    PLIF,
    SURROGATES,
    SpikingNeuron,
    Surrogate,
    SurrogateRecord,
    make_neuron,
    register_surrogate,
    unregister_surrogate,
)

# The built-in surrogates' derivatives and default alphas as they were before the records,
# written out independently of the implementation.
FORMULAS = {
    "atan": (2.0, lambda x, a: (a / 2) / (1 + (math.pi / 2 * a * x) ** 2)),
    "sigmoid": (4.0, lambda x, a: a * torch.sigmoid(a * x) * (1 - torch.sigmoid(a * x))),
    "fast_sigmoid": (10.0, lambda x, a: (a / 2) / (1 + a * x.abs()) ** 2),
    "triangle": (1.0, lambda x, a: a * torch.clamp(1 - a * x.abs(), min=0)),
}


@pytest.mark.parametrize("name", list(FORMULAS))
def test_builtin_records_keep_their_formulas_and_default_alphas(name):
    record = SURROGATES[name]
    alpha, formula = FORMULAS[name]
    assert record.name == name and record.default_alpha == alpha
    assert Surrogate(name).alpha == alpha
    x = torch.linspace(-4, 4, 801, dtype=torch.float64)
    for a in (0.5, alpha, 7.0):
        assert torch.allclose(record.derivative(x, a), formula(x, a), atol=1e-12, rtol=0)
        assert torch.allclose(record.derivative(x.clone(), a, inplace=True), formula(x, a),
                              atol=1e-12, rtol=0)
    assert SURROGATES.is_builtin(name)


def _gaussian_derivative(x, alpha, inplace=False):
    z = x.mul_(alpha) if inplace else x * alpha
    return z.square_().mul_(-0.5).exp_().mul_(alpha / math.sqrt(2 * math.pi))


GAUSSIAN = SurrogateRecord(
    "gaussian", lambda x, a: 0.5 * (1 + torch.erf(a * x / math.sqrt(2))),
    _gaussian_derivative, 3.0, "normal CDF step",
)


@pytest.fixture
def gaussian():
    register_surrogate(GAUSSIAN)
    try:
        yield GAUSSIAN
    finally:
        unregister_surrogate("gaussian")


def test_a_registered_surrogate_reaches_every_consumer(gaussian):
    x = torch.linspace(-2, 2, 401, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(Surrogate("gaussian")(x).sum(), x)
    xs = x.detach().requires_grad_()
    (expected,) = torch.autograd.grad(gaussian.smooth_step(xs, 3.0).sum(), xs)
    assert torch.allclose(grad, expected, atol=1e-10)
    # the fused neuron's hand-written backward reads the same record
    neuron = PLIF(surrogate="gaussian", v_reset=None).double()
    xi = (torch.randn(6, 3, 8, dtype=torch.float64) * 2).requires_grad_()
    fast = neuron(xi)
    generic = neuron.run_steps(xi)[0]
    assert torch.equal(fast, generic)
    g_fast = torch.autograd.grad(fast.sum(), [xi, neuron.w])
    g_generic = torch.autograd.grad(generic.sum(), [xi, neuron.w])
    for a, b in zip(g_fast, g_generic):
        assert torch.allclose(a, b, atol=1e-10)
    # and a network's surrogate option accepts it
    net = build("ndigits", surrogate="gaussian")
    assert net.neuron1.surrogate == Surrogate("gaussian", 3.0)


def test_surrogate_registry_refuses_duplicates_and_keeps_builtins(gaussian):
    assert register_surrogate(gaussian) is gaussian  # the same record again: no change
    with pytest.raises(ValueError, match="'gaussian' is already taken"):
        register_surrogate(dataclasses.replace(gaussian, default_alpha=2.0))
    with pytest.raises(ValueError, match="only the built-in surrogates have a fused kernel"):
        register_surrogate(dataclasses.replace(gaussian, name="gauss2", kernel=0))
    with pytest.raises(ValueError, match="built-in"):
        unregister_surrogate("atan")
    with pytest.raises(ValueError, match="unknown surrogate 'erf'; choose one of atan, .*gaussian"):
        LIF(surrogate="erf")
    with pytest.raises(ValueError, match="positive"):
        register_surrogate(SurrogateRecord("flat", gaussian.smooth_step, gaussian.derivative, 0))


def test_neurons_come_from_the_registry():
    assert NEURONS["lif"] is LIF and NEURONS["plif"] is PLIF
    assert LIF.neuron_name == "lif" and PLIF.neuron_name == "plif"
    lif, plif = make_neuron("lif", 3.0, v_reset=None), make_neuron("plif", 3.0)
    assert isinstance(lif, LIF) and lif.tau == 3.0 and lif.v_reset is None
    assert isinstance(plif, PLIF) and plif.tau == pytest.approx(3.0)
    with pytest.raises(ValueError, match="unknown neuron 'izhikevich'; choose one of lif, plif"):
        make_neuron("izhikevich")


def test_a_duplicate_neuron_name_is_a_clear_error():
    with pytest.raises(ValueError, match="'lif' is already taken by spikequant.snn.neuron.LIF"):
        class Other(SpikingNeuron, name="lif"):
            pass
    assert NEURONS["lif"] is LIF
    with pytest.raises(ValueError, match="lower-case letters"):
        class Unnamed(SpikingNeuron, name=""):
            pass


def test_a_neuron_without_fixed_point_state_refuses_state_bits():
    class Integrate(SpikingNeuron):  # no name: not registered
        def charge(self, x, state):
            return state["v"] + x

    neuron = Integrate()
    assert "integrate" not in NEURONS and Integrate.neuron_name is None
    spikes = neuron(torch.full((4, 1, 1), 0.4))
    assert spikes.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]  # 0.4, 0.8, 1.2 fires, 0.4
    with pytest.raises(ValueError, match="keeps float state.*lif, plif"):
        neuron.set_state_bits(8)
    neuron.set_state_bits(None)


def test_the_generic_path_of_a_fixed_point_lif_refuses_rather_than_run_float():
    neuron = LIF()
    neuron.set_state_bits(8)
    x = torch.rand(3, 2, 4) * 2
    assert neuron(x).shape == x.shape  # the fast path keeps the fixed-point grid
    with pytest.raises(ValueError, match="float-state reference path"):
        neuron.run_steps(x)
