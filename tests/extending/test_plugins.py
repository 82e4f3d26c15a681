"""Plugins from the shell: a lab's own quantizer (with an option), neuron (with its own
option) and dataset, written in one module, used through the `spikequant` command alone.

Two routes: the module installed as a package that declares a `spikequant.plugins` entry point
(pip-installed into a temporary folder), and the same module given as `--plugin FILE.py`.
Each trains, exports and infers in fresh processes, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from _writers import bar_events
from spikequant.plugins import load_plugin

PLUGIN = textwrap.dedent('''
    """A lab's components for spikequant: registered when this module is imported."""

    import numpy as np
    import torch
    from torch import nn

    from spikequant.data import DatasetInfo, register_dataset
    from spikequant.quant import QuantizedWeight, WeightQuantizer
    from spikequant.snn import SpikingNeuron


    class ClippedSign(WeightQuantizer):
        """Weights +-s, s the mean |w|; the gradient passes where |w| <= clip * s.

        Args:
            clip: where the straight-through gradient stops, in units of the scale.
        """

        name = "lab_sign"
        summary = "sign with a clipped straight-through gradient"
        bit_widths = (1,)

        def __init__(self, levels, clip: float = 1.0):
            super().__init__(levels)
            self.clip = clip
            self.register_buffer("scale", torch.ones(()))

        def init_from_weight(self, weight):
            self.scale.copy_(weight.abs().mean().clamp(min=1e-8))

        def forward(self, weight):
            hard = self.hard(weight)
            if not self.training:
                return hard
            inside = (weight.abs() <= self.clip * self.scale).to(weight.dtype)
            return hard.detach() + (weight - weight.detach()) * inside

        def quantize(self, weight):
            codes = (weight.detach() >= 0).long()
            return QuantizedWeight(codes, self.levels, self.scale)


    class AdaptiveLIF(SpikingNeuron, name="lab_alif"):
        """LIF whose threshold rises by `beta` with each spike and decays by `rho` a step.

        Args:
            tau: membrane time constant (the network's tau).
            rho: how much of the threshold's rise is left after a step.
            beta: the rise of the threshold a spike causes.
        """

        def __init__(self, tau: float = 2.0, rho: float = 0.8, beta: float = 0.5, **options):
            super().__init__(**options)
            self.tau, self.rho = tau, rho
            self.beta = nn.Parameter(torch.tensor(beta))

        def initial_state(self, x):
            return {**super().initial_state(x), "a": torch.zeros_like(x)}

        def charge(self, x, state):
            state["a"] = self.rho * state["a"] + state["spike"]
            v = state["v"]
            return v + (x - (v - self.rest)) / self.tau

        def firing_threshold(self, state):
            return self.threshold + self.beta * state["a"]


    class LabBars(DatasetInfo):
        """LABBARS/<direction>/<n>.npy: one recording of events a file."""

        def find(self, root, split):
            files = sorted(root.glob("*/*.npy"))
            return [(p, self.classes.index(p.parent.name), "bars_npy", None, None)
                    for p in files if p.parent.name in self.classes], [root]

        def read(self, path, fmt):
            return np.load(path, allow_pickle=False)


    register_dataset(LabBars(
        name="labbars", title="the lab's moving bars", classes=("left", "right", "up", "down"),
        sensor_size=(16, 16, 2), default_time_steps=4, folder="LABBARS",
        how_to_get="written by the lab's recorder", split="seeded stratified 75/25",
        test_fraction=0.25,
    ))
