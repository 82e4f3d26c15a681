"""The quantization sidecar beside a NIR graph: the packed model file rebuilt from graph +
sidecar is the file `spikequant export` writes, byte for byte; a sidecar that does not belong to
the graph is refused with one line naming the layer."""

import base64
import json

import numpy as np
import pytest
import torch

from _helpers import lively_network
from spikequant.cli import main
from spikequant.errors import NIRGraphError
from spikequant.export import serialize_packed
from spikequant.train.checkpoint import model_from_checkpoint

nir = pytest.importorskip("nir", reason="the nir package is not installed (extra 'nir')")
from spikequant.export.nir_export import write_nir  # noqa: E402
from spikequant.export.nir_sidecar import packed_from_nir, sidecar_path  # noqa: E402


@pytest.fixture(scope="module")
def fixed_point_net(tmp_path_factory, ndigits_dir):
    out = tmp_path_factory.mktemp("sidecar") / "run"
    assert main(["train", "--dataset", "ndigits", "--out", str(out), "--data-dir",
                 str(ndigits_dir), "--state-bits", "10", "--epochs", "1", "--batch-size", "32",
                 "--max-batches", "2", "--time-steps", "4", "--val-fraction", "0",
                 "--calibration-samples", "64", "--no-progress"]) == 0
    return model_from_checkpoint(out / "last.pt").eval()


@pytest.mark.parametrize("kind", ["binary", "ternary_lsq", "fixed_point_state"])
def test_packed_model_rebuilt_from_graph_and_sidecar_is_bit_exact(tmp_path, kind, request):
    if kind == "fixed_point_state":
        net = request.getfixturevalue("fixed_point_net")
    else:
        net = lively_network("ndigits", *(("sigmoid", 1) if kind == "binary" else ("lsq", 2)))
    graph_file = tmp_path / "net.nir"
    write_nir(net, graph_file, time_steps=4)
    side = json.loads(sidecar_path(graph_file).read_text())
    assert side["format"] == "spikequant-nir-quant" and len(side["layers"]) == 3
    first = side["layers"][0]
    assert first["node"] == "conv1" and first["bits"] == (2 if kind == "ternary_lsq" else 1)
    packed = base64.b64decode(first["codes"])
    assert len(packed) == -(-first["count"] * first["bits"] // 8)
    rebuilt = packed_from_nir(graph_file, sidecar_path(graph_file))
    assert rebuilt == serialize_packed(net)


def test_sidecar_from_another_network_is_refused(tmp_path):
    write_nir(lively_network("ndigits"), tmp_path / "a.nir")
    torch.manual_seed(1)
    other = lively_network("ndigits")
    with torch.no_grad():
        other.classifier.parametrizations.weight.original.neg_()
    write_nir(other, tmp_path / "b.nir")
    with pytest.raises(NIRGraphError, match="node 'classifier': its weights are not"):
        packed_from_nir(tmp_path / "a.nir", sidecar_path(tmp_path / "b.nir"))


def test_damaged_sidecar_names_the_problem(tmp_path):
    write_nir(lively_network("ndigits"), tmp_path / "a.nir")
    side = json.loads(sidecar_path(tmp_path / "a.nir").read_text())
    del side["layers"][1]["levels"]
    with pytest.raises(NIRGraphError, match="sidecar layer 'conv2': missing or malformed"):
        packed_from_nir(tmp_path / "a.nir", side)
    side = json.loads(sidecar_path(tmp_path / "a.nir").read_text())
    side["tensors"][0]["data"] = base64.b64encode(
        np.ones(len(base64.b64decode(side["tensors"][0]["data"])), np.uint8).tobytes()).decode()
    with pytest.raises(NIRGraphError, match="packed_sha256"):
        packed_from_nir(tmp_path / "a.nir", side)
