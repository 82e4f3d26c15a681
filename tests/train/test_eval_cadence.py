"""How often a run is evaluated (--eval-every, --test-every): empty log cells for the epochs
not evaluated, best.pt chosen among the evaluated ones and its test accuracy measured at the
end, and trained weights that do not depend on the cadence."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
import torch

from _helpers import train_args
from spikequant.cli import main
from spikequant.train import epoch_eval, fit
from spikequant.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _rows(out):
    with (out / "log.csv").open() as fh:
        return list(csv.DictReader(fh))


def test_best_pt_of_an_earlier_epoch_gets_its_test_accuracy_at_the_end(
        tmp_path, ndigits_dir, monkeypatch, capsys):
    """Evaluated epochs 2 and 3 (the last); validation prefers epoch 2, which measured no test
    accuracy, so the run measures best.pt's at the end: the accuracy `eval` gives for it."""
    real = epoch_eval.accuracy
    val_by_epoch = {2: 0.9, 3: 0.5}

    def accuracy(run, loader, sharded=True, net=None):
        if loader is run.loaders.val:
            return val_by_epoch[run.epoch + 1]
        return real(run, loader, sharded, net)

    monkeypatch.setattr(epoch_eval, "accuracy", accuracy)
    out = tmp_path / "run"
    assert main(train_args(out, ndigits_dir, "-q", "sigmoid", "-e", "3",
                           "--eval-every", "2")) == 0
    rows = _rows(out)
    assert [r["val_accuracy"] for r in rows] == ["", "0.9", "0.5"]
    assert [r["test_accuracy"] == "" for r in rows] == [True, True, False]
    assert rows[0]["hard_train_accuracy"] == "" and rows[1]["hard_train_accuracy"] != ""
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_epoch"] == 2 and metrics["eval_every"] == 2
    assert metrics["test_accuracy"] == pytest.approx(float(rows[2]["test_accuracy"]))
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(
        metrics["best_test_accuracy"])
    # the checkpoint carries the complete selection, so a resumed finished run reports it too
    last = torch.load(out / "last.pt", weights_only=False)
    assert last["selection"]["test_accuracy_at_best_val"] == metrics["best_test_accuracy"]


def test_test_every_measures_test_accuracy_on_its_epochs(tmp_path, ndigits_dir):
    out = tmp_path / "run"
    assert main(train_args(out, ndigits_dir, "-q", "ste", "-e", "3", "--eval-every", "3",
                           "--test-every", "1")) == 0
    rows = _rows(out)
    assert all(r["test_accuracy"] != "" and r["val_accuracy"] != "" for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["max_test_accuracy_over_epochs"] == pytest.approx(
        max(float(r["test_accuracy"]) for r in rows))


def test_trained_weights_do_not_depend_on_the_cadence(tmp_path, ndigits_dir):
    """Evaluation draws nothing from the training's random numbers (here dropout's)."""
    states = []
    for every in (1, 2):
        cfg = TrainConfig(dataset="ndigits", quantizer="sigmoid", epochs=2, batch_size=32,
                          max_batches=3, seed=3, eval_every=every, progress=False,
                          data_dir=str(ndigits_dir), out=str(tmp_path / f"every{every}"),
                          model_overrides={"dropout": 0.5})
        fit(cfg)
        states.append(torch.load(tmp_path / f"every{every}" / "last.pt",
                                 weights_only=False)["model"])
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def _fake_run(quantizer, train, val, calibration, eval_every=None, max_batches=None):
    sized = lambda n: SimpleNamespace(sampler=range(n))  # noqa: E731
    cfg = SimpleNamespace(eval_every=eval_every, max_batches=max_batches, batch_size=16,
                          quantizer=quantizer, bn_recalibration=True)
    loaders = SimpleNamespace(train=sized(train), val=sized(val) if val else None,
                              calibration=sized(calibration))
    return SimpleNamespace(config=cfg, loaders=loaders, net=torch.nn.BatchNorm2d(2))


def test_the_automatic_cadence_follows_the_evaluated_share():
    # ndigits' sizes: 1,294 trained, 144 validated, 256 re-estimated a quantized evaluation
    assert epoch_eval.eval_every(_fake_run("sigmoid", 1294, 144, 256)) == 3
    assert epoch_eval.eval_every(_fake_run("none", 1294, 144, 256)) == 1  # no re-estimation
    # N-MNIST's 54,000 / 6,000: every epoch
    assert epoch_eval.eval_every(_fake_run("sigmoid", 54000, 6000, 256)) == 1
    assert epoch_eval.eval_every(_fake_run("sigmoid", 1294, 144, 256, eval_every=5)) == 5
    # --max-batches trains fewer samples an epoch
    assert epoch_eval.eval_every(_fake_run("sigmoid", 1294, 144, 256, max_batches=10)) == 20
