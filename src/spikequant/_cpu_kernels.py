"""Compiled CPU kernels: C sources shipped with the package, built at first use with the
system's C compiler and loaded with ctypes.

On a CPU, the binary quantizer and the multi-step neuron are bound by memory traffic: torch ops
make one pass over a full-size tensor per operation (nine over N-MNIST's 67 MB FC weight for
the quantizer, 3-4 per time step for a neuron), a fused loop makes one. The kernels are:

    csrc/binary_sigmoid.c   the binary sigmoid quantizer, forward and backward
                            (quant/cpu_kernel.py)
    csrc/multilevel_sigmoid.c  the 2- to 8-bit sigmoid quantizer, forward and backward
                            (quant/multilevel_cpu.py)
    csrc/lif.c              the multi-step LIF / PLIF neuron, forward and backward
                            (snn/cpu_kernel.py)
    csrc/exp_poly.h         what both include: a vectorisable exp

Each is compiled (`cc -O3 -march=native -fopenmp`; `$CC` picks the compiler) into a per-user
cache keyed by the source, the compiler, the flags and the CPU, written atomically, and loaded
once per process. torch has loaded its libgomp before a kernel loads, so the kernels' OpenMP
loops run on torch's own intra-op threads. Where no compiler works the torch ops run instead;
they are the reference the kernels are tested against (same values up to float rounding).

    SPIKEQUANT_KERNELS=torch     torch ops everywhere (turns these kernels off)
    SPIKEQUANT_CPU_KERNEL_DIR    where compiled libraries are kept (default
                                 $XDG_CACHE_HOME/spikequant or ~/.cache/spikequant)

A cache folder that cannot be used (missing and not creatable, read-only, full, or writable by
others) leaves the torch ops running, with one warning naming the folder, the setting that
chose it and SPIKEQUANT_CPU_KERNEL_DIR.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import torch

from . import environment
from ._kernels import kernel_mode
from .errors import CacheUnavailableWarning

SOURCES = Path(__file__).with_name("csrc")
CFLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared")
OPENMP = ("-fopenmp",)
NO_OPENMP = ("-fopenmp-simd",)  # vectorised still, on one thread
# below this many elements per thread a kernel runs on one thread (a hand-off costs more)
PARALLEL_MIN = 1 << 16

float_p = ctypes.POINTER(ctypes.c_float)
double_p = ctypes.POINTER(ctypes.c_double)


def cache_dir() -> Path:
    """Where compiled libraries are kept: $SPIKEQUANT_CPU_KERNEL_DIR, else
    environment.cache_home()."""
    return environment.kernel_cache_dir()[0]


class KernelCacheError(OSError):
    """The kernel cache folder cannot be used; the message names it and how to move it."""


def _cache_error(folder: Path, err: OSError) -> KernelCacheError:
    origin = environment.kernel_cache_dir()[1]
    return KernelCacheError(
        f"the compiled CPU kernel cache {folder} ({origin}) cannot be used "
        f"({err.strerror or err}); point SPIKEQUANT_CPU_KERNEL_DIR at a folder you can write"
    )


def compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


@functools.cache
def _cpu_signature() -> str:
    """What -march=native depends on: the CPU model and its instruction-set flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features"))]
    return "\n".join(dict.fromkeys(keep))


@functools.cache
def _compiler_version(cc: str) -> str:
    """`cc --version`, asked once a process (every kernel's cache key holds it)."""
    return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60).stdout


