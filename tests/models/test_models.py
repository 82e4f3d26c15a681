"""spikequant.models: registry, build contract, config round trip, shapes, quantized builds."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from spikequant.cli import main as cli_main
from spikequant.models import MODELS, build, build_float_on_meta, count_parameters, list_models
from spikequant.quant import quantized_layers
from spikequant.snn import PLIF

NAMES = ["ndigits", "nmnist", "dvsgesture", "cifar10dvs", "ncaltech101"]


def test_registry_lists_the_study_networks_with_their_specs():
    assert list_models() == NAMES
    for name, spec in MODELS.items():
        assert spec.name == name
        assert len(spec.input_shape) == 3 and spec.input_shape[0] == 2
        assert spec.time_steps > 0 and spec.num_classes > 1 and spec.description
    assert MODELS["dvsgesture"].num_classes == 11
    assert MODELS["ncaltech101"].num_classes == 101
    assert MODELS["nmnist"].input_shape == (2, 34, 34)


def test_nmnist_has_the_parameter_count_of_fang_et_al():
    # conv 2*128*9 + 128*128*9, BN 2*2*128, FC 8192*2048 + 2048*100, four PLIF w
    expected = 2304 + 147456 + 512 + 16777216 + 204800 + 4
    assert count_parameters(build_float_on_meta("nmnist")) == expected  # ~17.13 M
    model = build("nmnist")
    assert count_parameters(model) == expected
    assert model.fc1.in_features == 8192 and model.classifier.out_features == 100


def test_architectures_follow_the_plif_family():
    gesture = build_float_on_meta("dvsgesture")
    assert gesture.fc1.in_features == 2048 and gesture.classifier.out_features == 110
    cifar = build_float_on_meta("cifar10dvs")
    assert cifar.fc1.in_features == 8192 and cifar.fc1.out_features == 512
    caltech = build_float_on_meta("ncaltech101")
    assert caltech.fc1.in_features == 128 * 6 * 6 and caltech.classifier.out_features == 1010
    assert "tau=?" in str(gesture)  # printable without data
    for model in (build("dvsgesture"), build("ndigits")):
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                assert m.bias is None
            if isinstance(m, PLIF):
                assert m.tau == pytest.approx(2.0) and m.threshold == 1.0
                assert m.v_reset == 0.0 and m.detach_reset
                assert m.surrogate.kind == "atan"


@pytest.mark.parametrize("name", NAMES)
def test_every_network_runs_forward_and_backward_at_its_input_size(name):
    torch.manual_seed(0)
    spec = MODELS[name]
    model = build(name)
    x = (torch.rand(2, 1, *spec.input_shape) < 0.3).float()
    out = model(x)
    assert out.shape == (1, spec.num_classes)
    assert ((out >= 0) & (out <= 1)).all()
    out.sum().backward()
    assert model.conv1.weight.grad is not None and model.neuron1.w.grad is not None


def test_build_overrides_change_the_architecture():
    model = build("ndigits", channels=8, hidden=64, input_size=(40, 36), neuron="lif",
                  dropout=0.2, votes=5)
    assert model.conv1.out_channels == 8 and model.fc1.out_features == 64
    assert model.fc1.in_features == 8 * 10 * 9
    assert model.classifier.out_features == 50 and model.dropout1.p == 0.2
    assert not any(isinstance(m, PLIF) for m in model.modules())
    out = model(torch.rand(3, 2, 2, 40, 36))
    assert out.shape == (2, 10)
    assert build("ndigits", channels=[4, 6]).conv2.out_channels == 6
    with pytest.raises(ValueError, match="one per block|give one int"):
        build("ndigits", channels=[4, 6, 8])
    with pytest.raises(ValueError, match="too small"):
        build("dvsgesture", input_size=16)
    with pytest.raises(ValueError, match="unknown override"):
        build("ndigits", width=3)
    with pytest.raises(ValueError, match="unknown model"):
        build("mnist")
    with pytest.raises(ValueError, match="expected input"):
        build("ndigits")(torch.rand(3, 2, 2, 32, 32))


def test_config_is_json_and_rebuilds_the_same_architecture():
    model = build("ndigits", "sigmoid", 2, levels=None, channels=8, exclude=["conv1"],
                  quant_options={"per_channel": True})
    config = json.loads(json.dumps(model.config))
    assert config["name"] == "ndigits" and config["quantizer"] == "sigmoid"
    assert config["bits"] == 2 and config["exclude"] == ["conv1"]
    rebuilt = build(**config)
    assert rebuilt.config == model.config

    def shapes(m):
        return {k: tuple(v.shape) for k, v in m.state_dict().items()}

    assert shapes(rebuilt) == shapes(model)
    assert str(rebuilt) == str(model)
    levels = build("ndigits", "sigmoid", None, levels=torch.tensor([-1.0, 0.0, 1.0])).config
    assert levels["levels"] == [-1.0, 0.0, 1.0]


def test_predicate_exclude_builds_but_has_no_config():
    model = build("ndigits", "ste", 1, exclude=lambda name, m: name == "classifier")
    assert [name for name, _, _ in quantized_layers(model)] == ["conv1", "conv2"]
    with pytest.raises(AttributeError, match="predicate"):
        _ = model.config
    assert getattr(model, "config", None) is None


def test_quantized_build_quantizes_every_layer_by_default_and_only_to_levels():
    torch.manual_seed(0)
    model = build("ndigits", "sigmoid", 1)
    assert [n for n, _, _ in quantized_layers(model)] == ["conv1", "conv2", "classifier"]
    model.eval()
    for _, layer, _ in quantized_layers(model):
        assert layer.weight.unique().numel() == 2  # binary: both levels in use
    assert isinstance(model.bn1, nn.BatchNorm2d)  # batch norm stays float
    excluded = build("ndigits", "sigmoid", 1, exclude=["conv1", "classifier"])
    assert [n for n, _, _ in quantized_layers(excluded)] == ["conv2"]


def test_each_weight_is_quantized_once_per_forward():
    model = build("ndigits", "sigmoid", 1, channels=4)
    calls = []
    for _, _, quantizer in quantized_layers(model):
        quantizer.register_forward_hook(lambda *_: calls.append(1))
    model(torch.rand(8, 2, 2, 34, 34))
    assert len(calls) == 3  # not 3 * T


def test_forward_resets_state_so_repeated_calls_agree():
    torch.manual_seed(0)
    model = build("ndigits", channels=8).eval()
    with torch.no_grad():  # an untrained network is nearly silent; make it fire
        for layer in (model.conv1, model.conv2, model.classifier):
            layer.weight.mul_(4)
    x = (torch.rand(6, 3, 2, 34, 34) < 0.3).float()
    first = model(x)
    assert first.sum() > 0
    model(torch.rand(6, 5, 2, 34, 34))
    assert torch.equal(model(x), first)


def test_models_command_lists_every_network(capsys):
    assert cli_main(["models"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert name in out
    assert "17,132,292" in out and "2x128x128" in out
    assert cli_main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["parameters"] for r in rows}["nmnist"] == 17132292
