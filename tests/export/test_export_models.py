"""Export -> load on every registered network: the file alone gives the same class scores."""

import pytest
import torch

from _helpers import lively_network
from spikequant.export import (
    count_quantized_weights,
    fp32_model_bytes,
    load_packed,
    memory_report,
    packed_model_bytes,
    save_packed,
)
from spikequant.models import MODELS, build, list_models
from spikequant.quant import quantized_layers


def assert_same_outputs(net, path, batch=2, steps=2):
    save_packed(net, path, {"run": {"dataset": net.config["name"], "time_steps": steps}})
    loaded, meta = load_packed(path)
    assert meta["run"]["time_steps"] == steps and not loaded.training
    x = torch.rand(steps, batch, *MODELS[net.config["name"]].input_shape).mul(2).floor()
    with torch.no_grad():
        expected, got = net(x), loaded(x)
    assert expected.sum() > 0, "random network is silent; the comparison would prove nothing"
    assert torch.equal(got, expected)
    assert torch.equal(got.argmax(1), expected.argmax(1))
    return loaded


@pytest.fixture(scope="module")
def nets():
    """Built once: the big networks take seconds to initialise."""
    return {}


@pytest.mark.parametrize("name", list_models())
def test_every_registered_network_reloads_exactly(tmp_path, name, nets):
    net = nets.setdefault(name, lively_network(name))
    loaded = assert_same_outputs(net, tmp_path / f"{name}.sqp")
    for key, layer, _ in quantized_layers(net):
        assert torch.equal(loaded.get_submodule(key).weight, layer.weight)


@pytest.mark.parametrize(
    "quantizer,bits,overrides",
    [
        ("lsq", 2, {"quant_options": {"per_channel": True}}),
        ("dorefa", 3, {}),
        ("ste", 4, {}),
        ("sigmoid", 1, {"exclude": ["conv1", "classifier"]}),
        ("sigmoid", None, {"levels": [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0]}),
    ],
)
def test_quantizers_and_level_sets_reload_exactly(tmp_path, quantizer, bits, overrides):
    net = lively_network("ndigits", quantizer, bits, **overrides)
    assert_same_outputs(net, tmp_path / "m.sqp", batch=3, steps=3)


def test_nmnist_binary_saving_is_at_least_31x(nets):
    net = nets.get("nmnist") or build("nmnist", "sigmoid", 1)
    fp32, packed = fp32_model_bytes(net), packed_model_bytes(net)
    assert count_quantized_weights(net) == 2 * 128 * 9 + 128 * 128 * 9 + 8192 * 2048 + 2048 * 100
    assert fp32 / packed >= 31.0
    report = memory_report(net)
    assert report.file_bytes == packed and report.fp32_bytes == fp32
    assert report.weight_saving == pytest.approx(32.0, rel=1e-3)


def test_float16_parts_keep_the_weights_exact(tmp_path):
    net = lively_network("ndigits")
    save_packed(net, tmp_path / "h.sqp", float_dtype="float16")
    loaded, _ = load_packed(tmp_path / "h.sqp")
    assert torch.equal(loaded.conv2.weight, net.conv2.weight)
    assert packed_model_bytes(net, float_dtype="float16") < packed_model_bytes(net)
