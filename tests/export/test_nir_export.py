"""NIR export: the graph reads back with the quantized weights intact and, simulated step by
step, computes what the network computes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _helpers import lively_network
from spikequant.quant import quantize_model, quantized_layers
from spikequant.snn import LIF, PLIF, SpikingSequential, TimeSharedDropout

nir = pytest.importorskip("nir")
from spikequant.export.nir_export import to_nir, write_nir  # noqa: E402


def tiny_snn() -> nn.Module:
    torch.manual_seed(0)
    net = SpikingSequential(
        nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), PLIF(),
        nn.MaxPool2d(2), nn.Flatten(), TimeSharedDropout(0.5),
        nn.Linear(8 * 4 * 4, 20), PLIF(init_tau=3.0), nn.AvgPool1d(2, 2),
    )
    bn = net[1]
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.2, 1.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-0.2, 0.2)
    net[6].weight.data *= 4
    return net


def simulate(graph, frames: torch.Tensor) -> torch.Tensor:
    """A reference NIR interpreter for chains: Euler steps of dt, returns [T, B, ...]."""
    order = ["input"]
    nxt = dict(graph.edges)
    while order[-1] in nxt:
        order.append(nxt[order[-1]])
    state, outputs = {}, []
    dt = float(graph.metadata["dt"])
    for x in frames:
        for name in order[1:-1]:
            node = graph.nodes[name]
            t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
            if isinstance(node, nir.Conv2d):
                x = F.conv2d(x, t(node.weight), t(node.bias), tuple(node.stride),
                             tuple(node.padding), tuple(node.dilation), int(node.groups))
            elif isinstance(node, nir.Affine):
                x = x @ t(node.weight).T + t(node.bias)
            elif isinstance(node, nir.Linear):
                x = x @ t(node.weight).T
            elif isinstance(node, nir.LIF):
                v = state.get(name, t(node.v_reset).expand_as(x))
                v = v + dt / t(node.tau) * (t(node.v_leak) - v + t(node.r) * x)
                x = (v >= t(node.v_threshold)).float()  # ours fires at >= (NIR: >)
                state[name] = torch.where(x.bool(), t(node.v_reset), v)
            elif isinstance(node, nir.SumPool2d):
                x = F.avg_pool2d(x, tuple(node.kernel_size), tuple(node.stride),
                                 tuple(node.padding), divisor_override=1)
            elif isinstance(node, nir.Threshold):
                x = (x > t(node.threshold)).float()
            elif isinstance(node, nir.Flatten):
                x = x.flatten(1)
            elif isinstance(node, nir.Scale):
                x = x * t(node.scale)
            else:
                raise AssertionError(f"simulator lacks {type(node).__name__}")
        outputs.append(x)
    return torch.stack(outputs)


@pytest.mark.parametrize("quantizer,bits", [("sigmoid", 1), ("lsq", 3), ("none", 1)])
def test_graph_reads_back_with_quantized_weights(tmp_path, quantizer, bits):
    net = quantize_model(tiny_snn(), quantizer, bits).eval()
    write_nir(net, tmp_path / "net.nir", input_shape=(2, 8, 8), time_steps=4)
    graph = nir.read(tmp_path / "net.nir")
    names = ("0", "1", "2", "3", "3_spike", "4", "6", "7", "8")
    assert [type(graph.nodes[n]).__name__ for n in names] == [
        "Conv2d", "Conv2d", "LIF", "Conv2d", "LIF", "Flatten", "Affine", "LIF", "Affine"]
    assert {type(n).__name__ for n in graph.nodes.values()} <= {
        "Input", "Output", "Conv2d", "Affine", "Flatten", "LIF"}  # what every importer reads
    for name, layer, q in quantized_layers(net):
        node = graph.nodes[name]
        qw = q.quantize(layer.parametrizations.weight.original)
        allowed = (qw.scale.flatten()[:, None] * qw.levels[None]).flatten().numpy()
        values = np.unique(node.weight)
        assert values.size <= qw.levels.numel() and np.isin(values, allowed).all()
        assert np.array_equal(node.weight, layer.weight.detach().numpy())
        assert int(node.metadata["bits"]) == bits
    assert graph.metadata["time_steps"] == 4


def test_graph_computes_what_the_network_computes():
    net = quantize_model(tiny_snn(), "sigmoid", 1).eval()
    graph = to_nir(net, input_shape=(2, 8, 8))
    frames = (torch.rand(6, 4, 2, 8, 8) < 0.5).float()
    with torch.no_grad():
        expected = net(frames)
    got = simulate(graph, frames)
    assert expected.abs().sum() > 0  # the comparison is not between two silent networks
    assert (got - expected).abs().max() < 1e-6


def test_neuron_parameters_and_batchnorm_gain_node():
    net = tiny_snn().eval()
    graph = to_nir(net, input_shape=(2, 8, 8), dt=1e-3)
    lif = graph.nodes["2"]
    k = torch.sigmoid(net[2].w).item()
    assert np.allclose(lif.tau, 1e-3 / k) and lif.tau.shape == (8, 8, 8)
    assert np.allclose(lif.r, 1.0) and np.allclose(lif.v_threshold, 1.0)
    assert np.allclose(lif.v_reset, 0.0) and np.allclose(lif.v_leak, 0.0)
    bn, gain = net[1], graph.nodes["1"]
    s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    t = (bn.bias - bn.running_mean * torch.as_tensor(s)).detach().numpy()
    assert gain.weight.shape == (8, 8, 1, 1) and gain.groups == 1
    assert np.allclose(np.diagonal(gain.weight[:, :, 0, 0]), s)
    assert np.count_nonzero(gain.weight) == 8  # channel-diagonal: no mixing of channels
    assert np.allclose(gain.bias, t, atol=1e-6)
    pool = graph.nodes["3"]
    assert np.array_equal(pool.weight[:, :, 0, 0], np.eye(8)) and pool.weight.shape[2:] == (2, 2)
    assert np.allclose(graph.nodes["3_spike"].tau, 1e-3)  # memoryless: one step


def test_lif_without_decay_input_and_soft_reset():
    net = SpikingSequential(nn.Flatten(), nn.Linear(8, 4), LIF(tau=4.0, decay_input=False,
                                                                v_reset=None)).eval()
    with pytest.warns(UserWarning, match="soft"):
        graph = to_nir(net, input_shape=(2, 2, 2))
    lif = graph.nodes["2"]
    # h = v - v/4 + x: the undecayed input's gain 4 is divided out of the threshold
    assert np.allclose(lif.r, 1.0) and np.allclose(lif.v_threshold, 0.25)
    assert lif.metadata["reset"] == "subtract"


def test_max_pool_of_real_values_is_refused():
    from spikequant.export import nir_export

    net = SpikingSequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 2), PLIF()).eval()
    calls = nir_export.trace_calls(net, (2, 4, 4))
    calls[0].binary_input = False  # as if the pool read membrane potentials or frames
    with pytest.raises(NotImplementedError, match="no max pool"):
        nir_export._nodes_for(calls, (2, 4, 4), 1.0)


def test_branching_networks_are_refused():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.b(x) + self.a(x)

    with pytest.raises(NotImplementedError, match="only chains"):
        to_nir(Residual(), input_shape=(4,))


@pytest.mark.parametrize("name", ["ndigits", "nmnist"])
def test_registered_networks_export_and_read_back(tmp_path, name):
    net = lively_network(name)
    write_nir(net, tmp_path / f"{name}.nir", time_steps=5)
    graph = nir.read(tmp_path / f"{name}.nir")
    assert graph.metadata["votes"] == net.votes and graph.metadata["time_steps"] == 5
    layers = list(quantized_layers(net))
    assert len(layers) == (3 if name == "ndigits" else 4)
    for key, layer, q in layers:
        node = graph.nodes[key]
        qw = q.quantize(layer.parametrizations.weight.original)
        values = np.unique(node.weight)
        assert values.size == 2  # binary: both levels, never one collapsed
        assert np.isin(values, (qw.scale * qw.levels).numpy()).all()
        assert node.weight.shape == tuple(layer.weight.shape)
    if name == "ndigits":
        frames = torch.rand(4, 2, *net.input_shape).mul(2).floor()
        with torch.no_grad():
            expected = net(frames)
        spikes = simulate(graph, frames)  # [T, B, classes * votes]
        scores = spikes.mean(0).unflatten(1, (net.num_classes, net.votes)).mean(2)
        assert expected.sum() > 0
        assert (scores - expected).abs().max() < 1e-6
