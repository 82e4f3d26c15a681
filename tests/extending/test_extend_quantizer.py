"""A quantizer defined in this file alone, with no edit anywhere else: it registers by name and
then trains, exports and infers through the command line like a built-in one. Its class is
the code of the tutorial docs/tutorials/add-a-quantizer.md (a test below keeps the two the same)."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
import torch

from spikequant.cli import main
from spikequant.quant import (
    QuantizedWeight,
    WeightQuantizer,
    make_quantizer,
    power_of_two_levels,
    quantizer_names,
    quantizer_registered,
)
from spikequant.quant.levels import nearest_level_index

DOC = Path(__file__).resolve().parents[2] / "docs" / "tutorials" / "add-a-quantizer.md"

# tiny tensors: a second thread only adds synchronisation (see conftest)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class PowerOfTwoQuantizer(WeightQuantizer, register=False):
    """Weights s * {0, +-1, +-2, +-4, ...} (a product is a shift), straight-through rounding."""

    name = "pow2"
    summary = "zero and signed powers of two"
    bit_widths = (2, 3, 4)  # 3, 7 or 15 levels: exponents up to 0, 2 or 6
    takes_levels = False  # it makes its own levels: __init__ gets bits

    def __init__(self, bits: int) -> None:
        super().__init__(power_of_two_levels(2 ** (bits - 1) - 2))
        self.register_buffer("scale", torch.ones(()))

    def init_from_weight(self, weight: torch.Tensor) -> None:
        self.scale.copy_(weight.abs().max().clamp(min=1e-8) / self.level_absmax)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        hard = self.hard(weight)
        return weight + (hard - weight).detach() if self.training else hard

    def quantize(self, weight: torch.Tensor) -> QuantizedWeight:
        codes = nearest_level_index(weight.detach() / self.scale, self.levels)
        return QuantizedWeight(codes, self.levels, self.scale)


@pytest.fixture
def pow2():
    """The quantizer registered for one test: the others never see it."""
    with quantizer_registered(PowerOfTwoQuantizer):
        yield PowerOfTwoQuantizer
    assert "pow2" not in quantizer_names()


def test_registered_only_while_the_fixture_holds_it(pow2, capsys):
    assert quantizer_names()[-1] == "pow2"
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "pow2 (zero and signed powers of two)" in " ".join(capsys.readouterr().out.split())


def test_unregistered_it_is_an_unknown_name(capsys):
    with pytest.raises(ValueError, match="unknown quantizer 'pow2'; choose one of none, sigmoid"):
        make_quantizer("pow2", bits=2)
    with pytest.raises(SystemExit):
        main(["train", "--quantizer", "pow2"])
    assert "invalid choice: 'pow2'" in capsys.readouterr().err


@pytest.mark.parametrize("bits, levels", [
    (2, [-1, 0, 1]), (3, [-4, -2, -1, 0, 1, 2, 4]), (4, [-64, -32, -16, -8, -4, -2, -1, 0, 1,
                                                         2, 4, 8, 16, 32, 64])])
def test_built_from_bits_like_a_builtin(pow2, bits, levels):
    q = make_quantizer("pow2", bits=bits)
    assert isinstance(q, pow2) and q.levels.tolist() == levels and q.bits == bits
    w = torch.randn(6, 5, requires_grad=True)
    q.reset(w.detach())
    assert float(q.scale) == pytest.approx(float(w.detach().abs().max()) / levels[-1])
    # hard in eval, straight-through in training
    hard = q.eval()(w)
    assert torch.equal(hard, q.quantize(w).dequantize())
    # each weight goes to its nearest level (worked out here, not with the library's helper);
    # a subset-of-the-levels check would let every weight collapse to one level
    grid = torch.tensor(levels, dtype=w.dtype)
    nearest = grid[(w.detach()[..., None] / q.scale - grid).abs().argmin(-1)] * q.scale
    torch.testing.assert_close(hard, nearest, rtol=1e-6, atol=0)
    q.train()(w).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_its_declaration_gives_the_errors(pow2):
    with pytest.raises(ValueError, match=r"pow2 allows only bits=2..4, got bits=1; "
                                         r"for 1 bits use quantizer sigmoid"):
        make_quantizer("pow2", bits=1)
    with pytest.raises(ValueError, match="pow2 uses its own levels .* pass bits=2..4, not levels"):
        make_quantizer("pow2", bits=2, levels=[-1, 0, 1])
    with pytest.raises(ValueError, match="'pow2' has no option.*per_channel.*options are: none"):
        make_quantizer("pow2", bits=2, per_channel=True)


def test_a_sweep_runs_it_at_its_bit_widths_only(pow2, tmp_path):
    from spikequant.train.sweep import SweepSpec

    spec = SweepSpec(datasets=["ndigits"], quantizers=["pow2", "none"], bits=[1, 2, 4],
                     seeds=[0], out=tmp_path, train={})
    assert [(p.quantizer, p.bits) for p in spec.points()] == [
        ("none", 32), ("pow2", 2), ("pow2", 4)]


def _json_out(capsys, argv) -> dict:
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 0
    out = capsys.readouterr().out
    return json.loads(out[out.rindex("{\n"):] if not out.startswith("{") else out)


def test_trains_exports_and_infers_through_the_cli(pow2, tmp_path, ndigits_dir, capsys):
    run = tmp_path / "run"
    summary = _json_out(capsys, [
        "train", "--dataset", "ndigits", "--data-dir", ndigits_dir, "--out", run,
        "--quantizer", "pow2", "--bits", "3", "--epochs", "1", "--time-steps", "4",
        "--batch-size", "32", "--max-batches", "3", "--no-progress"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["quantizer"] == "pow2" and metrics["bits"] == 3
    assert summary["test_accuracy"] == metrics["test_accuracy"]
    assert metrics["memory_savings"] > 8  # 3-bit codes against float32

    model = tmp_path / "model.sqp"
    exported = _json_out(capsys, ["export", "-c", run / "last.pt", "-o", model, "--json"])
    assert model.stat().st_size == exported["totals"]["file_bytes"]
    from spikequant.export.modelfile import read_packed

    info, tensors = read_packed(model)
    assert info["layers"] and all(e["bits"] == 3 for e in info["layers"])
    for entry in info["layers"]:
        assert tensors[f"q:{entry['key']}:levels"].tolist() == [-4, -2, -1, 0, 1, 2, 4]

    inferred = _json_out(capsys, ["infer", "--model", model, "--json"])
    evaluated = _json_out(capsys, ["eval", "--checkpoint", run / "last.pt", "--json"])
    assert inferred["total"] == evaluated["total"] > 0
    assert inferred["accuracy"] == evaluated["accuracy"]
    assert evaluated["accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_the_guide_shows_this_quantizer():
    text = DOC.read_text()
    section = text[:text.index("\n## ")]  # the page's first part: the class, in one block
    shown = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    source = inspect.getsource(PowerOfTwoQuantizer).replace(", register=False", "")
    assert source in shown
    assert len(section.strip().splitlines()) < 45
