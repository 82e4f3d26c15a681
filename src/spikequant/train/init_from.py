"""Starting quantization-aware training from a trained network (`train --init-from`).

The source checkpoint may be float or of any precision: its latent float weights, batch norm
and neuron parameters are copied into the new network, and every quantizer of the new network
is initialised afresh from the copied weights (step positions, scales), as Quantization
Networks does when it fine-tunes a trained float model.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ..quant import float_weight, quantized_layers
from .checkpoint import load_checkpoint

_LATENT = ".parametrizations.weight.original"
_QUANTIZER = ".parametrizations.weight.0."


def plain_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict as the float network names it: a quantized layer's latent weight under
    `<layer>.weight`, the quantizers' own state left out."""
    plain = {}
    for key, value in state.items():
        if _QUANTIZER in key:
            continue
        plain[key.replace(_LATENT, ".weight")] = value
    return plain


def init_from_checkpoint(model: nn.Module, path: str | os.PathLike) -> dict[str, Any]:
    """Copy the trained parameters of the checkpoint at `path` into `model` (same architecture,
    any precision) and re-initialise `model`'s quantizers from them. Returns what the
    checkpoint was (for the run's metrics)."""
    ckpt = load_checkpoint(path)
    source = plain_state(ckpt["model"])
    target = model.state_dict()
    missing, mismatched = [], []
    with torch.no_grad():
        for key, value in target.items():
            if _QUANTIZER in key:
                continue
            name = key.replace(_LATENT, ".weight")
            if name not in source:
                missing.append(name)
            elif source[name].shape != value.shape:
                mismatched.append(f"{name} {tuple(source[name].shape)} vs {tuple(value.shape)}")
            else:
                value.copy_(source[name].to(value.dtype))
    if missing or mismatched:
        what = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:5])}" if missing else "",
                f"shapes differ: {', '.join(mismatched[:5])}" if mismatched else "",
            )
            if part
        )
        config = ckpt.get("model_config", {})
        raise ValueError(
            f"--init-from {path}: its network ({config.get('name', '?')}) does not match the "
            f"one being trained ({what}); start from a checkpoint of the same network and "
            "architecture settings"
        )
    for _, layer, quantizer in quantized_layers(model):
        quantizer.reset(float_weight(layer).detach())
    run = ckpt.get("run", {})
    return {
        "path": str(path),
        "quantizer": run.get("quantizer", ckpt["model_config"].get("quantizer")),
        "bits": run.get("bits", ckpt["model_config"].get("bits")),
        "epochs": ckpt.get("epoch"),
    }
