"""Whether a file's tensors fit the network its model_config declares, decided on the meta
device (no memory): a damaged or crafted config declaring 20,000 channels is refused before
gigabytes are allocated for it, and a checkpoint of another architecture gets a message instead
of load_state_dict's traceback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from .registry import architecture_keys, build_float_on_meta

# model_config keys that do not change any tensor's shape
_NOT_SHAPES = {"name", "quantizer", "bits", "levels", "state_bits", "exclude", "quant_options",
               "layer_bits"}
_PARAMETRIZED = "parametrizations.weight."
# Buffers a file may leave out (packed files do: eval mode never reads the step counter).
NOT_STORED = ("num_batches_tracked",)


def float_key(key: str) -> str | None:
    """The float network's key for a state_dict key of a quantized one: `conv.weight` for
    `conv.parametrizations.weight.original`, None for the quantizer's own state."""
    layer, sep, rest = key.rpartition(_PARAMETRIZED) if _PARAMETRIZED in key else ("", "", "")
    if not sep:
        return key
    if rest != "original":
        return None
    return f"{layer}weight"


def declared_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """{float state_dict key: shape} of the network `config` (a model_config) declares."""
    if not isinstance(config, Mapping) or not isinstance(config.get("name"), str):
        raise ValueError(f"model_config must be a dict naming a registered network, got {config!r}")
    try:
        arch_keys = architecture_keys(config["name"])
    except ValueError as err:
        raise ValueError(f"its model_config names no network this process knows ({err})"
                         ) from None
    unknown = set(config) - set(arch_keys) - _NOT_SHAPES
    if unknown:
        raise ValueError(f"its model_config has unknown key(s) {', '.join(sorted(unknown))}")
    overrides = {k: v for k, v in config.items() if k in arch_keys}
    try:
        model = build_float_on_meta(config["name"], **overrides)
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise ValueError(f"its model_config cannot be built ({err})") from None
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def shape_mismatch(config: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> str | None:
    """None when every tensor of the architecture `config` declares is in `state` with its
    shape (quantizer internals aside), else what differs, in a few words."""
    try:
        expected = declared_shapes(config)
    except ValueError as err:
        return str(err)
    found = {}
    for key, value in state.items():
        name = float_key(key)
        if name is not None:
            found[name] = tuple(value.shape) if isinstance(value, torch.Tensor) else None
    missing = sorted(k for k in set(expected) - set(found)
                     if k.rsplit(".", 1)[-1] not in NOT_STORED)
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k} is {list(found[k]) if found[k] is not None else 'not a tensor'}, "
             f"the network has {list(expected[k])}"
             for k in expected if k in found and found[k] != expected[k]]
    problems = []
    if wrong:
        problems.append("; ".join(wrong[:3]) + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3
                                                  else ""))
    if missing:
        problems.append(f"missing {', '.join(missing[:5])}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:5])}")
    return "; ".join(problems) or None
