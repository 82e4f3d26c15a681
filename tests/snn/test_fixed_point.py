"""Fixed-point neuron state: the grid, the fused neuron's straight-through forward, the integer
update, the fold of a stage, and how state bits travel through build / quantize_model /
TrainConfig."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikequant import quantize_model
from spikequant.models import build
from spikequant.models.integer_program import integer_levels, multiplier_shift
from spikequant.snn import LIF, PLIF, SpikingSequential
from spikequant.snn.fixed_point import (
    IntegerNeuron,
    StateGrid,
    check_state_bits,
    quantize_fraction,
    round_half_up,
)
from spikequant.snn.functional import lif_multistep
from spikequant.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("bad", [3, 25, True, "8", 8.0])
def test_state_bits_out_of_range_are_refused(bad):
    with pytest.raises(ValueError, match="state bits must be an integer from 4 to 24"):
        check_state_bits(bad)


def test_grid_puts_the_threshold_on_a_power_of_two():
    grid = StateGrid(12, 1.0)
    assert grid.threshold_int == 512 and grid.step == 1 / 512
    assert (grid.v_min, grid.v_max) == (-2048, 2047)
    assert grid.threshold_int * grid.step == 1.0  # exact: the threshold is on the grid
    assert quantize_fraction(0.5, 8) == 128 and quantize_fraction(1.7, 8) == 256
    assert round_half_up(torch.tensor([-1.5, -0.5, 0.5, 2.49])).tolist() == [-1.0, 0.0, 1.0, 2.0]


def _integer_drive(x, k_hat, grid, decay_input=True):
    """D as the fused neuron computes it, as integers."""
    gain = k_hat / grid.step if decay_input else 1.0 / grid.step
    return round_half_up(x * gain).to(torch.int64)


@pytest.mark.parametrize("bits,hard", [(8, True), (12, True), (12, False)])
def test_fused_neuron_on_the_grid_is_the_integer_update(bits, hard):
    """The training-time neuron (float tensors on the grid) and the integer update give the
    same spikes and membrane, step for step."""
    gen = torch.Generator().manual_seed(bits)
    x = torch.randn(12, 3, 50, generator=gen) * 1.5 + 0.6
    grid = StateGrid(bits, 1.0)
    k_hat = grid.quantize_decay(0.37)
    v_reset = 0.0 if hard else None
    spikes, v_seq = lif_multistep(x, None, k_hat, 1.0, v_reset, True, True, store_v_seq=True,
                                  state_grid=grid)
    levels = v_seq / grid.step
    assert torch.equal(levels, levels.round())  # every potential is on the grid
    assert levels.min() >= grid.v_min and levels.max() <= grid.v_max
    neuron = IntegerNeuron(bits, quantize_fraction(0.37, bits), grid.threshold_int, 0, hard)
    expected = neuron.run(_integer_drive(x, k_hat, grid))
    assert spikes.sum() > 20 and torch.equal(spikes.bool(), expected)


def test_saturation_keeps_the_membrane_in_k_bits():
    grid = StateGrid(8, 1.0)
    x = torch.full((5, 1, 4), -50.0)  # far below the range
    _, v = lif_multistep(x, None, 0.5, 1.0, 0.0, True, True, store_v_seq=True, state_grid=grid)
    assert torch.allclose(v, torch.full_like(v, grid.v_min * grid.step))
    neuron = IntegerNeuron(8, 128, 32, 0)
    assert not neuron.run(torch.full((5, 4), -10**9, dtype=torch.int64)).any()
    assert neuron.run(torch.full((5, 4), 10**9, dtype=torch.int64)).all()


def test_straight_through_gradient_matches_float_on_a_fine_grid():
    """At 24 bits the grid is fine enough that the fixed-point neuron and the float one take
    the same path; the gradients (straight-through) are then the float ones."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(10, 4, 30, generator=gen) + 0.8).requires_grad_()
    grads = []
    for bits in (None, 24):
        neuron = PLIF(init_tau=2.5, detach_reset=True)
        neuron.set_state_bits(bits)
        out = neuron(x)
        (out * torch.linspace(0, 1, 30)).sum().backward()
        grads.append((out.detach(), x.grad.clone(), neuron.w.grad.clone()))
        x.grad = None
    (s0, gx0, gw0), (s1, gx1, gw1) = grads
    assert torch.equal(s0, s1)
    assert torch.allclose(gx0, gx1, atol=1e-4) and torch.allclose(gw0, gw1, rtol=1e-3)
    assert gx1.abs().sum() > 0 and gw1.abs() > 0


