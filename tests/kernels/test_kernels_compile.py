"""The Triton kernels compile for a CUDA GPU (sm_90, an H100) on this CPU-only machine.

The interpreter (tests/kernels/test_kernels_triton.py) checks what the kernels compute; it does not
check that Triton's compiler accepts them (types carried through loops, constexpr branches,
what may be read from globals). Triton compiles to PTX and a cubin without a GPU, so each
kernel is compiled here with constexpr combinations that between them take every branch: every
surrogate, both resets, detached or not, learnable decay, stored potentials, half precision."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

if sys.platform != "linux":
    pytest.skip("triton is Linux-only", allow_module_level=True)

COMPILE = r"""
import json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from spikequant.quant import kernels_triton as quant_kernels
from spikequant.snn import kernels_triton as neuron_kernels

INTS = {"n", "steps", "row_len", "blocks_per_row"}
FLOATS = {"k_value", "threshold", "rest", "alpha"}

def compile_one(fn, constexprs, pointer="*fp32"):
    sig = {}
    for name in fn.arg_names:
        if name in constexprs:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = pointer
        else:
            sig[name] = "i32" if name in INTS else "fp32"
    kernel = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=constexprs),
                            target=GPUTarget("cuda", 90, 32))
    return sorted(kernel.asm)

cases = json.loads(sys.argv[1])
kernels = {"lif_forward": neuron_kernels._lif_forward_kernel,
           "lif_backward": neuron_kernels._lif_backward_kernel,
           "quant_forward": quant_kernels._quantize_forward_kernel,
           "quant_backward": quant_kernels._quantize_backward_kernel}
for name, constexprs, pointer in cases:
    print("@@compiled " + json.dumps([name, compile_one(kernels[name], constexprs, pointer)]),
          flush=True)
"""

FORWARD = dict(HAS_V0=True, K_FROM_PTR=True, DECAY_INPUT=True, SOFT_RESET=True, STORE_V=True,
               BLOCK_SIZE=512)


def _backward(surrogate: int, on: bool) -> dict:
    # alternate the flags across surrogates so that each value of each flag is compiled
    return dict(HAS_GRAD_V=on, HAS_V0=on, K_FROM_PTR=on, DECAY_INPUT=on, SOFT_RESET=not on,
                DETACH_RESET=surrogate >= 2, STORE_V=on, WANT_K=on, WANT_V0=not on,
                SURROGATE=surrogate, BLOCK_SIZE=512)


CASES = [
    ("lif_forward", FORWARD, "*fp16"),  # AMP: half-precision tensors
    ("lif_forward", {**FORWARD, "HAS_V0": False, "K_FROM_PTR": False, "DECAY_INPUT": False,
                     "SOFT_RESET": False, "STORE_V": False}, "*fp32"),
    *[("lif_backward", _backward(code, on=code % 2 == 0), "*fp32") for code in range(4)],
    ("quant_forward", {"BLOCK_SIZE": 1024}, "*fp32"),
    ("quant_backward", {"REFERENCE": True, "BLOCK_SIZE": 1024}, "*fp32"),
    ("quant_backward", {"REFERENCE": False, "BLOCK_SIZE": 1024}, "*fp32"),
]


def test_every_kernel_compiles_for_sm90():
    from spikequant.snn.surrogate import SurrogateKernel

    assert [int(k) for k in SurrogateKernel] == [0, 1, 2, 3]  # the cases above cover them
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # the compiler
    done = subprocess.run([sys.executable, "-c", COMPILE, json.dumps(CASES)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    compiled = [json.loads(line[len("@@compiled "):]) for line in done.stdout.splitlines()
                if line.startswith("@@compiled ")]
    assert [name for name, _ in compiled] == [name for name, _, _ in CASES]
    assert all("cubin" in stages and "ptx" in stages for _, stages in compiled)
