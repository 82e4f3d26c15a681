"""Large CPU output buffers that stay mapped from one training step to the next.

glibc gives every allocation above its mmap threshold (32 MiB at the most) a fresh mapping and
unmaps it on free, so each new full-size tensor of N-MNIST's FC layer (67 MB) is ~16 k page
faults, every step, costing more than a pass of arithmetic over it. `keep_freed_memory()`
fixes that for the whole process with mallopt; the `spikequant` command calls it, a Python
user may not. The quantizer kernels take their two full-size outputs (the quantized weight
forward, the weight's gradient backward) from this pool instead, and so does the fused neuron
kernel while training (its potentials and spikes forward, its input gradient backward:
`snn.functional.step_buffer`), so those fault no page after the first step whatever the
allocator does. The price: the pool keeps the memory of the largest step between steps and
after training (`POOL.held_bytes()`; `POOL.clear()` lets it go once nothing uses it).

A buffer is lent as a fresh NumPy view of an array the pool keeps; torch's tensor over it
(`torch.from_numpy`) holds that view, and every tensor sharing the memory (views, autograd's
saved copies, a parameter's `.grad` that took it over) holds the same storage. The pool keeps
only a weak reference to the view: while any of them lives the buffer is not lent again, so a
lent buffer is never written while something can still read it.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

# below this a buffer comes from torch.empty: the conv layers' weights (0.6 MB in N-MNIST's
# network) are pooled too, as their churn on malloc's heap, trimmed and grown again as the
# dynamic mmap threshold moves, costs page faults of its own
MIN_BYTES = 64 << 10
PER_SHAPE = 4  # buffers kept per (shape, dtype); more in use at once are allocated as usual


class _Slot:
    __slots__ = ("array", "lent")

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.lent: weakref.ref | None = None

    def free(self) -> bool:
        return self.lent is None or self.lent() is None


class BufferPool:
    """Reusable CPU float buffers by shape; `empty(shape)` is `torch.empty(shape)` whose
    memory outlives the tensor, for the next call with the same shape."""

    def __init__(self, per_shape: int = PER_SHAPE, min_bytes: int = MIN_BYTES) -> None:
        self.per_shape, self.min_bytes = per_shape, min_bytes
        self._slots: dict[tuple, list[_Slot]] = {}

    def empty(self, shape: torch.Size | tuple[int, ...],
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
        shape = tuple(shape)
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        if int(np.prod(shape)) * np_dtype.itemsize < self.min_bytes:
            return torch.empty(shape, dtype=dtype)
        slots = self._slots.setdefault((shape, dtype), [])
        slot = next((s for s in slots if s.free()), None)
        if slot is None:
            if len(slots) >= self.per_shape:
                return torch.empty(shape, dtype=dtype)
            slot = _Slot(np.empty(shape, dtype=np_dtype))
            slots.append(slot)
        view = slot.array.view()
        slot.lent = weakref.ref(view)
        return torch.from_numpy(view)

    def held_bytes(self) -> int:
        """Memory the pool keeps, lent or not."""
        return sum(s.array.nbytes for slots in self._slots.values() for s in slots)

    def clear(self) -> None:
        """Forget every buffer (those still lent stay valid until their tensors go)."""
        self._slots.clear()


POOL = BufferPool()