def build(source: Path, cc: str) -> Path:
    """Compile `source` into the cache and return the library's path (the one already there
    when it is). Atomic: a compile that fails or is killed half-way leaves no library."""
    version = _compiler_version(cc)
    headers = [h.read_text() for h in sorted(source.parent.glob("*.h"))]
    key = hashlib.sha256("\0".join([
        source.read_text(), *headers, cc, version, " ".join(CFLAGS + OPENMP), _cpu_signature(),
    ]).encode()).hexdigest()[:16]
    out_dir = cache_dir()
    lib = out_dir / f"{source.stem}-{key}.so"
    try:
        out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _check_private(out_dir)
        if lib.exists():
            _check_private(lib)
            return lib
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".so.part")
        os.close(fd)
    except KernelCacheError:
        raise
    except OSError as err:
        raise _cache_error(out_dir, err) from None
    try:
        for threads in (OPENMP, NO_OPENMP):
            done = subprocess.run([cc, *CFLAGS, *threads, f"-I{source.parent}", "-o", tmp,
                                   str(source)],
                                  capture_output=True, text=True, timeout=300)
            if done.returncode == 0:
                break
        else:
            if _no_space(out_dir):  # the compiler could not write the library there
                raise _cache_error(out_dir, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
            raise RuntimeError(f"{cc} failed on {source.name}: {done.stderr.strip()[-500:]}")
        try:
            os.replace(tmp, lib)
        except OSError as err:
            raise _cache_error(out_dir, err) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


def _no_space(folder: Path) -> bool:
    """Whether the file system of `folder` is full (a compile that fails there may be why)."""
    try:
        info = os.statvfs(folder)
    except OSError:
        return False
    return info.f_bavail * info.f_frsize < (1 << 20)


def _check_private(path: Path) -> None:
    """Loading a library runs its code: only load one from a place no other user can write.
    A KernelCacheError (the kernel then falls back to torch ops) names the path and the fix."""
    if not hasattr(os, "getuid"):
        return
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise KernelCacheError(
            f"the compiled CPU kernel cache: {path} is owned by another user or writable by "
            "others, so a compiled kernel there could be replaced by someone else's code; point "
            "SPIKEQUANT_CPU_KERNEL_DIR at a directory of your own (or chmod go-w it)"
        )


class CompiledKernel:
    """One C source: built and loaded on first use; `lib` is the loaded library or None, with
    the reason in `unavailable_reason()`. `functions` maps each exported function to its
    ctypes argument types."""

    def __init__(self, source: Path, functions: dict[str, list]) -> None:
        self.source = source
        self.functions = functions
        self._loaded = False
        self._lib: ctypes.CDLL | None = None
        self._reason: str | None = None

    def reset(self) -> None:
        """Forget the loaded library (tests: build again under another environment)."""
        self._loaded, self._lib, self._reason = False, None, None

    @property
    def lib(self) -> ctypes.CDLL | None:
        if not self._loaded:
            self._lib, self._reason = self._load()
            self._loaded = True
        return self._lib

    def unavailable_reason(self) -> str | None:
        """None when the kernel is built and loaded, else why not (one line)."""
        _ = self.lib
        return self._reason

    def _load(self) -> tuple[ctypes.CDLL | None, str | None]:
        if not sys.platform.startswith("linux") and sys.platform != "darwin":
            return None, f"no compiled CPU kernels on {sys.platform}"
        cc = compiler()
        if cc is None:
            return None, "no C compiler (cc, gcc or clang; or set CC)"
        try:
            lib = ctypes.CDLL(str(build(self.source, cc)))
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            if isinstance(err, KernelCacheError):
                _warn_unusable_cache(str(err))
            return None, f"{type(err).__name__}: {err}"
        for name, argtypes in self.functions.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = None, argtypes
        return lib, None

    def usable_for(self, *tensors: torch.Tensor | None) -> bool:
        """Whether these tensors run on the kernel: CPU float32, kernels not switched to torch
        ops, not being traced by torch.compile (which can't trace a ctypes call, and fuses
        the torch ops itself), and the kernel builds."""
        return (kernel_mode() == "auto" and not torch.compiler.is_compiling()
                and all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32)
                        for t in tensors)
                and self.lib is not None)


@functools.cache
def _warn_unusable_cache(message: str) -> None:
    """Once a process for each cache problem (every kernel meets the same one)."""
    warnings.warn(f"{message}; the torch ops run instead of the compiled kernels (slower)",
                  CacheUnavailableWarning, stacklevel=4)


def parts(n: int) -> int:
    """How many equal ranges (threads) a kernel splits n elements into."""
    return max(1, min(torch.get_num_threads(), n // PARALLEL_MIN))


def ptr(t: torch.Tensor | None, kind=float_p):
    """A tensor's data as a C pointer (NULL for None); the tensor must be contiguous."""
    if t is None:
        return None
    return ctypes.cast(t.data_ptr(), kind)