''')

PYPROJECT = textwrap.dedent('''
    [build-system]
    requires = ["setuptools>=64"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "spq-lab-plugin"
    version = "0.1"

    [project.entry-points."spikequant.plugins"]
    lab = "spq_lab_plugin"

    [tool.setuptools]
    packages = ["spq_lab_plugin"]
''')

SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def bars(tmp_path_factory) -> Path:
    """A data folder of the plugin's dataset: 12 recordings a direction."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for direction in ("left", "right", "up", "down"):
        folder = root / "LABBARS" / direction
        folder.mkdir(parents=True)
        for n in range(12):
            np.save(folder / f"{n}.npy", bar_events(direction, rng))
    return root


def _spikequant(args, cwd: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    paths = [str(SRC)] + ([str(extra_path)] if extra_path else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "SPIKEQUANT_KERNELS": "torch"}
    return subprocess.run([sys.executable, "-m", "spikequant", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def _train_export_infer(tmp_path: Path, data: Path, plugin_args: list[str],
                        extra_path: Path | None) -> tuple[dict, dict, dict]:
    out, model = tmp_path / "run", tmp_path / "bars.sqp"
    steps = [
        ["train", *plugin_args, "--dataset", "labbars", "--data-dir", data, "--out", out,
         "--quantizer", "lab_sign", "--quantizer-option", "clip=2",
         "--neuron", "lab_alif", "--neuron-option", "rho=0.5",
         "--epochs", "1", "--batch-size", "8", "--no-progress"],
        ["eval", *plugin_args, "--checkpoint", out / "last.pt", "--json"],
        ["export", *plugin_args, "--checkpoint", out / "last.pt", "--out", model],
        ["infer", *plugin_args, "--model", model, "--json"],
    ]
    outputs = []
    for argv in steps:
        done = _spikequant(argv, tmp_path, extra_path)
        assert done.returncode == 0, f"{argv[0]}: {done.stderr[-2000:]}"
        assert "Traceback" not in done.stderr
        outputs.append(done.stdout)
    metrics = json.loads((out / "metrics.json").read_text())
    evaluated = json.loads(outputs[1])
    inferred = json.loads(outputs[3])
    return metrics, evaluated, inferred


def _check(metrics: dict, evaluated: dict, inferred: dict, run_dir: Path) -> None:
    assert metrics["dataset"] == "labbars" and metrics["quantizer"] == "lab_sign"
    assert metrics["split"]["num_test"] == 12 and metrics["memory_savings"] > 8
    # the network was built with the plugin's neuron and its option, the quantizer with its own
    from spikequant.train import load_checkpoint

    ckpt = load_checkpoint(run_dir / "last.pt")
    assert ckpt["model_config"]["neuron"] == "lab_alif"
    assert ckpt["model_config"]["neuron_options"] == {"rho": 0.5}
    assert ckpt["model_config"]["quant_options"] == {"clip": 2.0}
    assert ckpt["run"]["quantizer_options"] == {"clip": 2.0}
    # the file alone gives the checkpoint's accuracy, sample for sample
    assert evaluated["total"] == inferred["total"] == 12
    assert evaluated["correct"] == inferred["correct"]


def test_an_installed_plugin_package_works_from_the_command_alone(tmp_path, bars):
    package = tmp_path / "pkg"
    (package / "spq_lab_plugin").mkdir(parents=True)
    (package / "pyproject.toml").write_text(PYPROJECT)
    (package / "spq_lab_plugin" / "__init__.py").write_text(PLUGIN)
    site = tmp_path / "site"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(package)],
        capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    work = tmp_path / "work"
    work.mkdir()  # no plugin module here: only the entry point can find it
    listed = _spikequant(["datasets", "--data-dir", bars], work, site)
    assert listed.returncode == 0 and "labbars" in listed.stdout, listed.stderr
    results = _train_export_infer(work, bars, [], site)
    _check(*results, work / "run")


def test_a_plugin_file_given_with_the_plugin_option(tmp_path, bars):
    plugin = tmp_path / "lab_plugin.py"
    plugin.write_text(PLUGIN)
    without = _spikequant(["train", "--dataset", "labbars", "--data-dir", bars, "--out",
                           tmp_path / "x"], tmp_path)
    assert without.returncode == 2 and "unknown dataset 'labbars'" in without.stderr
    assert "--plugin" in without.stderr  # the message says how to register one
    results = _train_export_infer(tmp_path, bars, ["--plugin", plugin], None)
    _check(*results, tmp_path / "run")
    forgot = _spikequant(["infer", "--model", tmp_path / "bars.sqp"], tmp_path)
    assert forgot.returncode == 2 and "Traceback" not in forgot.stderr
    assert (f"uses network 'labbars', neuron 'lab_alif', which nothing in this process "
            f"registers; it was trained with --plugin {plugin}: pass the same") in forgot.stderr


def test_a_plugin_that_fails_is_one_clear_line(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('the lab server is down')\n")
    done = _spikequant(["train", "--plugin", broken, "--out", tmp_path / "x"], tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "plugin" in done.stderr and "the lab server is down" in done.stderr
    missing = _spikequant(["models", "--plugin", "no_such_lab_module"], tmp_path)
    assert missing.returncode == 2 and "plugin 'no_such_lab_module' not found" in missing.stderr


def test_a_config_file_names_its_plugins(tmp_path):
    plugin = tmp_path / "lab_plugin.py"
    plugin.write_text(PLUGIN)
    config = tmp_path / "run.toml"
    config.write_text(f'[train]\nplugins = ["{plugin}"]\nquantizer = "lab_sign"\n'
                      '[train.quantizer_options.lab_sign]\nclip = 3.0\n')
    from spikequant.cli import plugins_named

    assert plugins_named(["train", "--config", str(config), "--plugin", "x"]) == ["x", str(plugin)]
    code = ("import json, sys\n"
            "from spikequant.train.config import TrainConfig, load_config_file\n"
            "cfg = TrainConfig.from_dict(load_config_file(sys.argv[1]))\n"
            "cfg.validate()\n"
            "print(json.dumps(cfg.quantizer_options))\n")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([sys.executable, "-c", code, str(config)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"clip": 3.0}


def test_load_plugin_imports_once_and_names_what_failed(tmp_path):
    module = tmp_path / "counter_plugin.py"
    module.write_text("import builtins\nbuiltins.SPQ_PLUGIN_LOADS = "
                      "getattr(builtins, 'SPQ_PLUGIN_LOADS', 0) + 1\n")
    import builtins

    first, second = load_plugin(str(module)), load_plugin(str(module))
    assert first is second and builtins.SPQ_PLUGIN_LOADS == 1
    del builtins.SPQ_PLUGIN_LOADS
