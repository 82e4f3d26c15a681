"""A default run is the run it was before the components' options became data.

tests/fixtures/default_run_settings_7e5fb28.json was written by the release before that change
(commit 7e5fb28, with the dump below run on it): every setting of a default `spikequant train`
run, the network's config, each layer's quantizer, the temperature at every quarter epoch and
the optimiser's groups. Today's defaults must give the same of each: a setting that moved
(the sigmoid quantizer's schedule and gradient are its options now) keeps its value, and what
was added is empty or the component's own default. Then a tiny real run with the defaults and
one with those recorded values spelt out as options must write the same metrics and the same
model file, byte for byte.

The evaluation cadence (`eval_every`, `test_every`) came later and on purpose: it changes which
epochs are evaluated, never the trained weights (tests/train/test_eval_cadence.py shows that), so
its two settings are the one other addition.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _helpers import run_cli
from spikequant.quant import quantized_layers
from spikequant.train import run as run_module
from spikequant.train.config import TrainConfig
from spikequant.train.optim import make_optimizer

GOLDEN = json.loads((Path(__file__).parents[1] / "fixtures" / "default_run_settings_7e5fb28.json")
                    .read_text())
MOVED_TO_QUANTIZER = ("temperature_schedule", "t0", "t_max", "t_growth", "t_ramp",
                      "temperature_per_step", "gradient")
ADDED_EMPTY = {"plugins": [], "neuron": None, "neuron_options": {}}
ADDED_CADENCE = {"eval_every": None, "test_every": 0}  # None: chosen from the dataset's size


def _today():
    cfg = TrainConfig(dataset="ndigits", epochs=10)
    cfg.validate()
    model = run_module.build_model(cfg)
    return cfg, model


def test_every_setting_keeps_its_value_where_it_went():
    cfg, _ = _today()
    now = cfg.to_dict()
    old = GOLDEN["settings"]
    for key, value in old.items():
        if key in MOVED_TO_QUANTIZER:
            assert key not in now and cfg.quantizer_options[key] == value, key
        else:
            assert now[key] == value, key
    added = set(now) - set(old)
    assert added == {"quantizer_options", *ADDED_EMPTY, *ADDED_CADENCE}
    assert {k: now[k] for k in ADDED_EMPTY} == ADDED_EMPTY
    assert {k: now[k] for k in ADDED_CADENCE} == ADDED_CADENCE


def test_the_network_and_its_quantizers_are_the_same():
    _, model = _today()
    old_config, config = GOLDEN["model_config"], model.config
    for key, value in old_config.items():
        if key == "quant_options":  # now every option of the quantizer, spelt out
            assert value.items() <= config[key].items()
        else:
            assert config[key] == value, key
    assert set(config) - set(old_config) == {"neuron_options"} and not config["neuron_options"]
    layers = {name: {"class": type(q).__name__, "repr": q.extra_repr(),
                     "per_channel": q.per_channel, "gradient": q.gradient,
                     "boundaries": q.boundary_mode, "learn_scales": bool(q.alpha.requires_grad)}
              for name, _, q in quantized_layers(model)}
    assert layers == GOLDEN["quantizers"]


def test_the_temperature_and_the_optimiser_are_the_same():
    cfg, model = _today()
    schedule = run_module.make_temperature(cfg)
    golden = GOLDEN["temperature"]
    assert schedule.state_dict() == golden["state"]
    assert [schedule.value(e / 4) for e in range(44)] == golden["values_by_quarter_epoch"]
    groups = [{k: v for k, v in g.items() if k != "params"} | {"num_params": len(g["params"])}
              for g in make_optimizer(model, cfg).param_groups]
    assert json.loads(json.dumps(groups, default=str)) == GOLDEN["optimizer_groups"]


def _run(tmp_path, data, capsys, name, *extra):
    out = tmp_path / "run"  # the same folder for both: the file records the run's settings
    argv = ["train", "--dataset", "ndigits", "--data-dir", data, "--out", out, "--epochs", "1",
            "--max-batches", "3", "--calibration-samples", "32", "--no-progress", *extra]
    code, err = run_cli(argv, capsys)
    assert code == 0, err
    model = tmp_path / f"{name}.sqp"
    code, err = run_cli(["export", "--checkpoint", out / "last.pt", "--out", model], capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("train_seconds")
    log = [line.rsplit(",", 1)[0] for line in (out / "log.csv").read_text().splitlines()]
    out.rename(tmp_path / name)
    return metrics, log, model.read_bytes()


@pytest.mark.usefixtures("one_torch_thread")
def test_the_defaults_and_the_recorded_values_write_the_same_files(tmp_path, ndigits_dir,
                                                                   capsys):
    old = GOLDEN["settings"]
    spelt_out = [arg for key in MOVED_TO_QUANTIZER for arg in (
        "--quantizer-option", f"{key}={'none' if old[key] is None else old[key]}")]
    default = _run(tmp_path, ndigits_dir, capsys, "default")
    explicit = _run(tmp_path, ndigits_dir, capsys, "explicit", *spelt_out)
    assert default[0] == explicit[0]  # metrics.json, but for the seconds it took
    assert default[1] == explicit[1]  # log.csv, but for epoch_seconds (the last column)
    assert default[2] == explicit[2]  # the model file
