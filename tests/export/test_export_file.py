"""The packed model file: exact reload, sizes, and clear errors on damaged files."""

import json
import struct

import pytest
import torch
from torch import nn

from spikequant.export import (
    fp32_model_bytes,
    load_packed,
    memory_report,
    memory_report_from_file,
    packed_model_bytes,
    read_packed,
    save_packed,
)
from spikequant.export.modelfile import FORMAT_VERSION
from spikequant.quant import quantize_model
from spikequant.snn import PLIF, SpikingSequential


def tiny_net() -> nn.Module:
    return SpikingSequential(
        nn.Conv2d(2, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), PLIF(),
        nn.Flatten(), nn.Linear(8 * 6 * 6, 10), PLIF(),
    )


def trained_like(quantizer: str, bits: int, **options) -> nn.Module:
    torch.manual_seed(0)
    net = tiny_net()
    bn = net[1]
    bn.running_mean.uniform_(-0.2, 0.2)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    net[2].w.data.fill_(0.3)
    return quantize_model(net, quantizer, bits, **options).eval()


CASES = [("sigmoid", 1, {}), ("sigmoid", 2, {"per_channel": True}), ("ste", 3, {}),
         ("xnor", 1, {"per_channel": True}), ("lsq", 4, {}), ("dorefa", 5, {}), ("ptq", 8, {})]


@pytest.mark.parametrize("quantizer,bits,options", CASES)
def test_reload_gives_the_same_weights_and_outputs(tmp_path, quantizer, bits, options):
    net = trained_like(quantizer, bits, **options)
    path = tmp_path / "m.sqp"
    written = save_packed(net, path, {"run": {"dataset": "toy"}})
    assert written == path.stat().st_size == packed_model_bytes(net, {"run": {"dataset": "toy"}})
    loaded, meta = load_packed(path, model=tiny_net())
    assert meta == {"run": {"dataset": "toy"}} and not loaded.training
    assert torch.equal(loaded[0].weight, net[0].weight)  # bit for bit: scale * levels[codes]
    assert torch.equal(loaded[4].weight, net[4].weight)
    x = (torch.rand(3, 2, 2, 6, 6) < 0.4).float()
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))


def test_file_is_packed_at_the_code_width(tmp_path):
    net = trained_like("sigmoid", 3)
    save_packed(net, tmp_path / "m.sqp")
    info, tensors = read_packed(tmp_path / "m.sqp")
    codes = tensors["q:0.weight:codes"]
    assert codes.dtype == torch.uint8 and codes.numel() == -(-8 * 2 * 9 * 3 // 8)
    entry = info["layers"][0]
    assert entry["bits"] == 3 and entry["num_levels"] == 7 and entry["shape"] == [8, 2, 3, 3]
    assert set(info["floats"]) == {
        "1.weight", "1.bias", "1.running_mean", "1.running_var", "2.w", "4.bias", "5.w"}


def test_fp32_bytes_count_every_number_inference_needs():
    net = trained_like("sigmoid", 1)
    numbers = 8 * 2 * 9 + 4 * 8 + 1 + 288 * 10 + 10 + 1
    assert fp32_model_bytes(net) == 4 * numbers
    assert fp32_model_bytes(tiny_net()) == 4 * numbers  # the float twin needs the same


def test_float16_halves_the_float_parts(tmp_path):
    net = trained_like("sigmoid", 1)
    small = memory_report(net, float_dtype="float16")
    full = memory_report(net)
    assert small.totals()["float_part_bytes"] * 2 == full.totals()["float_part_bytes"]
    save_packed(net, tmp_path / "h.sqp", float_dtype="float16")
    loaded, _ = load_packed(tmp_path / "h.sqp", model=tiny_net())
    assert torch.equal(loaded[0].weight, net[0].weight)  # weights stay exact
    assert torch.allclose(loaded[1].running_var, net[1].running_var, rtol=1e-3)


def test_report_from_file_matches_report_from_model(tmp_path):
    net = trained_like("lsq", 2)
    save_packed(net, tmp_path / "m.sqp")
    a, b = memory_report(net).totals(), memory_report_from_file(tmp_path / "m.sqp").totals()
    assert a == b and a["file_bytes"] == (tmp_path / "m.sqp").stat().st_size
    assert a["fp32_bytes"] == fp32_model_bytes(net)


# --- damaged files -------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "m.sqp"
    save_packed(trained_like("sigmoid", 1), path)
    return path


def _header(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return data, n, json.loads(data[8 : 8 + n])


def _rewrite_header(path, header, data, n):
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def test_flipped_payload_byte_is_caught(saved):
    data = bytearray(saved.read_bytes())
    data[-5] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="hash mismatch"):
        load_packed(saved, model=tiny_net())


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.999])
def test_truncated_file_is_caught(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="truncated"):
        load_packed(saved, model=tiny_net())


def test_trailing_bytes_are_caught(saved):
    saved.write_bytes(saved.read_bytes() + b"\0" * 8)
    with pytest.raises(ValueError, match="not fully covered"):
        load_packed(saved, model=tiny_net())


def test_newer_version_is_refused(saved):
    data, n, header = _header(saved)
    header["__metadata__"]["format_version"] = str(FORMAT_VERSION + 1)
    _rewrite_header(saved, header, data, n)
    with pytest.raises(ValueError, match="upgrade spikequant"):
        load_packed(saved, model=tiny_net())


def test_edited_metadata_is_caught(saved):
    data, n, header = _header(saved)
    info = json.loads(header["__metadata__"]["spikequant"])
    info["layers"][0]["levels"] = [-1.0, 2.0]
    header["__metadata__"]["spikequant"] = json.dumps(info)
    _rewrite_header(saved, header, data, n)
    with pytest.raises(ValueError, match="hash mismatch"):
        load_packed(saved, model=tiny_net())


def test_other_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not a 'spikequant-packed' file"):
        load_packed(other, model=tiny_net())
    with pytest.raises(FileNotFoundError, match="spikequant export"):
        load_packed(tmp_path / "missing.sqp")


def test_wrong_architecture_is_refused(saved):
    other = SpikingSequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                              PLIF(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10), PLIF())
    with pytest.raises(ValueError, match="do not fit"):
        load_packed(saved, model=other)


def test_no_config_needs_a_model(saved):
    with pytest.raises(ValueError, match="pass model="):
        load_packed(saved)
