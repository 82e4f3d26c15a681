"""What closes the gap between the trained and the evaluated network (issue 10): the reference
binary gradient, the temperature schedules, batch-norm re-estimation with hard weights, the
soft/hard gap measure, the validation split, --init-from, per-layer precision, the optimiser's
groups and schedules."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch
from torch import nn

from _helpers import run_train
from spikequant.cli import main
from spikequant.models import build
from spikequant.quant import (
    SigmoidQuantizer,
    TemperatureSchedule,
    float_weight,
    quantize_model,
    quantized_layers,
    weight_quantizer,
)
from spikequant.quant.levels import resolve_levels
from spikequant.train import TrainConfig
from spikequant.train.calibration import recalibrate_batch_norm, soft_hard_gap
from spikequant.train.checkpoint import load_checkpoint
from spikequant.train.init_from import init_from_checkpoint
from spikequant.train.splits import calibration_slice, carve_validation

# tiny tensors: a second thread only adds synchronisation (see conftest)
pytestmark = pytest.mark.usefixtures("one_torch_thread")

def _grad_w(quantizer: SigmoidQuantizer, w: torch.Tensor) -> torch.Tensor:
    w = w.clone().requires_grad_(True)
    quantizer.train()
    quantizer(w).sum().backward()
    return w.grad


@pytest.mark.parametrize("bits, per_channel", [(1, False), (1, True), (2, False)])
def test_reference_gradient_is_the_t1_slope_scaled_by_t(bits, per_channel):
    torch.manual_seed(0)
    w = torch.randn(64, 8)
    levels = resolve_levels(bits, None)
    exact = SigmoidQuantizer(levels, temperature=50.0, gradient="exact", per_channel=per_channel)
    ref = SigmoidQuantizer(levels, temperature=50.0, per_channel=per_channel)
    assert ref.gradient == "reference"  # the default
    exact.reset(w)
    ref.reset(w)
    # same forward
    assert torch.equal(exact.soft(w), ref.soft(w))
    beta = ref.beta.detach().view(-1, 1) if per_channel else ref.beta.detach()
    alpha = ref.alpha.detach().view(-1, 1) if per_channel else ref.alpha.detach()
    x = beta * w
    slope = torch.zeros_like(w)
    for b, s in zip(ref.positions, ref.heights):
        sig = torch.sigmoid(x - b)
        slope += s * sig * (1 - sig)
    expected = alpha * beta * 50.0 * slope
    torch.testing.assert_close(_grad_w(ref, w), expected, rtol=1e-5, atol=1e-6)
    # far from every step the exact gradient has vanished at T = 50, the reference's has not
    far = (x - ref.positions.view(-1, 1, 1)).abs().amin(0) > 0.5
    assert far.any()
    assert _grad_w(exact, w)[far].abs().max() < 1e-6
    assert _grad_w(ref, w)[far].abs().min() > 1e-3


def test_reference_gradient_reaches_alpha_and_beta():
    torch.manual_seed(1)
    w = torch.randn(16, 4)
    q = SigmoidQuantizer(resolve_levels(1, None), temperature=3.0, gradient="reference")
    q.reset(w)
    q.train()
    q(w.requires_grad_(True)).square().sum().backward()
    assert q.alpha.grad is not None and q.alpha.grad.abs() > 0
    assert q.beta.grad is not None and q.beta.grad.abs() > 0
    with pytest.raises(ValueError, match="gradient must be one of exact, reference"):
        SigmoidQuantizer(resolve_levels(1, None), gradient="straight")


@pytest.mark.parametrize("epochs", [1, 5, 20, 64])
def test_geometric_schedule_ends_hard_whatever_the_length(epochs):
    s = TemperatureSchedule("geometric", total_epochs=epochs)
    values = [s.value(e) for e in range(epochs)]
    assert values[0] == 1.0
    assert all(a <= b for a, b in zip(values, values[1:]))
    hard_from = math.ceil(0.8 * epochs)
    assert all(v == pytest.approx(1000.0) for v in values[hard_from:])
    if epochs > 1:
        assert values[-1] == pytest.approx(1000.0)
    with pytest.raises(ValueError, match="needs t_max .* and total_epochs"):
        TemperatureSchedule("geometric")


def test_reference_ramp_by_name():
    s = TemperatureSchedule("reference", total_epochs=300)
    assert [s.value(e) for e in (0, 1, 9, 199, 250)] == [10.0, 20.0, 100.0, 2000.0, 2000.0]
    assert TemperatureSchedule("reference", t0=20.0).value(1) == 40.0


def test_soft_hard_gap_falls_as_temperature_rises():
    torch.manual_seed(0)
    model = quantize_model(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 8)), "sigmoid")
    gaps = []
    for t in (1.0, 30.0, 1e4):
        for _, _, q in quantized_layers(model):
            q.set_temperature(t)
        gaps.append(soft_hard_gap(model))
    assert gaps[0] > 0.9 and gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.01
    ste = quantize_model(nn.Sequential(nn.Linear(64, 32)), "ste")
    assert soft_hard_gap(ste) == 0.0  # its training forward is already hard
    assert soft_hard_gap(nn.Linear(3, 3)) is None


def test_batch_norm_is_reestimated_with_hard_weights():
    torch.manual_seed(0)
    model = build("ndigits", "sigmoid", 1, channels=4)
    for _, _, q in quantized_layers(model):
        q.set_temperature(1.0)  # soft weights far from the hard ones
    frames = (torch.rand(6, 8, 2, 34, 34) < 0.2).float()  # [B, T, C, H, W] as a loader gives
    model.train()
    momentum = model.bn1.momentum
    seen = recalibrate_batch_norm(model, [(frames[:3], None), (frames[3:], None)])
    assert seen == 6 and model.training and model.bn1.momentum == momentum
    # bn1 sees the first convolution's output with hard weights; its running mean is the
    # average of the two batches' means
    model.eval()
    with torch.no_grad():
        conv = model.conv1(frames.transpose(0, 1).flatten(0, 1))
        halves = conv.unflatten(0, (8, 6))
        means = [halves[:, :3].mean((0, 1, 3, 4)), halves[:, 3:].mean((0, 1, 3, 4))]
    torch.testing.assert_close(model.bn1.running_mean, (means[0] + means[1]) / 2)
    # the weights themselves are untouched
    assert weight_quantizer(model.conv1).temperature == 1.0


def test_validation_split_is_stratified_seeded_and_disjoint():
    targets = [i % 10 for i in range(1000)]
    train, val = carve_validation(targets, 0.1, seed=0)
    assert len(val) == 100 and not set(train) & set(val)
    assert sorted(train + val) == list(range(1000))
    assert all(sum(1 for i in val if targets[i] == c) == 10 for c in range(10))
    assert carve_validation(targets, 0.1, seed=0) == (train, val)
    assert carve_validation(targets, 0.1, seed=1)[1] != val
    assert carve_validation(targets, 0.0, seed=0) == (list(range(1000)), [])
    with pytest.raises(ValueError, match="validation fraction"):
        carve_validation(targets, 1.0, seed=0)
    picked = calibration_slice(train, 50, seed=0)
    assert len(picked) == 50 and set(picked) <= set(train)
    assert calibration_slice(train, 50, seed=0) == picked


def _save_float_checkpoint(path, **overrides):
    from spikequant.train.checkpoint import atomic_torch_save

    torch.manual_seed(3)
    model = build("ndigits", "none", channels=8, **overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.bn1.running_mean.fill_(0.25)
    atomic_torch_save({"model_config": model.config, "model": model.state_dict(),
                       "run": {"quantizer": "none", "bits": 32}, "epoch": 4}, path)
    return model


def test_init_from_copies_weights_and_initialises_quantizers(tmp_path):
    source = _save_float_checkpoint(tmp_path / "fp.pt")
    target = build("ndigits", "sigmoid", 1, channels=8)
    info = init_from_checkpoint(target, tmp_path / "fp.pt")
    assert info["quantizer"] == "none" and info["epochs"] == 4
    for name in ("conv1", "conv2", "classifier"):
        w = getattr(source, name).weight
        assert torch.equal(float_weight(getattr(target, name)), w)
        q = weight_quantizer(getattr(target, name))
        assert q.beta.item() == pytest.approx(1.25 / w.abs().max().item(), rel=1e-6)
    assert torch.equal(target.bn1.running_mean, source.bn1.running_mean)
    assert torch.equal(target.neuron1.w, source.neuron1.w)
    # a binary network fine-tuned from a binary one takes its latent weights
    other = build("ndigits", "lsq", 2, channels=8)
    init_from_checkpoint(other, tmp_path / "fp.pt")
    assert torch.equal(float_weight(other.conv2), source.conv2.weight)


def test_init_from_another_architecture_is_a_clear_error(tmp_path):
    _save_float_checkpoint(tmp_path / "fp.pt")
    with pytest.raises(ValueError, match=r"--init-from .*does not match.*conv1"):
        init_from_checkpoint(build("ndigits", "sigmoid", 1, channels=16), tmp_path / "fp.pt")


def test_train_init_from_float_run(tmp_path, ndigits_dir, capsys):
    assert run_train(tmp_path / "fp", ndigits_dir, "-q", "none", "-e", "1") == 0
    assert run_train(tmp_path / "b1", ndigits_dir, "-q", "sigmoid", "-e", "1",
                  "--init-from", str(tmp_path / "fp" / "last.pt"), "--max-batches", "1") == 0
    metrics = json.loads((tmp_path / "b1" / "metrics.json").read_text())
    assert metrics["init_from"]["quantizer"] == "none"
    # one Adam step (lr 1e-3) from the float weights: every latent weight moved by about lr
    fp = load_checkpoint(tmp_path / "fp" / "last.pt")["model"]
    b1 = load_checkpoint(tmp_path / "b1" / "last.pt")["model"]
    moved = b1["conv2.parametrizations.weight.original"] - fp["conv2.weight"]
    assert moved.abs().max() <= 1.01e-3
    assert run_train(tmp_path / "bad", ndigits_dir, "-q", "sigmoid", "-e", "1",
                  "--init-from", str(tmp_path / "nothing.pt")) == 2
    assert "nothing.pt" in capsys.readouterr().err


def test_layer_bits_reach_the_packed_file_and_metrics(tmp_path, ndigits_dir, capsys):
    from spikequant.export import read_packed

    out = tmp_path / "mixed"
    assert run_train(out, ndigits_dir, "-q", "sigmoid", "-e", "1",
                  "--layer-bits", "conv1=8", "--layer-bits", "classifier=4") == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["layer_bits"] == {"conv1": 8, "classifier": 4}
    assert main(["export", "--checkpoint", str(out / "last.pt"), "--out",
                 str(tmp_path / "m.sqp")]) == 0
    info, _ = read_packed(tmp_path / "m.sqp")
    bits = {e["key"]: e["bits"] for e in info["layers"]}
    assert bits == {"conv1.weight": 8, "conv2.weight": 1, "classifier.weight": 4}
    assert (tmp_path / "m.sqp").stat().st_size == metrics["model_bytes_quantized"]
    with pytest.raises(ValueError, match="layer_bits pattern 'fc9'"):
        build("ndigits", "sigmoid", 1, layer_bits={"fc9": 8})
    assert run_train(tmp_path / "x", ndigits_dir, "--layer-bits", "conv1") == 2
    assert "NAME=BITS" in capsys.readouterr().err


def test_resume_with_more_epochs_keeps_learning(tmp_path, ndigits_dir):
    out = tmp_path / "run"
    assert run_train(out, ndigits_dir, "-q", "sigmoid", "-e", "1") == 0
    before = load_checkpoint(out / "last.pt")["model"]
    assert run_train(out, ndigits_dir, "-q", "sigmoid", "-e", "3", "--resume") == 0
    after = load_checkpoint(out / "last.pt")["model"]
    key = "conv2.parametrizations.weight.original"
    assert not torch.equal(before[key], after[key])
    rows = list(csv.DictReader((out / "log.csv").open()))
    lrs = [float(r["lr"]) for r in rows]
    # cosine over the new length: after epochs 1, 2 of 3, never 0 before the end
    assert lrs[1] == pytest.approx(1e-3 * 0.5 * (1 + math.cos(math.pi * 2 / 3)))
    # T (at each epoch's last step) follows the schedule stretched to 3 epochs
    temps = [float(r["temperature"]) for r in rows]
    assert temps[1] == pytest.approx(1000 ** ((1 + 2 / 3) / 2.4))
    assert temps[2] == pytest.approx(1000.0)


def test_scale_learning_rate_and_schedule(tmp_path):
    from spikequant.train.optim import make_lr_scheduler, make_optimizer

    model = quantize_model(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)), "sigmoid")
    cfg = TrainConfig(epochs=4, lr=1e-3, scale_lr=1e-2, scale_lr_schedule="constant")
    opt = make_optimizer(model, cfg)
    sched = make_lr_scheduler(opt, cfg)
    for _ in range(2):
        opt.step()
        sched.step()
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs["quantizer_scales"] == pytest.approx(1e-2)
    assert lrs["weights"] == pytest.approx(1e-3 * 0.5)


def test_gradient_clipping_bounds_the_global_norm():
    from spikequant.train.optim import clip_gradients

    model = nn.Linear(10, 10)
    model(torch.randn(4, 10) * 100).sum().backward()
    clip_gradients(model, 5.0)
    total = torch.sqrt(sum(p.grad.square().sum() for p in model.parameters()))
    assert total == pytest.approx(5.0, rel=1e-4)
    for bad in ({"grad_clip": -1.0}, {"scale_lr": 0.0}, {"val_fraction": 1.0},
                {"calibration_samples": -1}, {"layer_bits": {"conv1": "8"}}):
        with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
            TrainConfig(**bad).validate()
    for bad, message in (({"t_ramp": 1.5}, "ramp"), ({"gradient": "ste"}, "gradient"),
                         ({"temperature_schedule": "sawtooth"}, "temperature_schedule")):
        with pytest.raises(ValueError, match=message):
            TrainConfig(quantizer_options=bad).validate()


def test_sweep_fine_tunes_quantized_runs_from_its_float_runs(tmp_path, ndigits_dir):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(f"""
[sweep]
datasets = ["ndigits"]
quantizers = ["sigmoid", "none"]
bits = [1]
seeds = [0]
out = "{tmp_path / 'sweep'}"
init_from_float = true
fine_tune_epochs = 1
[train]
epochs = 2
batch_size = 32
max_batches = 2
progress = false
data_dir = "{ndigits_dir}"
""")
    assert main(["sweep", "--config", str(cfg)]) == 0
    root = tmp_path / "sweep" / "ndigits"
    fp = json.loads((root / "float" / "seed0" / "metrics.json").read_text())
    b1 = json.loads((root / "sigmoid-1b" / "seed0" / "metrics.json").read_text())
    assert fp["epochs"] == 2 and fp["init_from"] is None
    assert b1["epochs"] == 1
    assert b1["init_from"]["path"] == str(root / "float" / "seed0" / "best.pt")
    cfg.write_text(cfg.read_text().replace('quantizers = ["sigmoid", "none"]',
                                           'quantizers = ["sigmoid"]'))
    assert main(["sweep", "--config", str(cfg)]) == 2


def test_quantize_model_layer_bits():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 5),
                          nn.Linear(5, 3))
    quantize_model(model, "sigmoid", 1, layer_bits={"0": 8, "[23]": 2, "3": 4})
    widths = {name: q.bits for name, _, q in quantized_layers(model)}
    assert widths == {"0": 8, "2": 2, "3": 2}  # the first matching pattern wins
    assert weight_quantizer(model[0]).levels.numel() == 255
    for bad, message in (({"0": 1.5}, "integer bits"), ({"0": 0}, "bits"),
                         ({"9": 2}, "layer_bits pattern '9' matches no")):
        with pytest.raises(ValueError, match=message):
            quantize_model(nn.Sequential(nn.Linear(3, 3)), "sigmoid", 1, layer_bits=bad)


def test_every_published_config_loads_and_uses_the_recipe():
    from pathlib import Path

    from spikequant.train.config import load_config_file
    from spikequant.train.sweep import load_sweep

    files = sorted((Path(__file__).parents[2] / "configs").glob("*/*.toml"))
    assert len(files) >= 45
    for path in files:
        if "sweep" in path.name:
            spec = load_sweep(path)
            configs = [spec.config(point) for point in spec.points()]
        else:
            configs = [TrainConfig.from_dict(load_config_file(path))]
        for cfg in configs:
            cfg.device = "cpu"
            cfg.validate()
            if cfg.quantizer == "sigmoid":
                options = cfg.quantizer_options
                assert options["temperature_schedule"] == "geometric", path
                assert options["gradient"] == "reference", path
            else:  # the sigmoid quantizer's table of the shared base file is not theirs
                assert "temperature_schedule" not in cfg.quantizer_options, path


@pytest.mark.parametrize("gradient", ["exact", "reference"])
def test_gradient_setting_reaches_every_sigmoid_quantizer(gradient):
    # `--gradient exact` was dropped once the quantizer's own default became "reference"
    from spikequant.train.run import build_model

    cfg = TrainConfig(quantizer_options={"gradient": gradient}, model_overrides={"channels": 4})
    cfg.validate()
    net = build_model(cfg)
    assert {q.gradient for _, _, q in quantized_layers(net)} == {gradient}
