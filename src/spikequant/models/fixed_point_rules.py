"""The one rule of fixed-point neuron state about weights, stated once: the integer program
(`integer_program`) multiplies integer weight codes, so every conv / linear layer must be
quantized. The settings check (before any data is read), `build` (before a network is made)
and `SpikingConvNet.set_state_bits` (on a network as it is) all raise this error."""

from __future__ import annotations

from collections.abc import Sequence


def refuse_float_weights(quantizer: str | None = None, exclude: Sequence[str] | None = None,
                         float_layers: Sequence[str] = ()) -> None:
    """ValueError when fixed-point state would meet float weights: a float `quantizer`
    ("none"), layers kept float by `exclude`, or `float_layers` of a network as it is."""
    from ..quant.registry import is_float_quantizer

    if quantizer is not None and is_float_quantizer(quantizer):
        reason = f"quantizer {quantizer!r} keeps the weights float"
    elif exclude:
        names = [exclude] if isinstance(exclude, str) else list(exclude)
        reason = f"exclude {' '.join(map(str, names))} keeps some float"
    elif float_layers:
        reason = f"{', '.join(float_layers)} kept float weights"
    else:
        return
    raise ValueError(
        f"fixed-point state (state_bits) needs every conv / linear layer quantized (integer "
        f"weights), but {reason}; give those layers their own precision with layer_bits "
        "(--layer-bits NAME=BITS, e.g. conv1=8) instead, or keep float state"
    )
