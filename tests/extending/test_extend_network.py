"""A network added in one file: a spiking MLP registered as a ModelRecipe, then trained,
evaluated, exported and run from its packed file through the command, as any registered
network (the export and infer path rebuild it from its recorded config)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from _helpers import run_cli
from spikequant.cli import main
from spikequant.data import DatasetInfo
from spikequant.models import MODELS, ModelRecipe, build, register_model, unregister_model
from spikequant.snn import make_neuron


class SpikingMLP(nn.Module):
    """[T, B, C, H, W] -> flatten -> FC -> LIF -> FC -> LIF -> firing rates [B, classes]."""

    def __init__(self, in_features: int, num_classes: int, hidden: int, neuron: str,
                 tau: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden, bias=False)
        self.neuron1 = make_neuron(neuron, tau, detach_reset=True)
        self.fc2 = nn.Linear(hidden, num_classes, bias=False)
        self.neuron2 = make_neuron(neuron, tau, detach_reset=True)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        hidden = self.neuron1(self.fc1(x_seq.flatten(2)))  # Linear acts on the last axis
        return self.neuron2(self.fc2(hidden)).mean(0)


def build_mlp(dataset: DatasetInfo, hidden: int, neuron: str, tau: float) -> SpikingMLP:
    channels, height, width = dataset.frame_shape
    return SpikingMLP(channels * height * width, dataset.num_classes, hidden, neuron, tau)


RECIPE = ModelRecipe("digits_mlp", "spiking MLP for ndigits (one hidden layer)", build_mlp,
                     {"hidden": 64, "neuron": "lif", "tau": 2.0}, dataset="ndigits")


@pytest.fixture
def mlp():
    register_model(RECIPE)
    yield RECIPE
    unregister_model(RECIPE.name)
    assert "digits_mlp" not in MODELS  # registered for one test only


def test_build_makes_it_quantized_with_a_config_that_rebuilds_it(mlp):
    net = build("digits-mlp", quantizer="sigmoid", bits=1, hidden=32)
    assert isinstance(net, SpikingMLP) and net.fc1.weight.shape == (32, 2 * 34 * 34)
    assert net.config["name"] == "digits_mlp" and net.config["hidden"] == 32
    again = build(**net.config)
    assert [p.shape for p in again.parameters()] == [p.shape for p in net.parameters()]
    scores = net(torch.rand(3, 2, 2, 34, 34))
    assert scores.shape == (2, 10)
    with pytest.raises(ValueError, match="unknown override.*channels.*allowed: hidden, neuron"):
        build("digits_mlp", channels=8)


def test_it_trains_exports_and_infers_through_the_command(mlp, ndigits_dir, tmp_path, capsys):
    out, model = tmp_path / "run", tmp_path / "mlp.sqp"
    code, err = run_cli(["train", "--model", "digits_mlp", "--dataset", "ndigits", "--data-dir",
                         ndigits_dir, "--out", out, "--epochs", "1", "--max-batches", "4",
                         "--quantizer", "sigmoid", "--neuron", "plif", "--no-progress"], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "digits_mlp" and metrics["memory_savings"] > 8
    code, err = run_cli(["export", "--checkpoint", out / "last.pt", "--out", model], capsys)
    assert code == 0, err
    results = []
    for argv in (["eval", "--checkpoint", out / "last.pt", "--json"],
                 ["infer", "--model", model, "--json"]):
        capsys.readouterr()
        assert main([str(a) for a in argv]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["correct"] == results[1]["correct"] and results[0]["total"] == 359
