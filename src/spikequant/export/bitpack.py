"""Bit packing of integer weight codes: `bits` bits a code, little-endian within each byte.

Code i occupies bits [i * bits, (i + 1) * bits) of the packed stream, bit 0 of a code first;
stream bit j is bit (j % 8) of byte j // 8. So 1-bit codes pack eight to a byte and the packed
size is exactly ceil(count * bits / 8) bytes. Works on numpy arrays or torch tensors, in chunks
so that packing 17 M codes at 8 bits needs no more than a few MiB of scratch memory.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MAX_BITS = 8
# A multiple of 8 codes, so every chunk but the last ends on a byte boundary.
CHUNK = 1 << 20


def packed_size(count: int, bits: int) -> int:
    """Bytes that `count` codes of `bits` bits take once packed."""
    _check_bits(bits)
    return math.ceil(count * bits / 8)


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be an integer from 1 to {MAX_BITS}, got {bits!r}")


def _as_numpy(codes: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(codes, torch.Tensor):
        codes = codes.detach().cpu().numpy()
    return np.asarray(codes).reshape(-1)


def pack_bits(codes: np.ndarray | torch.Tensor, bits: int) -> np.ndarray:
    """Pack non-negative integer codes (each < 2**bits) into a flat uint8 array.

    Args:
        codes: the integer codes, a numpy array or torch tensor of any shape (read flattened,
            in C order; a tensor is copied to the CPU first).
        bits: bits a code, an integer from 1 to 8.

    Returns:
        packed_size(codes.size, bits) bytes, laid out as the module docstring describes.

    Raises:
        ValueError: `bits` is not an integer from 1 to 8, or a code lies outside
            [0, 2**bits - 1].
    """
    _check_bits(bits)
    flat = _as_numpy(codes)
    if flat.size and (flat.min() < 0 or flat.max() >= 1 << bits):
        raise ValueError(
            f"codes must lie in [0, {(1 << bits) - 1}] to pack at {bits} bits; "
            f"got values in [{flat.min()}, {flat.max()}]"
        )
    out = np.empty(packed_size(flat.size, bits), dtype=np.uint8)
    shifts = np.arange(bits, dtype=np.uint8)
    for start in range(0, flat.size, CHUNK):
        chunk = flat[start : start + CHUNK].astype(np.uint8)
        stream = (chunk[:, None] >> shifts) & 1  # [n, bits], bit 0 of each code first
        packed = np.packbits(stream.reshape(-1), bitorder="little")
        first = start * bits // 8
        out[first : first + packed.size] = packed
    return out


def unpack_bits(packed: np.ndarray | torch.Tensor, bits: int, count: int) -> np.ndarray:
    """Inverse of `pack_bits`: the first `count` codes as a uint8 array.

    Args:
        packed: the packed bytes, a uint8 numpy array or torch tensor (read flattened); bytes
            past the first packed_size(count, bits) are ignored.
        bits: bits a code, an integer from 1 to 8, as they were packed with.
        count: how many codes to read.

    Returns:
        A flat uint8 array of `count` codes.

    Raises:
        ValueError: `bits` is not an integer from 1 to 8, `packed` is not uint8, or it holds
            fewer than packed_size(count, bits) bytes.
    """
    _check_bits(bits)
    data = _as_numpy(packed)
    if data.dtype != np.uint8:
        raise ValueError(f"packed codes must be uint8 bytes, got {data.dtype}")
    need = packed_size(count, bits)
    if data.size < need:
        raise ValueError(
            f"{count} codes at {bits} bits need {need} bytes, only {data.size} given "
            "(truncated data?)"
        )
    out = np.empty(count, dtype=np.uint8)
    weights = (1 << np.arange(bits, dtype=np.uint16)).astype(np.uint16)
    for start in range(0, count, CHUNK):
        n = min(CHUNK, count - start)
        first = start * bits // 8
        raw = data[first : first + packed_size(n, bits)]
        stream = np.unpackbits(raw, count=n * bits, bitorder="little").reshape(n, bits)
        out[start : start + n] = (stream.astype(np.uint16) @ weights).astype(np.uint8)
    return out
