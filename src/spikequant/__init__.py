"""spikequant: quantization-aware training of spiking neural networks with low-precision weights.

    spikequant.quantize_model(model, quantizer="sigmoid", bits=1)   # any PyTorch model
    spikequant.models.build("nmnist", quantizer="sigmoid", bits=1)  # the study's networks
"""

from . import models, quant, snn
from .quant import quantize_model

__version__ = "0.1.0"
__all__ = ["__version__", "models", "quant", "quantize_model", "snn"]
