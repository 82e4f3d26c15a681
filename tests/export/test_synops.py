"""SynOps from measured spikes: exact counts on hand-made inputs, and the energy pricing."""

import pytest
import torch
from torch import nn

from spikequant.export import EnergyCosts, SynOpsCounter, format_synops, measure_synops
from spikequant.quant import quantize_model
from spikequant.snn import PLIF, SpikingSequential


def test_linear_counts_events_times_fan_out():
    net = nn.Sequential(nn.Linear(6, 5))
    x = torch.tensor([[1.0, 0, 0, 1, 0, 1], [0, 0, 0, 0, 0, 1]])
    with SynOpsCounter(net) as c:
        net(x)
    ops = c.layers["0"]
    assert (ops.input_events, ops.synops, ops.dense_macs) == (4, 20, 60)
    assert ops.spiking_input and ops.bits is None


def test_conv_counts_border_synapses_exactly():
    conv = nn.Conv2d(1, 4, 3, padding=1)
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 0, 0] = 1  # a corner spike reaches 2 x 2 output positions per output channel
    x[0, 0, 2, 2] = 1  # a centre spike reaches 3 x 3
    with SynOpsCounter(conv) as c:
        conv(x)
    ops = c.layers[""]
    assert ops.synops == 4 * (4 + 9)
    assert ops.dense_macs == 4 * 25 * 9


def test_grouped_strided_conv_matches_brute_force():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    x = (torch.rand(2, 4, 7, 7) < 0.3).float()
    with SynOpsCounter(conv) as c:
        conv(x)
    # brute force: gradient of sum(output) w.r.t. the input counts each input's synapses
    probe = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, bias=False)
    probe.weight.data.fill_(1.0)
    inp = torch.ones(1, 4, 7, 7, requires_grad=True)
    probe(inp).sum().backward()
    expected = int((inp.grad[0] * x).sum())
    assert c.layers[""].synops == expected


def test_real_valued_input_is_priced_as_mac():
    net = quantize_model(SpikingSequential(nn.Flatten(), nn.Linear(8, 4), PLIF(),
                                           nn.Linear(4, 3), PLIF()), "sigmoid", 1)
    x = torch.rand(3, 2, 2, 2, 2) * 3  # event counts, not spikes
    rep = measure_synops(net, [x])
    first, second = rep.layers
    assert not first.spiking_input and second.spiking_input
    assert first.bits == 1 and first.unit_levels and rep.samples == 2
    c = EnergyCosts()
    n1, n2 = first.synops / 2, second.synops / 2
    assert rep.layer_energy_pj(first, quantized=False) == pytest.approx(n1 * c.mac_fp32)
    assert rep.layer_energy_pj(first, quantized=True) == pytest.approx(n1 * c.ac_fp32)
    assert rep.layer_energy_pj(second, quantized=False) == pytest.approx(n2 * c.ac_fp32)
    assert rep.layer_energy_pj(second, quantized=True) == pytest.approx(n2 * c.ac_int)
    text = format_synops(rep)
    assert "Horowitz" in text and "uJ" in text


def test_levels_given_for_a_float_network():
    net = nn.Sequential(nn.Linear(4, 2))
    rep = measure_synops(net, [torch.ones(1, 1, 4)], levels={"0": torch.arange(-3.0, 4.0)})
    assert rep.layers[0].bits == 3 and not rep.layers[0].unit_levels
    assert rep.totals()["synops_per_sample"] == 8
