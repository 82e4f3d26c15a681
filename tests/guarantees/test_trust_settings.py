"""Guarantees about settings (issue 13, items 5, 6, 9 and 11): config files and flags are
checked against TrainConfig, every number is checked for range, and what can't work here (a
device, the memory a batch needs) is refused before any data is read."""

from __future__ import annotations

import json

import pytest

from _helpers import one_line_error, run_cli, saved_checkpoint, train_argv
from spikequant.cli import build_parser
from spikequant.cli.train_cmd import config_from_args
from spikequant.train.config import TrainConfig, load_config_file
from spikequant.train.sweep import load_sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _toml(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, needle", [
    ("[trian]\nepochs = 3\n", "trian"),                     # misspelt table
    ("epochs = 3\n[train]\nbatch_size = 8\n", "epochs"),    # a key outside [train]
    ("[train]\nepochs = 3\n[sweep]\nseeds = [1]\n", "sweep"),  # a sweep file given to train
    ("[train]\n[train.optimiser]\nlr = 1\n", "optimiser"),  # a nested table that is no setting
])
def test_config_file_tables_are_checked(tmp_path, text, needle):
    with pytest.raises(ValueError, match=needle):
        TrainConfig.from_dict(load_config_file(_toml(tmp_path, text)))


@pytest.mark.parametrize("line, key", [
    ("epochs = 1.5", "epochs"), ('resume = "no"', "resume"), ('lr = "1e-3"', "lr"),
    ('exclude = "conv1"', "exclude"), ("levels = [-1, 'a', 1]", "levels"),
    ("per_channel = 1", "per_channel"), ('time_steps = 8.0', "time_steps"),
])
def test_config_file_types_are_checked(tmp_path, line, key):
    path = _toml(tmp_path, f"[train]\n{line}\n")
    with pytest.raises(ValueError, match=f"{key} in {path} must be"):
        TrainConfig.from_dict(load_config_file(path), source=str(path))


def test_config_values_of_the_right_type_still_load(tmp_path):
    path = _toml(tmp_path, '[train]\nlr = 1\nlevels = [-2, -1, 0, 1, 2]\n'
                           '[train.model_overrides]\nchannels = 8\n'
                           '[train.quantizer_options]\nt_max = 50\n')
    cfg = TrainConfig.from_dict(load_config_file(path))
    assert cfg.lr == 1 and cfg.levels == [-2, -1, 0, 1, 2]
    assert cfg.model_overrides == {"channels": 8}
    cfg.validate()
    assert cfg.quantizer_options["t_max"] == 50


def test_a_flag_overrides_the_config_file_only_when_given(tmp_path):
    path = _toml(tmp_path, '[train]\ndevice = "cuda"\nepochs = 4\n')
    parser = build_parser()
    cfg = config_from_args(parser.parse_args(["train", "--config", str(path)]))
    assert cfg.device == "cuda" and cfg.epochs == 4
    cfg = config_from_args(parser.parse_args(["train", "--config", str(path), "--device", "cpu",
                                              "--epochs", "2"]))
    assert cfg.device == "cpu" and cfg.epochs == 2


def test_a_config_file_extends_a_base_relative_to_itself(tmp_path):
    (tmp_path / "recipes").mkdir()
    _toml(tmp_path / "recipes", '[train]\nepochs = 7\nlr = 0.5\nbatch_size = 4\n', "base.toml")
    path = _toml(tmp_path, 'extends = "recipes/base.toml"\n[train]\nlr = 0.25\n')
    cfg = TrainConfig.from_dict(load_config_file(path))
    assert (cfg.epochs, cfg.lr, cfg.batch_size) == (7, 0.25, 4)  # its own entry wins


def test_a_sweep_file_extends_a_base(tmp_path):
    _toml(tmp_path, '[train]\nepochs = 7\n', "base.toml")
    path = _toml(tmp_path, 'extends = "base.toml"\n[sweep]\nquantizers = ["ste"]\n'
                           '[train]\nbatch_size = 4\n', "sweep.toml")
    (cfg,) = [load_sweep(path).config(p) for p in load_sweep(path).points()]
    assert (cfg.epochs, cfg.batch_size, cfg.quantizer) == (7, 4, "ste")


