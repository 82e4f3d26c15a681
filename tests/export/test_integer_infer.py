"""Integer-only inference: the fast path from the packed file agrees bit for bit with the plain
int64 reference, and with the evaluation of the fake-quantized network trained with the same
state bits; on ndigits, on every test sample."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from spikequant.cli import main
from spikequant.data import get_dataset
from spikequant.export import integer_infer, memory_report_from_file, pack_bits, save_packed
from spikequant.export.integer_infer import IntegerNetwork, file_state_bits, unpack_code_range
from spikequant.export.integer_reference import reference_spike_counts
from spikequant.models import build, fixed_point_forward
from spikequant.quant import float_weight, quantized_layers
from spikequant.train import evaluate, load_checkpoint, model_from_checkpoint
from spikequant.train.calibration import recalibrate_batch_norm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def lively(model: nn.Module, gen: torch.Generator, input_shape, steps=4) -> nn.Module:
    """A freshly built network whose every layer fires: batch norm statistics estimated on
    spike-like input, then a random affine; classifier-like layers get a gain."""
    frames = (torch.rand(4, steps, *input_shape, generator=gen) < 0.2).float()
    recalibrate_batch_norm(model, [(frames, None)])
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=gen))
        for _, layer, q in quantized_layers(model):
            if isinstance(layer, nn.Linear):  # no batch norm: weights sized to drive neurons
                w = float_weight(layer)
                w.mul_(3.75 / math.sqrt(layer.in_features) / w.abs().max())
                q.reset(w)
    return model.eval()


def integer_input(gen, steps, batch, shape):
    """Event counts: mostly 0, some 1 to 3."""
    return (torch.rand(steps, batch, *shape, generator=gen) < 0.2).float() * torch.randint(
        1, 4, (steps, batch, *shape), generator=gen)


def full_weights(net: IntegerNetwork) -> dict[str, torch.Tensor]:
    return {s.name: net.weight_levels(s, 0, s.weight_shape[0]) for s in net.program.stages}


CASES = [
    ("ndigits", dict(quantizer="sigmoid", bits=1, state_bits=8, channels=4)),
    ("ndigits", dict(quantizer="sigmoid", bits=1, state_bits=16, channels=[4, 6], hidden=12,
                     neuron="lif", tau=3.0, quant_options={"per_channel": True})),
    ("nmnist", dict(quantizer="lsq", bits=3, state_bits=12, channels=4, hidden=16,
                    input_size=16)),
    ("dvsgesture", dict(quantizer="sigmoid", bits=2, state_bits=12, channels=4, hidden=16,
                        input_size=32)),
    ("ncaltech101", dict(quantizer="dorefa", bits=2, state_bits=10, channels=3, hidden=16,
                         input_size=16, layer_bits={"conv1": 4})),
]


@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_fast_path_reference_and_evaluation_agree_bit_for_bit(tmp_path, name, options):
    gen = torch.Generator().manual_seed(len(name))
    torch.manual_seed(0)
    model = build(name, **options)
    shape = model.input_shape
    lively(model, gen, shape)
    x = integer_input(gen, 5, 3, shape)
    scores = model(x)
    save_packed(model, tmp_path / "m.sqp")
    net = IntegerNetwork.from_packed(tmp_path / "m.sqp")
    counts = net.spike_counts(x)
    assert counts.sum() > 0  # not two silent networks
    assert torch.equal(counts, reference_spike_counts(net.program, full_weights(net), x))
    votes = net.program.votes
    assert torch.equal(scores, counts.float() / (5 * votes))
    assert torch.equal(net(x), scores)
    assert file_state_bits(tmp_path / "m.sqp") == options["state_bits"]


def test_slices_of_any_width_give_the_same_counts(tmp_path, monkeypatch):
    """Unpacking a layer a few channels at a time (3-bit codes, slices that start inside a
    byte) changes nothing."""
    gen = torch.Generator().manual_seed(3)
    model = lively(build("ndigits", quantizer="lsq", bits=3, state_bits=12, channels=5,
                         hidden=7), gen, (2, 34, 34))
    save_packed(model, tmp_path / "m.sqp")
    net = IntegerNetwork.from_packed(tmp_path / "m.sqp")
    x = integer_input(gen, 4, 2, (2, 34, 34))
    whole = net.spike_counts(x)
    monkeypatch.setattr(integer_infer, "WEIGHT_CHUNK_BYTES", 4 * 45 * 2)  # 2 channels of conv2
    monkeypatch.setattr(fixed_point_forward, "ACC_SLICE_BYTES", 1)  # one sample at a time
    assert torch.equal(net.spike_counts(x), whole) and whole.sum() > 0


@pytest.mark.parametrize("bits", range(1, 9))
def test_unpacking_a_range_matches_the_packed_layout(bits):
    gen = np.random.default_rng(bits)
    codes = gen.integers(0, 1 << bits, size=1001)
    packed = torch.from_numpy(pack_bits(codes, bits))
    for start, count in ((0, 1001), (3, 17), (997, 4), (500, 0)):
        got = unpack_code_range(packed, bits, start, count)
        assert got.tolist() == codes[start : start + count].tolist()


def test_float_state_files_need_state_bits(tmp_path):
    gen = torch.Generator().manual_seed(5)
    model = lively(build("ndigits", quantizer="sigmoid", bits=1, channels=4), gen, (2, 34, 34))
    save_packed(model, tmp_path / "float.sqp")
    assert file_state_bits(tmp_path / "float.sqp") is None
    with pytest.raises(ValueError, match="float neuron state; pass the state bits"):
        IntegerNetwork.from_packed(tmp_path / "float.sqp")
    # folded after training: the same integers as a network given those state bits
    post = IntegerNetwork.from_packed(tmp_path / "float.sqp", state_bits=14)
    model.set_state_bits(14)
    x = integer_input(gen, 4, 3, (2, 34, 34))
    assert torch.equal(post(x), model(x))
    with pytest.raises(ValueError, match="integer input"):
        post(x + 0.25)


# ---- ndigits, trained with state bits: evaluation == integer inference on every test sample


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ndigits_dir):
    out = tmp_path_factory.mktemp("intstate") / "run"
    args = ["train", "--dataset", "ndigits", "--out", str(out), "--data-dir", str(ndigits_dir),
            "--state-bits", "10", "--epochs", "1", "--batch-size", "32", "--max-batches", "2",
            "--time-steps", "4",
            "--val-fraction", "0", "--calibration-samples", "64", "--no-progress"]
    assert main(args) == 0
    assert main(["export", "--checkpoint", str(out / "last.pt"), "--out", str(out / "m.sqp"),
                 "--nir", str(out / "m.nir")]) == 0
    return out


def test_integer_inference_predicts_as_the_trained_network_on_every_test_sample(
        trained, ndigits_dir, capsys):
    data = get_dataset("ndigits", "test", data_dir=str(ndigits_dir), time_steps=4)
    loader = list(torch.utils.data.DataLoader(data, batch_size=64))
    expected = evaluate(model_from_checkpoint(trained / "last.pt"), loader)
    got = evaluate(IntegerNetwork.from_packed(trained / "m.sqp"), loader)
    assert expected["total"] == len(data) == 359
    assert torch.equal(got["predictions"], expected["predictions"])
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["state_bits"] == 10
    assert metrics["test_accuracy"] == pytest.approx(expected["accuracy"])
    assert load_checkpoint(trained / "last.pt")["model_config"]["state_bits"] == 10
    # the command line: infer runs the file integer-only by default, with eval's accuracy
    capsys.readouterr()
    assert main(["infer", "--model", str(trained / "m.sqp"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["correct"] == expected["correct"]
    assert result["arithmetic"] == "integer, 10-bit neuron state (as trained)"
    assert result["resident_weight_codes_bytes"] < 30_000  # 1 bit a weight


def test_reference_agrees_on_real_digits(trained, ndigits_dir):
    data = get_dataset("ndigits", "test", data_dir=str(ndigits_dir), time_steps=4)
    frames = torch.stack([data[i][0] for i in range(12)]).transpose(0, 1).contiguous()
    net = IntegerNetwork.from_packed(trained / "m.sqp")
    assert torch.equal(net.spike_counts(frames),
                       reference_spike_counts(net.program, full_weights(net), frames))


def test_memory_report_and_resume_know_the_state_bits(trained, ndigits_dir, capsys):
    report = memory_report_from_file(trained / "m.sqp")
    assert report.state_bits == 10 and 0 < report.integer_bytes < 2000
    from spikequant.export import format_report

    assert "10-bit neuron state" in format_report(report)
    args = ["train", "--dataset", "ndigits", "--out", str(trained), "--data-dir",
            str(ndigits_dir), "--state-bits", "12", "--epochs", "2", "--resume",
            "--val-fraction", "0", "--no-progress"]
    assert main(args) == 2
    assert "state_bits: 10 -> 12" in capsys.readouterr().err


def test_nir_graph_carries_the_integers_it_was_simulated_with(trained, ndigits_dir):
    """An integer simulator that reads only the NIR graph (weights, and each LIF node's
    integer fields) reproduces integer inference exactly."""
    import nir
    import torch.nn.functional as F

    graph = nir.read(str(trained / "m.nir"))
    assert graph.metadata["arithmetic"] == "integer" and int(graph.metadata["state_bits"]) == 10
    data = get_dataset("ndigits", "test", data_dir=str(ndigits_dir), time_steps=4)
    frames = torch.stack([data[i][0] for i in range(8)]).transpose(0, 1).contiguous()
    x = frames.to(torch.int64)
    steps = x.shape[0]
    h = x.flatten(0, 1)
    acc = None
    following = dict(graph.edges)
    name = following["input"]
    while name != "output":
        node, name = graph.nodes[name], following[name]
        if node.metadata.get("role") == "per-channel gain":
            continue  # a float view of mult/offset, which the next LIF's integers carry exactly
        if isinstance(node, nir.Conv2d):
            assert np.issubdtype(node.weight.dtype, np.integer)
            w = torch.from_numpy(node.weight.astype(np.float64))
            acc = F.conv2d(h.double(), w, None, tuple(node.stride), tuple(node.padding)).long()
        elif isinstance(node, nir.Affine):
            assert np.issubdtype(node.weight.dtype, np.integer) and not node.bias.any()
            acc = (h.double() @ torch.from_numpy(node.weight.astype(np.float64)).T).long()
        elif isinstance(node, nir.LIF) and "integer" not in node.metadata:
            # max pool of spikes: a memoryless neuron on the window's spike count
            assert np.allclose(node.tau, float(graph.metadata["dt"]))
            h = (acc >= torch.from_numpy(node.v_threshold.astype(np.float64))).long()
        elif isinstance(node, nir.LIF):
            q = node.metadata["integer"]
            view = (1, -1) + (1,) * (acc.dim() - 2)
            shift, bits = int(q["shift"]), int(q["state_bits"])
            drive = (acc * torch.from_numpy(q["mult"]).view(view)
                     + torch.from_numpy(q["offset"]).view(view) + (1 << shift >> 1)) >> shift
            drive = drive.unflatten(0, (steps, -1))
            v = torch.zeros_like(drive[0]) + int(q["rest"])
            out = torch.zeros_like(drive)
            for t in range(steps):
                h_t = v - ((int(q["leak"]) * (v - int(q["rest"])) + (1 << bits - 1)) >> bits)
                h_t = (h_t + drive[t]).clamp(int(q["v_min"]), int(q["v_max"]))
                out[t] = (h_t >= int(q["threshold"])).long()
                v = torch.where(out[t] > 0, int(q["rest"]), h_t)
            h = out.flatten(0, 1)
        elif isinstance(node, nir.Flatten):
            h = h.flatten(1)
        else:
            assert isinstance(node, nir.Output), type(node).__name__
    counts = h.unflatten(0, (steps, -1)).sum(0).unflatten(1, (10, -1)).sum(2)
    net = IntegerNetwork.from_packed(trained / "m.sqp")
    assert torch.equal(counts, net.spike_counts(frames))
