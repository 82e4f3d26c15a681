"""A SHA-256 over the content of a checkpoint: tensors (dtype, shape, bytes), numbers, strings
and the dicts, lists and tuples holding them, independent of how torch.save lays them out, so
the digest computed before saving is the digest of what torch.load returns."""

from __future__ import annotations

import hashlib
from typing import Any

import torch


def _feed(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        digest.update(f"T{str(t.dtype)}{list(t.shape)}|".encode())
        if t.numel():
            digest.update(t.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}|".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{'L' if isinstance(value, list) else 'U'}{len(value)}|".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        digest.update(f"S{len(data)}|".encode() + data)
    elif value is None or isinstance(value, bool):
        digest.update(f"{value!r}|".encode())
    elif isinstance(value, int):
        digest.update(f"I{value}|".encode())
    elif isinstance(value, float):
        digest.update(f"F{value.hex()}|".encode())
    elif isinstance(value, (torch.dtype, torch.device)):
        digest.update(f"O{value!r}|".encode())
    else:
        raise TypeError(
            f"a checkpoint may hold tensors, numbers, strings, None and dicts/lists/tuples of "
            f"them; got a {type(value).__name__}"
        )


def content_sha256(state: dict[str, Any], skip: str = "sha256") -> str:
    """Hex SHA-256 of every entry of `state` except `skip` (where the digest itself is kept)."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in state.items() if k != skip})
    return digest.hexdigest()