@pytest.mark.parametrize("files, needle", [
    ({"c.toml": 'extends = "gone.toml"\n[train]\nepochs = 2\n'}, "gone.toml, is not there"),
    ({"c.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "c.toml"\n'}, "makes a loop"),
    ({"c.toml": 'extends = "c.toml"\n'}, "makes a loop"),
    ({"c.toml": "extends = 3\n"}, "must be a file name"),
])
def test_a_bad_extends_is_one_line_naming_the_file(files, needle, tmp_path, capsys, no_data):
    for name, text in files.items():
        _toml(tmp_path, text, name)
    code, err = run_cli(train_argv(tmp_path / "run", tmp_path, "--config", tmp_path / "c.toml"),
                        capsys)
    line = one_line_error(err)
    assert code == 2 and needle in line and "c.toml" in line


def test_every_published_experiment_states_its_recipe():
    """Through its dataset's base file: the values, not spikequant's defaults, decide it."""
    from pathlib import Path

    from spikequant.train.config import read_toml

    recipe = ("epochs", "batch_size", "optimizer", "lr", "loss", "time_steps", "val_fraction")
    sigmoid = ("temperature_schedule", "t0", "t_max", "t_ramp", "temperature_per_step",
               "gradient")
    files = [p for p in (Path(__file__).parents[2] / "configs").glob("*/*.toml")
             if p.parent.name != "ndigits"]
    assert len(files) >= 44
    for path in files:
        stated = read_toml(path)["train"]
        assert all(key in stated for key in recipe), path
        assert all(key in stated["quantizer_options"]["sigmoid"] for key in sigmoid), path


def test_a_setting_error_names_the_flag_and_the_config_key():
    with pytest.raises(ValueError, match="--lr / lr in the config file must be"):
        TrainConfig(lr=0.0).validate()
    with pytest.raises(ValueError, match="--loss / loss in the config file must be one of"):
        TrainConfig(loss="hinge").validate()
    with pytest.raises(ValueError, match="^momentum in the config file must be"):
        TrainConfig(momentum=-1.0).validate()


def test_train_help_shows_each_default_from_train_config(capsys):
    """Generated from TrainConfig: a default changed there is what --help says."""
    import dataclasses

    from spikequant.train.setting import default_shown, flag_of

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(TrainConfig):
        flag = flag_of(f)
        if f.name == "max_batches":
            assert "--max-batches" not in text  # a smoke-test switch, left out of --help
        elif flag is None:
            assert f"{f.name} (" in text, f.name  # config-file-only settings: the epilog
        else:
            assert flag in text, flag
            shown = default_shown(f)
            if shown and f.type != "bool":
                assert f"[default: {' '.join(shown.split())}]" in text, f.name


@pytest.mark.parametrize("text, needle", [
    ("[sweep]\nbits = [1.5]\n", "bits"),
    ("[sweep]\nseeds = ['0']\n", "seeds"),
    ("[sweep]\n[trian]\nepochs = 2\n", "trian"),
    ("[sweep]\n[train]\nepochs = 1.5\n", "epochs"),
    ("[sweep]\n[train]\nepoch = 2\n", "epoch"),
    ("[sweep]\n[train]\nquantizer = 'ste'\n", "quantizer"),  # the grid would replace it
])
def test_sweep_file_tables_and_types_are_checked(tmp_path, text, needle):
    with pytest.raises(ValueError, match=needle):
        load_sweep(_toml(tmp_path, text))


@pytest.mark.parametrize("argv", [
    ["report", "--network", "ndigits", "--num-samples", "0"],
    ["report", "--network", "ndigits", "--bits", "0"],
    ["eval", "--checkpoint", "x.pt", "--time-steps", "0"],
    ["infer", "--model", "x.sqp", "--batch-size", "0"],
    ["train", "--weight-decay", "-1"],
    ["train", "--lr", "inf"],
    ["train", "--lr", "nan"],
    ["train", "--lr", "0"],
    ["train", "--epochs", "0"],
    ["train", "--num-workers", "-1"],
    ["train", "--seed", "-3"],
    ["demo", "--epochs", "0"],
    ["demo", "--fine-tune-epochs", "-1"],
])
def test_every_numeric_flag_is_checked_when_parsed(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 2
    assert f"argument {argv[-2]}" in capsys.readouterr().err


@pytest.mark.parametrize("settings, name", [
    ({"weight_decay": -1.0}, "weight_decay"), ({"lr": float("inf")}, "lr"),
    ({"lr": float("nan")}, "lr"), ({"momentum": 2.0}, "momentum"),
    ({"quantizer_options": {"t0": 0.0}}, "t0"), ({"quantizer_options": {"t_max": -1}}, "t_max"),
    ({"quantizer_options": {"t_growth": float("inf")}}, "growth"),
    ({"max_batches": 0}, "max_batches"),
    ({"levels": [1.0, -1.0]}, "levels"), ({"bits": 9}, "bits"), ({"num_workers": -1},
                                                                  "num_workers"),
])
def test_every_number_from_a_config_file_is_checked(settings, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**settings).validate()


class Captured(Exception):
    """Raised instead of training, carrying the settings the command would train with."""


@pytest.mark.parametrize("flag", ["--levels -4,-2,-1,0,1,2,4", "--levels=-4,-2,-1,0,1,2,4"])
def test_levels_with_negative_numbers_parse_as_the_readme_writes_them(flag, tmp_path, capsys,
                                                                      monkeypatch):
    def capture(cfg):
        raise Captured(cfg)

    monkeypatch.setattr("spikequant.train.fit", capture)
    with pytest.raises(Captured) as got:
        run_cli(["train", "--out", tmp_path / "run", *flag.split(" ")], capsys)
    assert got.value.args[0].levels == [-4, -2, -1, 0, 1, 2, 4]


def test_metrics_report_the_bits_of_a_level_set(tmp_path, ndigits_dir, capsys, fast_eval):
    out = tmp_path / "run"
    code, err = run_cli(train_argv(out, ndigits_dir, "--levels", "-4,-2,-1,0,1,2,4",
                                   "-e", "1"), capsys)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["bits"] == 3 and metrics["levels"] == [-4, -2, -1, 0, 1, 2, 4]


@pytest.mark.parametrize("device", ["foo", "mps", "cuda:7", "cuda"])
def test_a_device_this_machine_lacks_is_one_line_before_any_data(device, tmp_path, capsys,
                                                                 no_data):
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"cuda:{torch.cuda.device_count()}"  # one past the last: missing here too
    code, err = run_cli(train_argv(tmp_path / "run", tmp_path, "--device", device), capsys)
    assert code == 2 and "--device" in one_line_error(err)


def test_eval_on_a_missing_device_is_one_line(tmp_path, capsys, no_data):
    import torch

    device = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    path = saved_checkpoint(tmp_path / "last.pt")
    code, err = run_cli(["eval", "--checkpoint", path, "--device", device], capsys)
    assert code == 2 and "CUDA" in one_line_error(err)


def test_config_file_device_is_checked_before_any_data(tmp_path, capsys, no_data):
    path = _toml(tmp_path, '[train]\ndevice = "tpu"\n')
    code, err = run_cli(train_argv(tmp_path / "run", tmp_path, "--config", path), capsys)
    assert code == 2 and "tpu" in one_line_error(err)


def test_time_steps_beyond_memory_are_refused_with_the_estimate(tmp_path, capsys, no_data):
    code, err = run_cli(train_argv(tmp_path / "run", tmp_path, "--time-steps", "100000"),
                        capsys)
    assert code == 2
    line = one_line_error(err)
    assert "GiB" in line and "--time-steps" in line and "lower" in line
    assert not (tmp_path / "run" / "last.pt").exists()


def test_inference_time_steps_beyond_memory_are_refused(tmp_path, capsys, no_data):
    path = saved_checkpoint(tmp_path / "last.pt")
    code, err = run_cli(["eval", "--checkpoint", path, "--time-steps", "100000",
                         "--batch-size", "1000", "--data-dir", tmp_path], capsys)
    assert code == 2 and "GiB" in one_line_error(err)
