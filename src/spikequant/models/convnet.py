"""The PLIF convolutional network family of Fang et al. 2021 ("Incorporating Learnable Membrane
Time Constant to Enhance Learning of Spiking Neural Networks"), used by the study for every
benchmark:

    {conv3x3 (no bias) - BN - spiking neuron - maxpool 2} x num_blocks
    - flatten - dropout - FC (no bias) - neuron            (hidden layer, when hidden is set)
    - dropout - FC (no bias) - neuron                      ("classifier": votes per class)
    - firing rate over time, averaged over each class's `votes` output neurons (voting)

Module names are stable so that quantization excludes can name them: conv1..convN, bn1..bnN,
neuron1..neuronN, pool1..poolN, flatten, dropout1, fc1, neuron_fc1, dropout2 (dropout1 when
there is no hidden layer), classifier, neuron_out. So exclude=["conv1", "classifier"] keeps the
first convolution and the output layer float in every network.

Dropout is `TimeSharedDropout`: one mask per sample shared by all time steps (as the paper's
code), not an independent mask per step.

With fixed-point neuron state (`set_state_bits(K)`, or `build(..., state_bits=K)`) the neurons
keep their membrane on a K-bit grid in training, and evaluation (batch norm on its running
statistics) computes the network's integer program exactly (`fixed_point_forward`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..snn import MaxPool2x2, SpikingNeuron, SpikingSequential, TimeSharedDropout, make_neuron
from ..snn.fixed_point import check_state_bits
from .fixed_point_rules import refuse_float_weights


def _neuron(kind: str, tau: float, surrogate: str, options: dict[str, Any]) -> nn.Module:
    # The paper's settings: threshold 1, hard reset to 0, detached reset (`options`, the
    # neuron's own, may change them).
    settings = {"threshold": 1.0, "v_reset": 0.0, "detach_reset": True, "surrogate": surrogate}
    return make_neuron(kind, tau, **{**settings, **options})


def block_widths(channels: int | Sequence[int], num_blocks: int) -> list[int]:
    """Output channels of each conv block: one width for all, or one per block."""
    if isinstance(channels, int):
        return [channels] * num_blocks
    widths = [int(c) for c in channels]
    if len(widths) != num_blocks:
        raise ValueError(
            f"channels lists {len(widths)} widths but the network has {num_blocks} conv "
            f"blocks; give one int or {num_blocks} ints"
        )
    return widths


def pooled_size(size: int, num_blocks: int) -> int:
    for _ in range(num_blocks):
        size //= 2
    return size


class SpikingConvNet(SpikingSequential):
    """[T, B, C, H, W] float input -> [B, num_classes] firing rates (voting).

    Every neuron starts from rest at each forward call. Stateless layers run on the time-folded
    [T*B, ...] tensor (see spikequant.snn.SpikingSequential), so each weight, and its quantizer,
    is evaluated once per forward.

    Args:
        in_channels: C, the channels of each input frame (2 for event polarities).
        input_size: (H, W), the input frame's height and width; each must be at least
            2 ** num_blocks, so that something is left after the poolings.
        num_classes: the number of classes, the width of the output [B, num_classes].
        num_blocks: the number of conv blocks (conv 3x3 - BN - neuron - max pool 2); each
            halves the height and width (rounding down).
        channels: the output channels of every conv block (one int), or one int per block
            (a sequence of `num_blocks` ints). Default 128.
        hidden: the width of a hidden FC layer (fc1 and neuron_fc1) before the classifier;
            None or 0 (default None): no hidden layer.
        votes: the output neurons per class: the classifier has num_classes * votes outputs
            and a class's score is the mean firing rate of its `votes` neurons. Default 10.
        neuron: the registered name of every neuron layer's neuron ("plif" default, "lif",
            or a plugin's; see spikequant.snn.make_neuron).
        tau: the neurons' time constant in time steps: fixed for "lif", initial for
            "plif"; both need tau > 1. Default 2.0.
        surrogate: the registered name of the neurons' surrogate gradient (default "atan";
            see spikequant.snn.SURROGATES).
        dropout: the drop probability of the TimeSharedDropout before each FC layer, in
            [0, 1) (0: the layers pass their input unchanged). Default 0.5.
        neuron_options: further constructor options of every neuron (its
            `declared_options()`); they override the defaults given here (threshold 1.0,
            v_reset 0.0, detach_reset True, and `surrogate`). None (default): none.

    Raises:
        ValueError: `input_size` is too small for `num_blocks`, or `channels` lists another
            number of widths than `num_blocks`.
    """

    def __init__(
        self,
        in_channels: int,
        input_size: Sequence[int],
        num_classes: int,
        num_blocks: int,
        channels: int | Sequence[int] = 128,
        hidden: int | None = None,
        votes: int = 10,
        neuron: str = "plif",
        tau: float = 2.0,
        surrogate: str = "atan",
        dropout: float = 0.5,
        neuron_options: dict[str, Any] | None = None,
    ) -> None:
        height, width = input_size
        options = dict(neuron_options or {})
        out_h, out_w = pooled_size(height, num_blocks), pooled_size(width, num_blocks)
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f"input {height}x{width} is too small for {num_blocks} pooling blocks; "
                f"use input_size of at least {2 ** num_blocks}"
            )
        widths = block_widths(channels, num_blocks)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = in_channels
        for i, c_out in enumerate(widths, start=1):
            layers[f"conv{i}"] = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
            layers[f"bn{i}"] = nn.BatchNorm2d(c_out)
            layers[f"neuron{i}"] = _neuron(neuron, tau, surrogate, options)
            layers[f"pool{i}"] = MaxPool2x2()
            c_in = c_out
        layers["flatten"] = nn.Flatten()
        features = c_in * out_h * out_w
        drop = 1
        if hidden:
            layers["dropout1"] = TimeSharedDropout(dropout)
            layers["fc1"] = nn.Linear(features, hidden, bias=False)
            layers["neuron_fc1"] = _neuron(neuron, tau, surrogate, options)
            features, drop = hidden, 2
        layers[f"dropout{drop}"] = TimeSharedDropout(dropout)
        layers["classifier"] = nn.Linear(features, num_classes * votes, bias=False)
        layers["neuron_out"] = _neuron(neuron, tau, surrogate, options)
        super().__init__(layers)
        self.num_classes = num_classes
        self.votes = votes
        self.input_shape = (in_channels, height, width)
        self.state_bits: int | None = None
        self._config_problem = "the model was made directly, not by spikequant.models.build"

    def set_state_bits(self, bits: int | None) -> None:
        """Keep every neuron's state in `bits`-bit fixed point (None: float), and evaluate
        with the exact integer arithmetic; needs every conv / linear layer quantized."""
        bits = check_state_bits(bits)
        if bits is not None:
            from .fixed_point_forward import unquantized_layers

            refuse_float_weights(float_layers=unquantized_layers(self))
        for m in self.modules():
            if isinstance(m, SpikingNeuron):  # one without fixed-point state refuses bits
                m.set_state_bits(bits)
        self.state_bits = bits

    def _evaluates_in_integers(self) -> bool:
        # batch-norm re-estimation runs the network in eval mode with batch norm training
        return getattr(self, "state_bits", None) is not None and not self.training and not any(
            m.training for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        )

    def set_config(self, config: dict[str, Any], problem: str | None = None) -> None:
        """Record how `build` made this model as `self.config` (JSON-serialisable;
        `spikequant.models.build(**model.config)` rebuilds the architecture with fresh
        weights). With a `problem` (why it can't be rebuilt) there is no `config` attribute and
        reading it raises AttributeError with that reason."""
        self.__dict__.pop("config", None)
        self._config_problem = problem
        if problem is None:
            self.config = config

    def __getattr__(self, name: str) -> Any:
        if name == "config":
            raise AttributeError(f"model.config is not available: {self._config_problem}")
        return super().__getattr__(name)

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        if x_seq.dim() != 5 or tuple(x_seq.shape[2:]) != self.input_shape:
            raise ValueError(
                f"expected input [T, B, {', '.join(map(str, self.input_shape))}] (time first), "
                f"got {tuple(x_seq.shape)}"
            )
        if self._evaluates_in_integers():
            from .fixed_point_forward import fixed_point_forward

            return fixed_point_forward(self, x_seq)
        spikes = super().forward(x_seq)  # [T, B, num_classes * votes]
        rates = spikes.mean(0)
        return rates.unflatten(1, (self.num_classes, self.votes)).mean(2)
