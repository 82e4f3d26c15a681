"""Export: bit packing, the packed model file (save / load), memory and SynOps / energy
reports, NIR export. Depends on quant/, snn/ and (to rebuild networks) models/."""

from .bitpack import pack_bits, packed_size, unpack_bits
from .memory import (
    MemoryReport,
    format_report,
    memory_report,
    memory_report_from_file,
)
from .modelfile import (
    FORMAT_NAME,
    FORMAT_VERSION,
    load_packed,
    packed_model_bytes,
    packed_state_dict,
    read_packed,
    run_metadata,
    save_packed,
    serialize_packed,
)
from .synops import EnergyCosts, SynOpsCounter, SynOpsReport, format_synops, measure_synops
from .tensors import count_quantized_weights, count_weights, fp32_model_bytes, inference_tensors

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "EnergyCosts",
    "IntegerNetwork",
    "MemoryReport",
    "SynOpsCounter",
    "SynOpsReport",
    "count_quantized_weights",
    "count_weights",
    "format_report",
    "format_synops",
    "fp32_model_bytes",
    "inference_tensors",
    "load_packed",
    "measure_synops",
    "memory_report",
    "memory_report_from_file",
    "pack_bits",
    "packed_model_bytes",
    "packed_size",
    "packed_state_dict",
    "read_packed",
    "run_metadata",
    "save_packed",
    "serialize_packed",
    "to_nir",
    "unpack_bits",
    "write_nir",
]


def __getattr__(name: str):
    # nir (and h5py) load only when NIR export is used.
    if name in ("to_nir", "write_nir"):
        from . import nir_export

        return getattr(nir_export, name)
    if name == "IntegerNetwork":  # integer-only inference: brings in the networks' registry
        from .integer_infer import IntegerNetwork

        return IntegerNetwork
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
