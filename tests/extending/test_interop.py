"""quantize_model on networks built from SpikingJelly and snnTorch layers: forward runs, eval
weights take only level values, and one training step lowers the loss.

Both networks are conv - spiking neuron - pool - linear, read out by the output layer's mean
input current over time (a non-spiking readout), so the loss is smooth in the weights while the
gradient still reaches the first layer through the spiking layer's surrogate."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikequant import quantize_model
from spikequant.quant import float_weight, quantized_layers

STEPS, BATCH = 6, 16
WEIGHT_GAIN = 4.0


def _problem():
    """Two classes of [T, B, 2, 8, 8] event frames: class 1 fires in the left half, class 0 in
    the right half (fixed seed)."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(BATCH) % 2
    rate = torch.full((STEPS, BATCH, 2, 8, 8), 0.05)
    rate[:, labels == 1, :, :, :4] = 0.5
    rate[:, labels == 0, :, :, 4:] = 0.5
    return torch.bernoulli(rate, generator=gen), labels


def _loss(forward, x, labels):
    return nn.functional.cross_entropy(forward(x), labels)


def _check(model: nn.Module, forward, names: list[str]) -> None:
    with torch.no_grad():  # larger initial weights, so that the hidden layer fires at once
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(WEIGHT_GAIN)
    quantize_model(model, "sigmoid", 1)
    assert sorted(n for n, _, _ in quantized_layers(model)) == sorted(names)
    x, labels = _problem()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = _loss(forward, x, labels)
    opt.zero_grad()
    before.backward()
    for name, layer, _ in quantized_layers(model):
        assert float_weight(layer).grad.abs().sum() > 0, name
    opt.step()
    with torch.no_grad():
        after = _loss(forward, x, labels)
    print(f"loss {before.item():.4f} -> {after.item():.4f}")
    assert after < before, (before.item(), after.item())
    model.eval()
    with torch.no_grad():
        out = forward(x)
    assert out.shape == (BATCH, 2) and torch.isfinite(out).all()
    for name, layer, _ in quantized_layers(model):
        assert layer.weight.unique().numel() == 2, name  # binary: both levels in use


def test_quantize_spikingjelly_network():
    pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    def plif():
        return neuron.ParametricLIFNode(init_tau=2.0, surrogate_function=surrogate.ATan(),
                                        detach_reset=True, step_mode="m")

    torch.manual_seed(0)
    model = nn.Sequential(
        layer.Conv2d(2, 8, 3, padding=1, bias=False, step_mode="m"),
        layer.BatchNorm2d(8, step_mode="m"),
        plif(),
        layer.MaxPool2d(2, 2, step_mode="m"),
        layer.Flatten(step_mode="m"),
        layer.Linear(8 * 4 * 4, 2, bias=False, step_mode="m"),
    )

    def forward(x):
        functional.reset_net(model)  # SpikingJelly neurons keep state between calls
        return model(x).mean(0)  # [T, B, 2] currents -> [B, 2] logits

    _check(model, forward, ["0", "5"])
    assert isinstance(model[0], layer.Conv2d)  # the subclass is kept, quantizer attached


def test_quantize_snntorch_network():
    snntorch = pytest.importorskip("snntorch")
    from snntorch import surrogate

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 8, 3, padding=1)
            self.lif1 = snntorch.Leaky(beta=0.5, spike_grad=surrogate.atan())
            self.fc = nn.Linear(8 * 4 * 4, 2)

        def forward(self, x_seq):
            mem = self.lif1.init_leaky()
            currents = []
            for x in x_seq:  # single-step modules, looped over time
                spikes, mem = self.lif1(self.conv(x), mem)
                pooled = nn.functional.max_pool2d(spikes, 2)
                currents.append(self.fc(pooled.flatten(1)))
            return torch.stack(currents).mean(0)

    torch.manual_seed(0)
    model = Net()
    _check(model, model, ["conv", "fc"])


def test_spikingjelly_reset_net_accepts_a_quantized_network():
    # reset_net calls reset() with no argument on every module that has one, quantizers too
    pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import functional, layer, neuron

    model = nn.Sequential(layer.Linear(4, 3, step_mode="m"), neuron.LIFNode(step_mode="m"))
    quantize_model(model, "sigmoid", 1)
    model(torch.rand(2, 1, 4))
    functional.reset_net(model)
    assert model[1].v == 0.0
