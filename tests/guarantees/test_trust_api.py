"""The Python API under misuse: each mistake is an exception from spikequant.errors naming the
argument, raised before the model is touched, never a model that is silently something else.

Each case failed on the code before these guarantees: quantize_model returned the model
unchanged for one without Conv2d / Linear layers, quantized float64 / half / NaN weights, and
left layers of an earlier call with that call's quantizer; an `AttributeError` for a model that
is not a module; models.build's bad sizes were torch's RuntimeError; a foreign safetensors
file was a bare ValueError."""

from __future__ import annotations

import copy

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from spikequant import quantize_model
from spikequant.errors import (
    ConfigError,
    MissingFileError,
    ModelError,
    ModelFileError,
    SpikequantError,
)
from spikequant.export import IntegerNetwork, load_packed
from spikequant.models import build
from spikequant.quant import quantized_layers, weight_quantizer


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 2))


def with_weight(value: float) -> nn.Module:
    model = mlp()
    with torch.no_grad():
        model[3].weight[1, 2] = value
    return model


@pytest.mark.parametrize("make, kwargs, error, named", [
    (lambda: nn.Sequential(nn.ReLU(), nn.Flatten()), {}, ModelError, "no nn.Conv2d or nn.Linear"),
    (lambda: nn.Sequential(nn.Conv1d(2, 3, 3)), {}, ModelError, "0 (Conv1d)"),
    (lambda: mlp().double(), {}, ModelError, "layer '1' has torch.float64 weights"),
    (lambda: mlp().half(), {}, ModelError, "layer '1' has torch.float16 weights"),
    (lambda: mlp().bfloat16(), {}, ModelError, "torch.bfloat16 weights"),
    (lambda: with_weight(float("nan")), {}, ModelError, "layer '3' has NaN or infinite"),
    (lambda: with_weight(float("inf")), {}, ModelError, "layer '3' has NaN or infinite"),
    (lambda: with_weight(-float("inf")), {"quantizer": "ste"}, ModelError, "layer '3'"),
    (mlp, {"bits": 0}, ConfigError, "bits must be an integer from 1 to 8"),
    (mlp, {"bits": 9}, ConfigError, "bits must be an integer from 1 to 8"),
    (mlp, {"bits": -1, "quantizer": "lsq"}, ConfigError, "bits must be an integer"),
    (mlp, {"bits": 2.5}, ConfigError, "got 2.5"),
    (mlp, {"bits": "2"}, ConfigError, "got '2'"),
    (mlp, {"quantizer": "binary"}, ConfigError, "unknown quantizer 'binary'"),
    (mlp, {"temprature": 2.0}, ConfigError, "has no option 'temprature'"),
    (mlp, {"exclude": ["fc9"]}, ValueError, "exclude pattern 'fc9' matches no"),
    (lambda: "a model", {}, ConfigError, "model must be a torch.nn.Module, got str"),
])
def test_quantize_model_misuse_is_refused_before_the_model_changes(make, kwargs, error, named):
    model = make()
    before = copy.deepcopy(model) if isinstance(model, nn.Module) else model
    with pytest.raises(error) as caught:
        quantize_model(model, **kwargs)
    assert named in str(caught.value)
    assert isinstance(caught.value, SpikequantError) or error is ValueError
    if isinstance(model, nn.Module):
        assert not list(quantized_layers(model))
        assert [type(m) for m in model.modules()] == [type(m) for m in before.modules()]
        for a, b in zip(model.state_dict().values(), before.state_dict().values()):
            assert torch.equal(a.nan_to_num(), b.nan_to_num())


def test_quantizing_twice_is_refused_naming_the_layers():
    model = quantize_model(mlp(), "sigmoid", bits=1)
    first = weight_quantizer(model[1])
    with pytest.raises(ModelError, match=r"'1', '3' are quantized already \(SigmoidQuantizer\)"):
        quantize_model(model, "sigmoid", bits=2)
    assert weight_quantizer(model[1]) is first and first.bits == 1


def test_a_model_with_a_conv1d_beside_linear_layers_warns_it_stays_float():
    model = nn.Sequential(nn.Conv1d(2, 2, 1), nn.Flatten(), nn.Linear(8, 2))
    with pytest.warns(UserWarning, match=r"leaves some layers in float: 0 \(Conv1d\)"):
        quantize_model(model)
    assert [name for name, _, _ in quantized_layers(model)] == ["2"]


@pytest.mark.parametrize("overrides, named", [
    ({"chanels": 8}, "unknown override(s) chanels for model 'ndigits'; allowed: channels"),
    ({"channels": -3}, "channels must be a whole number >= 1"),
    ({"channels": 2.5}, "got 2.5"),
    ({"channels": [8, 0]}, "got [8, 0]"),
    ({"hidden": -1}, "hidden must be a whole number >= 1 (0 or None: no hidden layer)"),
    ({"votes": "ten"}, "votes must be a whole number"),
    ({"input_size": (34,)}, "input_size must be an int or (height, width)"),
])
def test_build_with_unknown_or_impossible_options_is_a_config_error(overrides, named):
    with pytest.raises(ConfigError) as caught:
        build("ndigits", **overrides)
    assert named in str(caught.value)


def test_build_an_unknown_network_names_the_choices():
    with pytest.raises(ConfigError, match="unknown model 'ndigitz'; choose one of ndigits"):
        build("ndigitz")


@pytest.mark.parametrize("metadata", [None, {"format": "pt"},
                                      {"format": "spikequant-packed", "format_version": "x"}])
def test_from_packed_on_a_foreign_safetensors_file_is_a_model_file_error(metadata, tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(path), metadata=metadata)
    for load in (IntegerNetwork.from_packed, load_packed):
        with pytest.raises(ModelFileError) as caught:
            load(path)
        assert str(path) in str(caught.value) and "spikequant export" in str(caught.value)


def test_from_packed_on_bytes_that_are_no_safetensors_file(tmp_path):
    path = tmp_path / "notes.sqp"
    path.write_bytes(b"these are my notes, not a model" * 4)
    with pytest.raises(ModelFileError, match="header claims .* bytes"):
        IntegerNetwork.from_packed(path)


def test_a_missing_file_is_a_spikequant_error_and_a_file_not_found_error(tmp_path):
    from spikequant.train import load_checkpoint

    for load in (IntegerNetwork.from_packed, load_packed, load_checkpoint):
        with pytest.raises(MissingFileError) as caught:
            load(tmp_path / "none.sqp")
        assert isinstance(caught.value, SpikequantError)
        assert isinstance(caught.value, FileNotFoundError)  # what callers caught before
        assert str(tmp_path / "none.sqp") in str(caught.value)
