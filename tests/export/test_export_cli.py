"""`spikequant export / infer / report` end to end on ndigits: the file alone predicts exactly
what the checkpoint predicts, for every test sample."""

import json

import pytest
import torch
from torch.utils.data import DataLoader

from spikequant.cli import main
from spikequant.data import get_dataset
from spikequant.export import load_packed
from spikequant.models import build
from spikequant.quant import float_weight, weight_quantizer
from spikequant.train import evaluate, model_from_checkpoint
from spikequant.train.checkpoint import CHECKPOINT_VERSION, atomic_torch_save

STEPS = 3


@pytest.fixture(scope="module")
def checkpoint(ndigits_dir, tmp_path_factory):
    """A checkpoint as `spikequant train` writes it, with random weights that spike."""
    torch.manual_seed(1)
    net = build("ndigits", "sigmoid", 1)
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                w = float_weight(layer)
                w.mul_(2.0 * w[0].numel() ** 0.5)
                weight_quantizer(layer).reset(w)
    run = {"dataset": "ndigits", "time_steps": STEPS, "data_dir": str(ndigits_dir),
           "batch_size": 128, "quantizer": "sigmoid", "bits": 1}
    path = tmp_path_factory.mktemp("run") / "last.pt"
    atomic_torch_save({"version": CHECKPOINT_VERSION, "model_config": net.config,
                       "model": net.state_dict(), "run": run, "epoch": 1}, path)
    return path


def _json_out(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_export_infer_equals_eval(checkpoint, tmp_path, capsys):
    out = tmp_path / "model.sqp"
    exported = _json_out(capsys, ["export", "-c", str(checkpoint), "-o", str(out), "--json"])
    assert out.stat().st_size == exported["totals"]["file_bytes"]
    inferred = _json_out(capsys, ["infer", "--model", str(out), "--json"])
    evaluated = _json_out(capsys, ["eval", "--checkpoint", str(checkpoint), "--json"])
    assert inferred["time_steps"] == STEPS and inferred["total"] == evaluated["total"]
    assert inferred["accuracy"] == evaluated["accuracy"]

    # every sample, not just the count
    run = torch.load(checkpoint, weights_only=True)["run"]
    data = get_dataset("ndigits", "test", data_dir=run["data_dir"], time_steps=STEPS,
                       progress=False)
    loader = DataLoader(data, batch_size=128)
    from_file = evaluate(load_packed(out)[0], loader)["predictions"]
    from_ckpt = evaluate(model_from_checkpoint(checkpoint), loader)["predictions"]
    assert from_file.unique().numel() > 1  # the network is not stuck on one class
    assert torch.equal(from_file, from_ckpt)


def test_export_text_report_and_nir(checkpoint, tmp_path, capsys):
    pytest.importorskip("nir")
    out, graph = tmp_path / "m.sqp", tmp_path / "m.nir"
    capsys.readouterr()
    assert main(["export", "-c", str(checkpoint), "-o", str(out), "--nir", str(graph)]) == 0
    text = capsys.readouterr().out
    assert "saving (fp32 / file)" in text and "conv1" in text and graph.is_file()


def test_report_with_synops(checkpoint, tmp_path, capsys):
    out = tmp_path / "m.sqp"
    main(["export", "-c", str(checkpoint), "-o", str(out)])
    from_file = _json_out(capsys, ["report", "--model", str(out), "--synops", "--num-samples",
                                   "16", "--json"])
    from_ckpt = _json_out(capsys, ["report", "--checkpoint", str(checkpoint), "--synops",
                                   "--num-samples", "16", "--json"])
    assert from_file["memory"]["totals"] == from_ckpt["memory"]["totals"]
    assert from_file["synops"]["totals"] == from_ckpt["synops"]["totals"]
    totals = from_file["synops"]["totals"]
    assert totals["samples"] == 16 and totals["ac_per_sample"] > 0
    assert totals["energy_quantized_uj"] < totals["energy_fp32_weights_uj"]
    layers = {row["name"]: row for row in from_file["synops"]["layers"]}
    assert not layers["conv1"]["spiking_input"] and layers["conv2"]["spiking_input"]
    assert layers["conv2"]["bits"] == 1


def test_report_of_a_registered_network(capsys):
    capsys.readouterr()
    assert main(["report", "--network", "ndigits", "--quantizer", "lsq", "--bits", "2"]) == 0
    text = capsys.readouterr().out
    assert "ndigits, quantizer lsq, 2 bit" in text and "weights alone: 16.00x" in text


def test_infer_on_a_damaged_file_fails_cleanly(checkpoint, tmp_path, capsys):
    out = tmp_path / "m.sqp"
    main(["export", "-c", str(checkpoint), "-o", str(out)])
    out.write_bytes(out.read_bytes()[:-100])
    capsys.readouterr()
    assert main(["infer", "--model", str(out)]) == 2
    assert "truncated" in capsys.readouterr().err