def test_coarse_grid_still_trains():
    neuron = PLIF()
    neuron.set_state_bits(6)
    x = (torch.rand(6, 8, 20) * 2).requires_grad_()
    neuron(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0 and neuron.w.grad != 0
    assert "state_bits=6" in repr(neuron)


@pytest.mark.parametrize("levels,ints,unit", [
    ([-1.0, 1.0], [-1, 1], 1.0),
    ([-1.0, 0.0, 1.0], [-1, 0, 1], 1.0),
    ([-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0], [-4, -2, -1, 0, 1, 2, 4], 1.0),
    ([-1.0, -1 / 3, 1 / 3, 1.0], [-3, -1, 1, 3], 1 / 3),  # DoReFa's 2-bit levels
])
def test_levels_become_integers_times_a_unit(levels, ints, unit):
    got, got_unit = integer_levels(torch.tensor(levels))
    assert got.tolist() == ints and got_unit == pytest.approx(unit)


def test_levels_without_a_common_unit_are_refused():
    with pytest.raises(ValueError, match="not small integer multiples"):
        integer_levels(torch.tensor([-1.0, 0.0, 0.7071, 1.0]))


def test_multipliers_use_sixteen_bits():
    m = torch.tensor([0.013, -0.4, 3.7], dtype=torch.float64)
    shift = multiplier_shift(m)
    assert round(3.7 * 2**shift) < 2**15 <= round(3.7 * 2 ** (shift + 1))
    assert multiplier_shift(torch.zeros(3, dtype=torch.float64)) == 0


def test_quantize_model_gives_any_network_fixed_point_neurons():
    net = SpikingSequential(nn.Flatten(), nn.Linear(8, 4), PLIF(), nn.Linear(4, 2), LIF())
    quantize_model(net, "sigmoid", 1, state_bits=10)
    assert [m.state_bits for m in net if isinstance(m, (LIF, PLIF))] == [10, 10]
    float_weights = SpikingSequential(nn.Flatten(), nn.Linear(8, 4), PLIF())
    quantize_model(float_weights, "none", state_bits=8)  # neurons only, weights stay float
    assert float_weights[2].state_bits == 8
    with pytest.raises(ValueError, match="no neuron with fixed-point state"):
        quantize_model(nn.Sequential(nn.Linear(3, 2), nn.ReLU()), "sigmoid", 1, state_bits=8)


def test_registered_networks_record_state_bits_and_refuse_float_layers():
    net = build("ndigits", quantizer="sigmoid", bits=1, state_bits=12, channels=4)
    assert net.config["state_bits"] == 12 and net.neuron1.state_bits == 12
    assert build(**net.config).state_bits == 12
    with pytest.raises(ValueError, match="needs every conv / linear layer quantized"):
        build("ndigits", quantizer="sigmoid", bits=1, state_bits=12, exclude=["conv1"])
    with pytest.raises(ValueError, match="quantizer 'none'"):
        build("ndigits", state_bits=12)
    plain = build("ndigits", quantizer="sigmoid", bits=1, channels=4, exclude=["classifier"])
    with pytest.raises(ValueError, match="classifier kept float"):
        plain.set_state_bits(8)
    assert build("ndigits", quantizer="sigmoid", bits=1).config["state_bits"] is None


def test_train_config_checks_state_bits():
    TrainConfig(state_bits=12).validate()
    with pytest.raises(ValueError,
                       match="--state-bits / state_bits in the config file: state bits must be"):
        TrainConfig(state_bits=2).validate()
    with pytest.raises(ValueError, match="quantizer 'none' keeps the weights float"):
        TrainConfig(quantizer="none", state_bits=8).validate()
    with pytest.raises(ValueError, match="--layer-bits"):
        TrainConfig(exclude=["conv1"], state_bits=8).validate()


def test_training_mode_runs_modules_and_evaluation_runs_integers():
    torch.manual_seed(0)
    net = build("ndigits", quantizer="sigmoid", bits=1, state_bits=8, channels=4)
    x = (torch.rand(4, 3, 2, 34, 34) < 0.3).float()
    net.train()
    loss = net(x).sum() + 0 * sum(p.sum() for p in net.parameters())
    loss.backward()
    assert net.conv1.parametrizations.weight.original.grad is not None
    net.eval()
    out = net(x)
    assert out.grad_fn is None and out.shape == (3, 10)
    counts = out * 4 * 10  # spike counts / (T * votes)
    assert torch.allclose(counts, counts.round(), atol=1e-5)
    net.bn1.train()  # batch-norm re-estimation: the module-by-module forward, batch statistics
    before = net.bn1.running_mean.clone()
    net(x)
    assert not torch.equal(before, net.bn1.running_mean)
    with pytest.raises(ValueError, match="integer input"):
        net.eval()(x * 0.5)
