"""Keep freed large CPU buffers in the process for reuse (glibc malloc), instead of giving
them back to the kernel and faulting fresh pages in on the next step.

glibc serves an allocation of 32 MiB or more (its dynamic mmap threshold) with a fresh mmap
and unmaps it on free, so every new full-size tensor of N-MNIST's FC layer (67 MB: its weight
gradient, the quantized weight) costs ~16 k page faults each training step, more than a pass
of arithmetic over it (BENCHMARKS.md). With the thresholds raised, freed blocks stay on the
heap and the next step's tensors of the same sizes reuse them: no page faults after the first
step. The price: the process keeps its peak heap size until it exits, which a training run
reaches anyway.

`spikequant` calls `keep_freed_memory()` when it starts; SPIKEQUANT_MALLOPT=off (or 0, false,
no) in the environment turns it off, and so does any MALLOC_MMAP_THRESHOLD_ /
MALLOC_TRIM_THRESHOLD_ / GLIBC_TUNABLES the user set (theirs wins). Other C libraries (musl,
macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

from . import environment

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 30  # allocations above 1 GiB still get their own mapping
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_applied = False


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB for this process; True when done
    (now or by an earlier call), False where it does not apply (turned off, a setting of the
    user's, not glibc). A SPIKEQUANT_MALLOPT that is neither on nor off is a ConfigError."""
    global _applied
    if _applied:
        return True
    if environment.value("SPIKEQUANT_MALLOPT") is False:
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        _ = libc.gnu_get_libc_version  # only glibc has it
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _applied = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, THRESHOLD))
    return _applied
