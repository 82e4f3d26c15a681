"""spikequant: quantization-aware training of spiking neural networks with low-precision weights.

    spikequant.quantize_model(model, quantizer="sigmoid", bits=1)   # any PyTorch model
    spikequant.models.build("nmnist", quantizer="sigmoid", bits=1)  # the study's networks
    spikequant.import_nir("graph.nir")    # a NIR graph (snnTorch, Norse, ...) as a network
    spikequant.keep_freed_memory()   # CPU training: reuse freed buffers (the CLI does this)

The subpackages load on first use, so that importing spikequant does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "import_nir", "keep_freed_memory", "models", "quant", "quantize_model",
           "snn"]

_SUBPACKAGES = ("models", "quant", "snn")


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "keep_freed_memory":
        return importlib.import_module(f"{__name__}._cpu_memory").keep_freed_memory
    if name == "import_nir":
        return importlib.import_module(f"{__name__}.export.nir_import").import_nir
    if name == "quantize_model":
        return importlib.import_module(f"{__name__}.quant").quantize_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
