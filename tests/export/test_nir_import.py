"""NIR graphs written by snnTorch, Norse and spikequant import as spikequant networks.

Each imported network is run on the same random spike input as the network the graph was
written from and must give the same output spikes, step for step; spikequant's own graphs
must give the same predictions on ndigits test samples. An imported network is then
quantized (binary), fine-tuned for a few steps and written to NIR again. Bad graphs raise
NIRGraphError naming the node.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
import torch

import spikequant
from spikequant.errors import NIRGraphError
from spikequant.snn import PLIF

nir = pytest.importorskip("nir", reason="the nir package is not installed (extra 'nir')")
from spikequant.export.nir_export import write_nir  # noqa: E402
from spikequant.export.nir_import import StepDecayLIF, import_nir  # noqa: E402

T, B = 12, 8


def _spikes(shape, seed=0, p=0.4):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, *shape, generator=g) < p).float()


def _leaky(snn, shape, beta: float, threshold: float, **kw):
    # snnTorch 1.0's exporter passes its own type check only with one beta and one threshold
    # a neuron (a scalar gives a shape-() LIF that nir refuses); reset "zero" is what NIR says
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, threshold),
                     init_hidden=True, reset_mechanism="zero", **kw)


def _snntorch_net(kind: str = "linear"):
    snn = pytest.importorskip("snntorch", reason="snnTorch is not installed")
    torch.manual_seed(0)
    if kind == "conv":  # Flatten(0): the exporter traces one unbatched sample
        net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3, padding=1),
                                  _leaky(snn, (3, 4, 4), 0.8, 0.5), torch.nn.Flatten(0),
                                  torch.nn.Linear(48, 3), _leaky(snn, (3,), 0.9, 0.5, output=True))
        sample = torch.randn(2, 4, 4)
    else:
        net = torch.nn.Sequential(torch.nn.Linear(6, 5), _leaky(snn, (5,), 0.8, 0.5),
                                  torch.nn.Linear(5, 3), _leaky(snn, (3,), 0.9, 0.5, output=True))
        sample = torch.randn(6)
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[-2].weight.mul_(3)
    return net, sample


def _snntorch_graph(net, sample):
    from snntorch.export_nir import export_to_nir

    with contextlib.redirect_stdout(io.StringIO()):  # it prints a note per module
        return export_to_nir(net, sample)  # one unbatched sample: see docs/nir.md


@pytest.mark.parametrize("kind", ["linear", "conv"])
def test_snntorch_graph_imports_spike_for_spike(kind):
    from snntorch import utils

    net, sample = _snntorch_net(kind)
    model = import_nir(_snntorch_graph(net, sample), source="snntorch")
    x = _spikes(tuple(sample.shape))
    expected = []
    with torch.no_grad():
        for b in range(B):  # the snnTorch network runs one unbatched sample at a time
            utils.reset(net)
            expected.append(torch.stack([net(x[t, b])[0] for t in range(T)]))
        got = model.spikes(x)
    expected = torch.stack(expected, 1)
    assert expected.sum() > 0
    assert torch.equal(got, expected)


def test_snntorch_graph_needs_its_time_step():
    graph = _snntorch_graph(*_snntorch_net())
    with pytest.raises(NIRGraphError, match="no dt"):
        import_nir(graph)  # snnTorch writes no dt: the caller says whose graph it is


def _norse_run(net, x):
    state, outs = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out, state = net(x[t], state)
            outs.append(out)
    return torch.stack(outs)


@pytest.mark.parametrize("kind", ["lif_box", "iaf", "conv"])
def test_norse_graph_imports_spike_for_spike(kind, tmp_path):
    norse = pytest.importorskip("norse.torch", reason="Norse is not installed")
    torch.manual_seed(1)
    if kind == "conv":
        net = norse.SequentialState(torch.nn.Conv2d(2, 3, 3, padding=1), norse.LIFBoxCell(),
                                    torch.nn.Flatten(), torch.nn.Linear(48, 3),
                                    norse.LIFBoxCell())
        shape = (2, 4, 4)
    else:
        cell = norse.LIFBoxCell if kind == "lif_box" else norse.IAFCell
        net = norse.SequentialState(torch.nn.Linear(6, 5), cell(), torch.nn.Linear(5, 3),
                                    cell())
        shape = (6,)
    with torch.no_grad():
        for m in net:
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.mul_(40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = norse.to_nir(net, torch.randn(1, *shape))
    model = import_nir(graph, source="norse")
    x = _spikes(shape, seed=2)
    expected = _norse_run(net, x)
    assert expected.sum() > 0
    assert torch.equal(model.spikes(x), expected)
    again = import_nir(write_nir(model, str(tmp_path / "again.nir")))  # IF as nir.IF
    assert torch.equal(again.spikes(x), expected)
    if kind == "lif_box":  # read as plain NIR, Norse's tau (1e-5 s) is shorter than dt
        with pytest.raises(NIRGraphError, match="node '1'.*shorter than the time step"):
            import_nir(graph, dt=1e-3)


@pytest.fixture(scope="module")
def samples(ndigits_dir):
    from spikequant.data import get_dataset

    data = get_dataset("ndigits", "test", data_dir=str(ndigits_dir), time_steps=8)
    frames = torch.stack([data[i][0] for i in range(32)]).transpose(0, 1).contiguous()
    return frames, torch.tensor([int(data[i][1]) for i in range(32)])


def _active_ndigits_net():
    from spikequant.models import build

    torch.manual_seed(0)
    net = build("ndigits", quantizer="sigmoid", bits=1, channels=8).eval()
    with torch.no_grad():  # untrained batch norm: raise the gain so that every layer fires
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.fill_(4.0)
                m.bias.fill_(0.5)
            if isinstance(m, PLIF):  # a decay that float32 tau = dt / k does not hold exactly
                m.w.fill_(0.7)
    return net


def test_spikequant_round_trip_same_predictions(tmp_path, samples):
    frames, _ = samples
    net = _active_ndigits_net()
    write_nir(net, tmp_path / "net.nir", time_steps=8)
    model = spikequant.import_nir(tmp_path / "net.nir").eval()
    kinds = {type(m).__name__ for m in model.modules()}
    assert {"BatchNorm2d", "MaxPool2d", "Conv2d", "Linear"} <= kinds  # not 1x1 convs
    with torch.no_grad():
        expected, got = net(frames), model(frames)
    assert expected.sum() > 0
    assert torch.equal(got, expected)
    assert model.votes == net.votes


def test_import_quantize_finetune_export(tmp_path, samples):
    from spikequant.quant import quantized_layers
    from spikequant.train.trainer import loss_fn

    frames, labels = samples
    net = _active_ndigits_net()
    write_nir(net, tmp_path / "net.nir", time_steps=8)
    model = spikequant.quantize_model(spikequant.import_nir(tmp_path / "net.nir"),
                                      quantizer="sigmoid", bits=1)
    assert len(list(quantized_layers(model))) == 3  # two convolutions and the classifier
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    model.train()
    for _ in range(6):
        loss = loss_fn(model(frames), labels, "ce")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    model.eval()
    graph = write_nir(model, tmp_path / "tuned.nir")
    assert (tmp_path / "tuned.quant.json").is_file()
    back = nir.read(str(tmp_path / "tuned.nir"))
    assert set(back.nodes) == set(graph.nodes)
    classifier = np.asarray(back.nodes["classifier"].weight)
    assert np.unique(classifier).size == 2  # binary again
    again = import_nir(tmp_path / "tuned.nir").eval()
    with torch.no_grad():
        assert torch.equal(again(frames), model(frames))


def _lif(n: int, **override):
    params = dict(tau=np.full(n, 1e-3), r=np.ones(n), v_leak=np.zeros(n),
                  v_threshold=np.ones(n), v_reset=np.zeros(n))
    params.update(override)
    return nir.LIF(**params)


def _graph(nodes: dict, dt=1e-4):
    order = ["input", *nodes, "output"]
    first, last = next(iter(nodes.values())), list(nodes.values())[-1]
    n_in = np.asarray(first.weight).shape[1]
    n_out = int(np.asarray(last.output_type["output"])[0])
    all_nodes = {"input": nir.Input(input_type={"input": np.array([n_in])}), **nodes,
                 "output": nir.Output(output_type={"output": np.array([n_out])})}
    return nir.NIRGraph(nodes=all_nodes, edges=list(zip(order[:-1], order[1:])),
                        metadata={"dt": dt}, type_check=False)


def _affine(n_out, n_in):
    return nir.Affine(weight=np.ones((n_out, n_in)), bias=np.zeros(n_out))


def test_plain_nir_lif_and_if_parameters():
    graph = _graph({"fc": _affine(4, 3), "lif": _lif(4, tau=np.full(4, 4e-4),
                                                     r=np.full(4, 2.0),
                                                     v_threshold=np.full(4, 3.0))})
    neuron = import_nir(graph).lif
    assert isinstance(neuron, StepDecayLIF)
    assert neuron.decay() == pytest.approx(0.25) and neuron.threshold == pytest.approx(1.5)
    iff = nir.IF(r=np.full(4, 2.0), v_threshold=np.full(4, 1.0), v_reset=np.zeros(4))
    neuron = import_nir(_graph({"fc": _affine(4, 3), "if": iff})).get_submodule("if")
    assert neuron.decay() == 0 and neuron.threshold == pytest.approx(1.0 / (2.0 * 1e-4))


@pytest.mark.parametrize("case, match", [
    ("unsupported", r"node 'delay': nir.Delay is not supported"),
    ("missing", r"node 'lif' \(LIF\): missing parameter 'tau'"),
    ("shapes", r"node 'fc2': takes 5 inputs, but the layer before gives shape \(4,\)"),
    ("lif_shape", r"node 'lif': v_threshold has shape \(3,\), but the layer before gives \(4,\)"),
    ("per_neuron", r"node 'lif': tau differs between neurons"),
    ("v_leak", r"node 'lif': v_leak = 0.5 differs from v_reset"),
    ("branch", r"node 'fc' feeds both"),
])
def test_bad_graphs_name_the_node(case, match):
    lif = _lif(4)
    nodes = {"fc": _affine(4, 3), "lif": lif}
    if case == "unsupported":
        nodes["delay"] = nir.Delay(delay=np.ones(4))
    elif case == "missing":
        lif.tau = None
    elif case == "shapes":
        nodes["fc2"] = _affine(2, 5)
    elif case == "lif_shape":
        lif.v_threshold = np.ones(3)
    elif case == "per_neuron":
        lif.tau = np.array([1e-3, 1e-3, 2e-3, 1e-3])
    elif case == "v_leak":
        lif.v_leak = np.full(4, 0.5)
    graph = _graph(nodes)
    if case == "branch":
        graph.edges.append(("fc", "output"))
    with pytest.raises(NIRGraphError, match=match):
        import_nir(graph)


def test_bad_file_names_the_node_and_writes_nothing(tmp_path):
    import h5py

    path = tmp_path / "g.nir"
    nir.write(str(path), _graph({"fc": _affine(4, 3), "lif": _lif(4)}))
    with h5py.File(path, "r+") as f:
        del f["node"]["nodes"]["lif"]["v_threshold"]
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(NIRGraphError, match=r"node 'lif' \(LIF\): missing parameter "
                                            r"'v_threshold'"):
        import_nir(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    with pytest.raises(NIRGraphError, match="no such NIR file"):
        import_nir(tmp_path / "absent.nir")
