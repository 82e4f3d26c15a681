"""Which implementation runs the fused neuron and quantizer: kernels or torch ops.

    SPIKEQUANT_KERNELS=auto    (default) Triton for CUDA tensors when triton imports; for
                               float32 CPU tensors the compiled C kernels of the neuron and the
                               binary quantizer where a C compiler builds them
                               (spikequant._cpu_kernels); torch ops otherwise
    SPIKEQUANT_KERNELS=torch   torch ops everywhere (the reference implementation)
    SPIKEQUANT_KERNELS=triton  Triton for every tensor; CPU tensors need Triton's interpreter
                               (TRITON_INTERPRET=1 before triton is imported): for tests

`use_kernels("torch")` does the same for a block of code. The torch implementation is the
reference the kernels are tested against, and the fallback wherever they cannot run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from . import environment
from .errors import ConfigError, KernelsUnavailable

MODES = ("auto", "torch", "triton")
ENV = "SPIKEQUANT_KERNELS"

# Read from the environment at first use, not at import: a bad value is then a ConfigError
# where a kernel is chosen (and the command's start-up check), not a failed import.
_mode: str | None = None


def kernel_mode() -> str:
    """The mode in force: use_kernels' inside its block, else $SPIKEQUANT_KERNELS (default
    auto); a value it does not accept is a spikequant.errors.ConfigError."""
    global _mode
    if _mode is None:
        _mode = environment.value(ENV) or "auto"
    return _mode


@contextmanager
def use_kernels(mode: str) -> Iterator[None]:
    """Run a block with `mode` ("auto", "torch" or "triton") instead of the environment's."""
    global _mode
    if mode not in MODES:
        raise ConfigError(f"kernel mode must be one of {', '.join(MODES)}, got {mode!r}")
    before, _mode = _mode, mode  # None before: the environment is read again after
    try:
        yield
    finally:
        _mode = before


@functools.cache
def triton_import_error() -> str | None:
    """None when triton imports, else why not (one line)."""
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any failure means: use the torch ops
        return f"{type(err).__name__}: {err}"
    return None


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def use_triton(t: torch.Tensor) -> bool:
    """Whether the Triton kernels should process tensor `t` under the current mode."""
    mode = kernel_mode()
    if mode == "torch" or t.is_meta:  # a meta tensor (a memory estimate) computes nothing
        return False
    if mode == "auto":
        return t.is_cuda and triton_import_error() is None
    error = triton_import_error()
    if error is not None:
        raise KernelsUnavailable(f"{ENV}=triton but triton does not import ({error}); "
                                 f"`pip install triton` or set {ENV}=auto")
    if not t.is_cuda and not interpreting():
        raise KernelsUnavailable(f"{ENV}=triton runs Triton on {t.device.type} tensors only "
                                 "under Triton's interpreter (TRITON_INTERPRET=1 before "
                                 f"starting Python); set {ENV}=auto to use the kernels each "
                                 "device has")
    return True
