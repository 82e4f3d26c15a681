"""The study's networks built from the peer libraries, for side-by-side benchmarks.

Each builder returns an `nn.Module` with the same contract as spikequant's networks: input a
float tensor [T, B, C, H, W], output class scores [B, classes] (output firing rates of the
voting groups, averaged over time), neuron state starting from rest on every call.

- SpikingJelly 2.0 (`activation_based`, multi-step): layer.Conv2d / BatchNorm2d / MaxPool2d /
  Flatten / Dropout / Linear with step_mode='m' and ParametricLIFNode. SpikingJelly 2.0 has no
  `backend=` argument any more: the PLIF op picks its implementation by device (a fused
  sj_plif op on CPU; on CUDA `SJ_PLIF_CUDA_IMPLEMENTATION=auto|cuda|triton|torch`, auto tries
  the native CUDA kernel, then Triton, then plain torch).
- snnTorch 1.0 neurons (`Leaky`, learnable beta, hard reset) with Brevitas 0.13 binary weights
  (`QuantConv2d` / `QuantLinear`, `SignedBinaryWeightPerTensorConst`), stepped over time in a
  Python loop as snnTorch's tutorials do: every layer runs once per time step.

These are benchmark peers, not project code: only the shapes and the amount of work follow
the study's networks (Fang et al. 2021 PLIF networks as the study uses them).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetSpec:
    """{conv k3 - BN - PLIF - maxpool2} x blocks - flatten - dropout - [FC - PLIF - dropout]
    - FC - PLIF - voting (the bracket only when `hidden` is set)."""

    in_channels: int
    size: int
    blocks: int
    hidden: int | None
    classes: int
    channels: int = 128
    voting: int = 10
    dropout: float = 0.5

    @property
    def flat(self) -> int:
        return self.channels * (self.size >> self.blocks) ** 2

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.size, self.size)


# The study's settings: N-MNIST 34x34, DVS128 Gesture and CIFAR10-DVS 128x128; ndigits is the
# project's small offline network (for fast tests of the benchmark itself).
SPECS: dict[str, NetSpec] = {
    "ndigits": NetSpec(in_channels=2, size=34, blocks=2, hidden=None, classes=10, channels=32),
    "nmnist": NetSpec(in_channels=2, size=34, blocks=2, hidden=2048, classes=10),
    "dvsgesture": NetSpec(in_channels=2, size=128, blocks=5, hidden=512, classes=11),
    "cifar10dvs": NetSpec(in_channels=2, size=128, blocks=4, hidden=512, classes=10),
}

PEERS = ("spikingjelly", "snntorch-brevitas")


def spec_for(network: str) -> NetSpec:
    if network not in SPECS:
        raise ValueError(
            f"no peer network for {network!r}; peers exist for {', '.join(SPECS)}"
        )
    return SPECS[network]


def _vote(spikes: torch.Tensor, voting: int) -> torch.Tensor:
    """[..., classes * voting] spikes -> [..., classes] group means."""
    return spikes.unflatten(-1, (-1, voting)).mean(-1)


class SpikingJellyNet(nn.Module):
    """The network from SpikingJelly multi-step layers; resets its neurons on every call."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        from spikingjelly.activation_based import functional, layer, neuron, surrogate

        def plif() -> nn.Module:
            return neuron.ParametricLIFNode(
                init_tau=2.0, detach_reset=True, surrogate_function=surrogate.ATan(),
                step_mode="m",
            )

        layers: list[nn.Module] = []
        c_in = spec.in_channels
        for _ in range(spec.blocks):
            layers += [
                layer.Conv2d(c_in, spec.channels, 3, padding=1, bias=False, step_mode="m"),
                layer.BatchNorm2d(spec.channels, step_mode="m"),
                plif(),
                layer.MaxPool2d(2, 2, step_mode="m"),
            ]
            c_in = spec.channels
        features = spec.flat
        layers += [layer.Flatten(step_mode="m"), layer.Dropout(spec.dropout, step_mode="m")]
        if spec.hidden:
            layers += [
                layer.Linear(features, spec.hidden, bias=False, step_mode="m"),
                plif(),
                layer.Dropout(spec.dropout, step_mode="m"),
            ]
            features = spec.hidden
        layers += [
            layer.Linear(features, spec.classes * spec.voting, bias=False, step_mode="m"),
            plif(),
        ]
        self.net = nn.Sequential(*layers)
        self.voting = spec.voting
        self._reset = functional.reset_net

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        self._reset(self.net)
        return _vote(self.net(x_seq), self.voting).mean(0)


class SnnTorchBrevitasNet(nn.Module):
    """snnTorch Leaky neurons (learned beta, hard reset, ATan surrogate) after Brevitas binary
    conv / linear layers, one Python loop iteration per time step."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        import snntorch as snn
        from brevitas.nn import QuantConv2d, QuantLinear
        from brevitas.quant.binary import SignedBinaryWeightPerTensorConst
        from snntorch import surrogate

        binary = {"weight_quant": SignedBinaryWeightPerTensorConst, "bias": False}

        def leaky() -> nn.Module:
            # beta = 1 - 1/tau with tau = 2: PLIF's initial decay
            return snn.Leaky(beta=0.5, learn_beta=True, spike_grad=surrogate.atan(),
                             reset_mechanism="zero")

        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.conv_neurons = nn.ModuleList()
        c_in = spec.in_channels
        for _ in range(spec.blocks):
            self.convs.append(QuantConv2d(c_in, spec.channels, 3, padding=1, **binary))
            self.norms.append(nn.BatchNorm2d(spec.channels))
            self.conv_neurons.append(leaky())
            c_in = spec.channels
        features = spec.hidden or spec.flat
        self.fc1 = QuantLinear(spec.flat, spec.hidden, **binary) if spec.hidden else None
        self.fc2 = QuantLinear(features, spec.classes * spec.voting, **binary)
        self.fc_neurons = nn.ModuleList([leaky() for _ in range(2 if spec.hidden else 1)])
        self.dropout = nn.Dropout(spec.dropout)
        self.voting = spec.voting

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        neurons = [*self.conv_neurons, *self.fc_neurons]
        mems = [n.init_leaky() for n in neurons]
        total = 0.0
        for x in x_seq:
            h = x
            for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
                h, mems[i] = neurons[i](norm(conv(h)), mems[i])
                h = nn.functional.max_pool2d(h, 2)
            h = self.dropout(h.flatten(1))
            if self.fc1 is not None:
                h, mems[-2] = neurons[-2](self.fc1(h), mems[-2])
                h = self.dropout(h)
            h, mems[-1] = neurons[-1](self.fc2(h), mems[-1])
            total = total + _vote(h, self.voting)
        return total / x_seq.shape[0]


def build_peer(peer: str, network: str) -> nn.Module:
    """A peer library's version of a study network: peer in PEERS."""
    spec = spec_for(network)
    if peer == "spikingjelly":
        return SpikingJellyNet(spec)
    if peer == "snntorch-brevitas":
        return SnnTorchBrevitasNet(spec)
    raise ValueError(f"unknown peer {peer!r}; choose one of {', '.join(PEERS)}")
