"""The train / eval / sweep commands on ndigits, cut to a few batches an epoch."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from _helpers import train_args
from spikequant.cli import main
from spikequant.train import fit
from spikequant.train.config import TrainConfig, load_config_file
from spikequant.train.state import EpochShuffleSampler, ShardSampler

CONTRACT_KEYS = {"dataset", "quantizer", "bits", "epochs", "time_steps", "seed", "test_accuracy",
                 "best_test_accuracy", "num_weights", "model_bytes_fp32", "model_bytes_quantized",
                 "memory_savings", "train_seconds"}


# tiny tensors: a second thread only adds synchronisation (see conftest)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

def test_train_writes_the_contract_files(tmp_path, ndigits_dir, capsys):
    out = tmp_path / "run"
    assert main(train_args(out, ndigits_dir, "-q", "sigmoid", "-k", "1", "-e", "2")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert CONTRACT_KEYS <= metrics.keys()
    assert metrics["quantizer"] == "sigmoid" and metrics["bits"] == 1 and metrics["epochs"] == 2
    assert 0.0 <= metrics["test_accuracy"] <= 1.0
    # a binary network is far smaller than its float32 copy
    assert metrics["memory_savings"] > 8
    assert metrics["model_bytes_fp32"] == pytest.approx(
        metrics["memory_savings"] * metrics["model_bytes_quantized"])
    assert metrics["time_steps"] == 8 and metrics["split"]["test_size"] > 0
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # geometric from 1 to 1000, rising every step, reaching 1000 after 0.8 of the run
    assert float(rows[1]["temperature"]) == pytest.approx(1000.0)
    # three batches an epoch are too few to evaluate after each (the automatic cadence): the
    # first epoch's evaluation cells are empty, the last epoch is always evaluated
    assert metrics["eval_every"] > 2 and metrics["test_every"] == 0
    for column in ("hard_train_accuracy", "val_accuracy", "test_accuracy"):
        assert rows[0][column] == "" and 0.0 <= float(rows[1][column]) <= 1.0
    assert 0.0 <= float(rows[0]["soft_hard_gap"]) <= 1.0
    # best.pt is the evaluated epoch of the best validation accuracy: here the only one
    assert metrics["best_epoch"] == 2 and metrics["selection"] == "val_accuracy"
    assert metrics["best_test_accuracy"] == metrics["test_accuracy"] == pytest.approx(
        float(rows[1]["test_accuracy"]))
    assert metrics["max_test_accuracy_over_epochs"] == metrics["test_accuracy"]
    assert metrics["split"]["validation"]["size"] > 0
    assert metrics["split"]["train_size"] + metrics["split"]["validation"]["size"] == 1438
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    # the command ends by printing a JSON summary with the accuracy
    printed = capsys.readouterr().out
    summary = json.loads(printed[printed.rindex("{\n"):])
    assert summary["test_accuracy"] == metrics["test_accuracy"]


def test_resume_continues_and_eval_agrees(tmp_path, ndigits_dir, capsys):
    out = tmp_path / "run"
    assert main(train_args(out, ndigits_dir, "-q", "ste", "-e", "1")) == 0
    with pytest.raises(ValueError, match="--resume"):
        fit(TrainConfig(dataset="ndigits", quantizer="ste", out=str(out), data_dir=str(ndigits_dir),
                        epochs=2, batch_size=32, max_batches=3, progress=False))
    assert main(train_args(out, ndigits_dir, "-q", "ste", "-e", "2", "--resume")) == 0
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_completed"] == 2 and metrics["finished"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "last.pt"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_resume_refuses_changed_settings(tmp_path, ndigits_dir):
    out = tmp_path / "run"
    assert main(train_args(out, ndigits_dir, "-q", "ste", "-e", "1")) == 0
    assert main(train_args(out, ndigits_dir, "-q", "lsq", "-e", "2", "--resume")) == 2


def test_sweep_runs_grid_skips_finished_and_reports(tmp_path, ndigits_dir, capsys):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(f"""
[sweep]
datasets = ["ndigits"]
quantizers = ["none", "sigmoid", "xnor"]
bits = [1, 2]
seeds = [0]
out = "{tmp_path / 'sweep'}"
[train]
epochs = 1
batch_size = 32
max_batches = 2
progress = false
data_dir = "{ndigits_dir}"
""")
    assert main(["sweep", "--config", str(cfg)]) == 0
    out = tmp_path / "sweep"
    rows = list(csv.DictReader((out / "results.csv").open()))
    # float once, sigmoid at 1 and 2 bits, xnor only at 1 bit
    assert sorted((r["quantizer"], r["bits"]) for r in rows) == [
        ("none", "32"), ("sigmoid", "1"), ("sigmoid", "2"), ("xnor", "1")]
    md = (out / "results.md").read_text()
    assert "| ndigits | sigmoid | 2 |" in md and "drop vs float" in md
    assert (out / "accuracy_vs_bits.png").stat().st_size > 1000
    capsys.readouterr()
    assert main(["sweep", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out.count("finished already, skipped") == 4


def test_config_file_and_validation(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[train]\ndataset = "nmnist"\nbits = 2\nlr = 5e-4\n')
    values = load_config_file(cfg)
    assert TrainConfig.from_dict(values).lr == 5e-4
    cfg.write_text('[train]\nlearning_rate = 1\n')
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_dict(load_config_file(cfg))
    with pytest.raises(ValueError, match="quantizer"):
        TrainConfig(quantizer="binary").validate()
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0).validate()


def test_missing_dataset_is_a_clear_cli_error(tmp_path, capsys):
    code = main(["train", "--dataset", "nmnist", "--data-dir", str(tmp_path), "--out",
                 str(tmp_path / "r"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert str(tmp_path) in err


def test_samplers_are_deterministic_and_shard_everything():
    a = list(EpochShuffleSampler(10, seed=3))
    a.sort()
    assert a == list(range(10))
    s = EpochShuffleSampler(10, seed=3)
    s.set_epoch(4)
    first = list(s)
    s2 = EpochShuffleSampler(10, seed=3)
    s2.set_epoch(4)
    assert list(s2) == first
    ranks = [list(EpochShuffleSampler(11, 3, rank=r, world_size=2)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 5 and not set(ranks[0]) & set(ranks[1])
    shards = [ShardSampler(11, r, 2).indices for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(11))


def test_weight_decay_skips_quantizer_scales():
    from torch import nn

    from spikequant.quant import quantize_model
    from spikequant.train.optim import parameter_groups

    model = quantize_model(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)), "sigmoid")
    weights, others, scales = parameter_groups(model, TrainConfig(weight_decay=0.1))
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in weights["params"]] == ["0.parametrizations.weight.original"]
    assert weights["weight_decay"] == 0.1
    assert others["weight_decay"] == scales["weight_decay"] == 0.0
    assert sorted(names[id(p)].rsplit(".", 1)[1] for p in scales["params"]) == ["alpha", "beta"]
    assert {names[id(p)] for p in others["params"]} == {"0.bias", "1.weight", "1.bias"}
    assert torch.is_tensor(weights["params"][0])


@pytest.mark.parametrize("quantizer, bits, options", [
    ("sigmoid", 1, {}), ("sigmoid", 2, {"per_channel": True}), ("ste", 1, {}),
    ("lsq", 3, {"per_channel": True}), ("ptq", 2, {}), ("dorefa", 2, {})])
def test_checkpoint_rebuild_skips_initialisation_and_matches(tmp_path, quantizer, bits, options):
    """model_from_checkpoint builds without the quantizers' k-means/scale initialisation (the
    state dict sets it all): the rebuilt network must compute exactly what was saved."""
    from spikequant.models import build
    from spikequant.quant import state_dict_follows, weight_quantizer
    from spikequant.train import model_from_checkpoint
    from spikequant.train.checkpoint import atomic_torch_save

    torch.manual_seed(0)
    model = build("ndigits", quantizer, bits, channels=8, quant_options=options)
    with torch.no_grad():  # move every quantizer away from what a fresh build would give
        for p in model.parameters():
            p.mul_(1.3).add_(0.01)
    model.eval()
    x = (torch.rand(3, 2, 2, 34, 34) < 0.3).float()
    path = tmp_path / "last.pt"
    atomic_torch_save({"model_config": model.config, "model": model.state_dict()}, path)
    rebuilt = model_from_checkpoint(path)
    assert torch.equal(rebuilt(x), model(x))
    with state_dict_follows():
        bare = build("ndigits", quantizer, bits, channels=8, quant_options=options)
    fresh = build("ndigits", quantizer, bits, channels=8, quant_options=options)
    if quantizer == "sigmoid":  # the k-means positions really were skipped inside the block
        q_bare, q_fresh = weight_quantizer(bare.conv2), weight_quantizer(fresh.conv2)
        assert not torch.equal(q_bare.positions, q_fresh.positions) or bits == 1
