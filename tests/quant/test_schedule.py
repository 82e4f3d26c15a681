"""TemperatureSchedule: the reference linear ramp, exponential and cosine ramps, the cap,
per-epoch and per-step updates, saved state, and its errors."""

import math

import pytest
import torch
from torch import nn

from spikequant.quant import TemperatureSchedule, quantize_model, weight_quantizer


def test_linear_is_t0_times_epoch_plus_one():
    s = TemperatureSchedule("linear", t0=5.0, t_max=None)
    assert [s.value(e) for e in range(4)] == [5.0, 10.0, 15.0, 20.0]
    assert s.current == 5.0  # before any update: epoch 0


def test_cap():
    s = TemperatureSchedule("linear", t0=300.0, t_max=1000.0)
    assert [s.value(e) for e in range(5)] == [300.0, 600.0, 900.0, 1000.0, 1000.0]
    e = TemperatureSchedule("exponential", t0=1.0, growth=10.0, t_max=500.0)
    assert [e.value(k) for k in range(4)] == [1.0, 10.0, 100.0, 500.0]


def test_exponential():
    s = TemperatureSchedule("exponential", t0=2.0, growth=1.5, t_max=None)
    assert [s.value(e) for e in range(3)] == pytest.approx([2.0, 3.0, 4.5])
    assert math.isfinite(s.value(10_000))  # no overflow without a cap


def test_cosine_runs_from_t0_to_t_max():
    s = TemperatureSchedule("cosine", t0=1.0, t_max=101.0, total_epochs=10)
    assert s.value(0) == 1.0
    assert s.value(5) == pytest.approx(51.0)  # half-way along the half cosine
    assert s.value(10) == 101.0 and s.value(20) == 101.0
    values = [s.value(e / 4) for e in range(41)]
    assert all(b >= a for a, b in zip(values, values[1:]))


def test_constant():
    s = TemperatureSchedule("constant", t0=7.0)
    assert {s.value(e) for e in range(5)} == {7.0}


def _model():
    torch.manual_seed(0)
    return quantize_model(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), "sigmoid", bits=1)


def _temperatures(model):
    return [float(weight_quantizer(m).temperature) for m in model]


def test_per_epoch_update_ignores_the_step():
    model = _model()
    s = TemperatureSchedule("linear", t0=2.0)
    assert s.update(model, epoch=3, step=7, steps_per_epoch=10) == 8.0
    assert _temperatures(model) == [8.0, 8.0]


def test_per_step_update_is_fractional():
    model = _model()
    s = TemperatureSchedule("linear", t0=2.0, per_step=True)
    assert s.update(model, epoch=3, step=5, steps_per_epoch=10) == pytest.approx(9.0)
    assert _temperatures(model) == pytest.approx([9.0, 9.0])
    assert s.current == pytest.approx(9.0)


def test_state_round_trip(tmp_path):
    s = TemperatureSchedule("cosine", t0=2.0, t_max=50.0, total_epochs=7, per_step=True)
    s.update(_model(), epoch=4, step=1, steps_per_epoch=3)
    restored = TemperatureSchedule()
    restored.load_state_dict(s.state_dict())
    assert restored.state_dict() == s.state_dict()
    assert [restored.value(e / 3) for e in range(30)] == [s.value(e / 3) for e in range(30)]
    assert restored.current == s.current
    # plain python values: a checkpoint holding them loads with weights_only=True
    torch.save({"temperature": s.state_dict()}, tmp_path / "ckpt.pt")
    loaded = torch.load(tmp_path / "ckpt.pt", weights_only=True)["temperature"]
    again = TemperatureSchedule()
    again.load_state_dict(loaded)
    assert again.state_dict() == s.state_dict()


def test_loading_a_bad_state_is_an_error():
    s = TemperatureSchedule()
    with pytest.raises(ValueError, match="unknown key"):
        s.load_state_dict({"kind": "linear", "speed": 3})
    with pytest.raises(ValueError, match="must be one of"):
        s.load_state_dict({"kind": "sawtooth"})


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "sawtooth"}, "must be one of geometric, linear, reference, exponential"),
        ({"t0": 0.0}, "t0 .* must be a positive finite number"),
        ({"t0": -1.0}, "t0 .* must be a positive finite number"),
        ({"t0": float("nan")}, "t0 .* must be a positive finite number"),
        ({"t0": float("inf"), "t_max": None}, "t0 .* must be a positive finite number"),
        ({"t0": True}, "t0 .* must be a positive finite number"),
        ({"t0": 10.0, "t_max": 5.0}, r"t_max \(5\) must be at least t0 \(10\)"),
        ({"t_max": -3.0}, "t_max .* must be a positive finite number"),
        ({"kind": "exponential", "growth": 1.0}, "growth > 1"),
        ({"kind": "exponential", "growth": -2.0}, "growth must be a positive finite number"),
        ({"kind": "cosine", "total_epochs": None}, "needs t_max .* and total_epochs"),
        ({"kind": "cosine", "total_epochs": 0}, "needs t_max .* and total_epochs"),
        ({"kind": "cosine", "total_epochs": 2.5}, "needs t_max .* and total_epochs"),
        ({"kind": "cosine", "t_max": None, "total_epochs": 5}, "needs t_max"),
    ],
)
def test_invalid_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TemperatureSchedule(**kwargs)


def test_never_below_t0_or_above_the_cap():
    for kind in ("linear", "exponential", "cosine", "constant"):
        s = TemperatureSchedule(kind, t0=3.0, t_max=30.0, total_epochs=5)
        for epoch in (-5, -1, 0, 0.5, 3, 100):
            assert 3.0 <= s.value(epoch) <= 30.0
