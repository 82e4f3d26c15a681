"""Helpers shared by the test files: run the command the way a user does, notice data being read
when it must not be, keep training runs to a second, build networks whose every layer spikes.
conftest.py registers the fixtures defined here for every test file."""

from __future__ import annotations

import warnings

import pytest
import torch

from spikequant import _cpu_kernels
from spikequant.cli import main

# whether this machine has a C compiler, so that the compiled CPU kernels build
HAS_CC = _cpu_kernels.compiler() is not None


def run_cli(argv, capsys) -> tuple[int, str]:
    """(exit status, stderr) of `spikequant ARGV`; argparse's exits included. Any other
    exception propagates: a traceback is what these tests exist to rule out."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def one_line_error(err: str) -> str:
    """The error line of stderr (argparse prints its usage above it)."""
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


def forbid_data(monkeypatch) -> None:
    """From now on, fail the test if a dataset is opened: the command had to stop before."""

    def opened(*args, **kwargs):
        raise AssertionError("a dataset was opened before the bad input was refused")

    monkeypatch.setattr("spikequant.data.get_dataset", opened)


@pytest.fixture
def no_data(monkeypatch):
    """forbid_data for the whole test."""
    forbid_data(monkeypatch)


@pytest.fixture
def fast_eval(monkeypatch):
    """Per-epoch validation and test accuracy from a table {epoch: accuracy} (default 0.5)
    instead of evaluating, so a training run takes about a second. Returns the table to
    fill."""
    table: dict[int, float] = {}

    def evaluate_epoch(run):
        accuracy = table.get(run.epoch + 1, 0.5)
        return {"val_accuracy": accuracy, "test_accuracy": accuracy}

    monkeypatch.setattr("spikequant.train.trainer.evaluate_epoch", evaluate_epoch)
    return table


def train_argv(out, data, *extra):
    """A one-batch ndigits run (batch 16), for the guarantees tests."""
    return ["train", "--dataset", "ndigits", "--out", out, "--data-dir", data,
            "--batch-size", "16", "--max-batches", "1", "--no-progress", *extra]


def saved_checkpoint(path, run=None, model=None, **entries):
    """A checkpoint as `spikequant train` writes it (with this version's save function)."""
    from spikequant.models import build
    from spikequant.train.checkpoint import CHECKPOINT_VERSION, atomic_torch_save

    torch.manual_seed(0)
    model = model or build("ndigits", "sigmoid", 1, channels=4)
    state = {"version": CHECKPOINT_VERSION, "model_config": model.config,
             "model": model.state_dict(), "run": run or {"dataset": "ndigits", "time_steps": 2},
             "epoch": 1, **entries}
    atomic_torch_save(state, path)
    return path


def train_args(out, data, *extra):
    """A short real ndigits run: three batches of 32 an epoch."""
    return ["train", "--dataset", "ndigits", "--out", str(out), "--data-dir", str(data),
            "--batch-size", "32", "--max-batches", "3", "--no-progress", *extra]


def run_train(out, data, *extra) -> int:
    """Exit status of `spikequant train` with train_args."""
    return main(train_args(out, data, *extra))


@pytest.fixture
def quiet_partial_datasets():
    """No PartialDatasetWarning: the tests' data folders hold a few recordings on purpose."""
    from spikequant.data import PartialDatasetWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PartialDatasetWarning)
        yield


def lively_network(name: str, quantizer: str = "sigmoid", bits: int = 1,
                   **overrides) -> torch.nn.Module:
    """A registered network in eval mode, with random weights scaled so that every layer spikes
    (a silent network would make any two networks agree)."""
    from spikequant.models import build
    from spikequant.quant import float_weight, weight_quantizer

    torch.manual_seed(0)
    net = build(name, quantizer, bits, **overrides)
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                w = float_weight(layer)
                w.mul_(3.0 * w[0].numel() ** 0.5)
                if weight_quantizer(layer) is not None:
                    weight_quantizer(layer).reset(w)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


# SpikingJelly's datasets package imports torchvision, which the project does not install
# (SpikingJelly goes in with --no-deps); its readers need none of it. The start of a child
# process's script that stubs those packages out, before it imports SpikingJelly's readers.
SPIKINGJELLY_STUBS = """
import sys, types
from unittest import mock
class Stub(types.ModuleType):
    __path__ = []
    def __getattr__(self, name):
        return mock.MagicMock()
for name in ("torchvision", "torchvision.transforms", "torchvision.datasets",
             "torchvision.datasets.utils", "torchvision.datasets.folder", "torchaudio"):
    sys.modules.setdefault(name, Stub(name))
"""


def run_neuron(fn, x, v0, k, v_reset, decay_input, detach, kind, store_v, loss_weights):
    """Spikes, potentials and gradients (input, v0 if given, decay if a tensor) of one run of a
    multi-step neuron implementation `fn` (the arguments of functional._LIFMultiStep.apply)."""
    from spikequant.snn.surrogate import SURROGATES

    xi = x.clone().requires_grad_()
    vi = v0.clone().requires_grad_() if v0 is not None else None
    ki = k.clone().requires_grad_() if isinstance(k, torch.Tensor) else k
    alpha = SURROGATES[kind].default_alpha
    spikes, v = fn(xi, vi, ki, 1.0, v_reset, decay_input, detach, kind, alpha, store_v)
    # a loss that weights neurons differently and reaches the potentials too
    loss = (spikes * loss_weights).sum() + 0.1 * (v * v).sum()
    inputs = [xi] + [t for t in (vi, ki) if isinstance(t, torch.Tensor)]
    return spikes.detach(), v.detach(), torch.autograd.grad(loss, inputs)


def assert_neuron_matches(fn, x, v0, k, v_reset, decay_input, detach, kind, store_v):
    """A kernel `fn` gives the spikes, potentials and gradients of the torch reference."""
    from spikequant.snn.functional import _LIFMultiStep

    gen = torch.Generator().manual_seed(1)
    weights = torch.rand(x.shape, generator=gen).to(x.device)
    args = (x, v0, k, v_reset, decay_input, detach, kind, store_v, weights)
    s_ref, v_ref, g_ref = run_neuron(_LIFMultiStep.apply, *args)
    s_got, v_got, g_got = run_neuron(fn, *args)
    assert 0.05 < s_ref.mean() < 0.95  # the case exercises both branches
    assert torch.equal(s_got, s_ref)
    torch.testing.assert_close(v_got, v_ref, rtol=1e-6, atol=1e-6)
    assert len(g_got) == len(g_ref)
    for got, want in zip(g_got, g_ref):
        # the decay gradient is a sum over every neuron and step: relative to its size
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
