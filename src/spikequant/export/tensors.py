"""What a network needs for inference: its quantized weights as integer codes, and the rest.

Keys are those of the float network's state_dict (`conv.weight`, `bn.running_mean`,
`neuron.w`, ...), whether or not the network is quantized, so a file written from a
quantized network loads into the same architecture built with quantizer="none".
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..quant import QuantizedWeight, float_weight, quantized_layers

PARAMETRIZED = ".parametrizations.weight."
# BatchNorm's step counter only matters in training with momentum=None; eval never reads it.
NOT_FOR_INFERENCE = ("num_batches_tracked",)


def _weight_key(layer_name: str) -> str:
    return f"{layer_name}.weight" if layer_name else "weight"


@torch.no_grad()
def quantized_weights(model: nn.Module) -> dict[str, QuantizedWeight]:
    """{state_dict key of the weight: its integer view} for every quantized layer."""
    return {
        _weight_key(name): quantizer.quantize(float_weight(layer))
        for name, layer, quantizer in quantized_layers(model)
    }


def _split_parametrized(key: str) -> tuple[str, str] | None:
    """('conv', 'original') for 'conv.parametrizations.weight.original', else None."""
    if key.startswith("parametrizations.weight."):
        return "", key[len("parametrizations.weight.") :]
    if PARAMETRIZED not in key:
        return None
    layer, _, rest = key.partition(PARAMETRIZED)
    return layer, rest


@torch.no_grad()
def inference_tensors(model: nn.Module) -> Iterator[tuple[str, QuantizedWeight | torch.Tensor]]:
    """(key, value) in state_dict order: a QuantizedWeight for each quantized weight, the tensor
    itself for every other parameter and buffer eval mode reads. Quantizer internals (float
    shadow weights, temperatures, step positions) are left out: the codes and scale replace them.

    Args:
        model: the network, quantized (spikequant.quant) or not; its state_dict is read as it
            is, without moving or copying it.

    Yields:
        (state_dict key, value) pairs; BatchNorm's num_batches_tracked is left out too.
    """
    quantized = quantized_weights(model)
    for key, value in model.state_dict().items():
        if key.rsplit(".", 1)[-1] in NOT_FOR_INFERENCE:
            continue
        split = _split_parametrized(key)
        if split is None:
            yield key, value
            continue
        layer, rest = split
        if rest != "original":
            continue  # the quantizer's own state
        weight_key = _weight_key(layer)
        yield weight_key, quantized.get(weight_key, value)


def fp32_model_bytes(model: nn.Module) -> int:
    """Bytes a float32 copy of the network takes: 4 x every number inference needs.

    Args:
        model: the network, quantized or not; the numbers counted are those of
            `inference_tensors` (a quantized weight counts one number a code).
    """
    total = 0
    for _, value in inference_tensors(model):
        total += 4 * (value.codes.numel() if isinstance(value, QuantizedWeight) else value.numel())
    return total


def count_quantized_weights(model: nn.Module) -> int:
    """Number of weights stored as low-bit codes.

    Args:
        model: the network; the weights of its quantized layers (spikequant.quant) are
            counted, 0 for a network that is not quantized.
    """
    return sum(float_weight(layer).numel() for _, layer, _ in quantized_layers(model))


def count_weights(model: nn.Module) -> int:
    """Number of synaptic weights: every Conv / Linear weight, quantized or not.

    Args:
        model: the network; the weights of every nn.Conv1d, nn.Conv2d, nn.Conv3d and
            nn.Linear among its modules are counted (biases are not).
    """
    return sum(
        float_weight(m).numel()
        for m in model.modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
    )
