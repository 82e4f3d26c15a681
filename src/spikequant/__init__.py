"""spikequant: quantization-aware training of spiking neural networks with low-precision weights."""

from .quant import quantize_model

__version__ = "0.1.0"
__all__ = ["__version__", "quantize_model"]
