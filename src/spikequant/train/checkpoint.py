"""Checkpoints: written atomically, verified when read, self-describing enough to rebuild the
network.

A checkpoint is a dict saved with torch.save:
    version        int, CHECKPOINT_VERSION
    model_config   dict such that spikequant.models.build(**model_config) rebuilds the network
    model          the network's state_dict
    run            the run's settings (dataset, time_steps, data_dir, quantizer, bits, seed, ...)
    epoch          number of finished epochs
    optimizer, lr_scheduler, temperature, rng, best_accuracy, history   (for --resume)
    sha256         SHA-256 over every other entry (`checksum.content_sha256`)

It holds tensors, numbers, strings and containers only (the random states included), so it is
read with `torch.load(weights_only=True)`: a file that would build any other object, and so
could run code, is refused. The SHA-256 catches damaged bytes that torch.load itself would
read as different weights; parameters that are not finite numbers are refused too.
"""

from __future__ import annotations

import io
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._atomic import atomic_write_bytes
from ..errors import CheckpointError, MissingFileError, UnsafeFileError
from .checksum import content_sha256

CHECKPOINT_VERSION = 2  # 2: SHA-256, random states as tensors and lists (weights_only)
# What a version-1 checkpoint needs beyond plain tensors: numpy's random state as an array.
_NUMPY_ARRAY_GLOBALS = {
    "numpy._core.multiarray._reconstruct",
    "numpy.core.multiarray._reconstruct",
    "numpy.ndarray",
    "numpy.dtype",
}


def serialize_checkpoint(state: dict[str, Any]) -> bytes:
    """The bytes of `state` as a checkpoint file, its SHA-256 added."""
    state = {k: v for k, v in state.items() if k != "sha256"}
    try:
        state["sha256"] = content_sha256(state)
    except TypeError as err:
        raise CheckpointError(f"cannot write this checkpoint: {err}") from None
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def atomic_torch_save(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a checkpoint with its SHA-256, never leaving a half-written file behind. The
    bytes are made in memory first, so a full disk is an OSError naming the file rather than
    an error from inside torch.save's zip writer."""
    atomic_write_bytes(path, serialize_checkpoint(state))


def _legacy_numpy_globals() -> list:
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _torch_load(path: Path, map_location: Any) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            raise CheckpointError(
                f"{path} is not a readable checkpoint ({str(err).splitlines()[0]}); "
                "is the file damaged or truncated?"
            ) from None
    # Refused by the restricted unpickler: something other than tensors and containers.
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - unreadable opcodes: treated as unsafe below
        needed = {"?"}
        with path.open("rb") as fh:
            head = fh.read(4)
        if not head.startswith((b"PK\x03\x04", b"\x80")):  # torch.save's zip, or a pickle
            raise CheckpointError(
                f"{path} is not a checkpoint: neither the zip archive torch.save writes nor "
                f"a pickle (it starts with {head!r}); train writes DIR/last.pt and DIR/best.pt"
            ) from None
    if needed and needed <= _NUMPY_ARRAY_GLOBALS:  # a version-1 checkpoint's numpy state
        with torch.serialization.safe_globals(_legacy_numpy_globals()):
            return torch.load(path, map_location=map_location, weights_only=True)
    shown = ", ".join(sorted(needed)[:4])
    raise UnsafeFileError(
        f"{path} was refused: loading it would call {shown}, which a spikequant checkpoint "
        "never holds (it may run code). spikequant only loads files of tensors, numbers and "
        "strings; re-train or re-export from a checkpoint you wrote yourself."
    )


def _verify(path: Path, ckpt: dict) -> None:
    version = ckpt.get("version", 0)
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer spikequant (checkpoint version {version}); "
            "upgrade spikequant to read it"
        )
    if "sha256" not in ckpt:
        if version >= 2:
            raise CheckpointError(f"{path} has no SHA-256 entry; the file was altered")
        warnings.warn(
            f"{path} was written by an older spikequant and has no checksum: it is loaded "
            "without an integrity check",
            stacklevel=3,
        )
    else:
        try:
            actual = content_sha256(ckpt)
        except TypeError as err:
            raise CheckpointError(
                f"{path} holds something a checkpoint never holds ({err})"
            ) from None
        if actual != ckpt["sha256"]:
            raise CheckpointError(
                f"{path}: SHA-256 mismatch, the checkpoint is damaged or was altered "
                "(a flipped byte changes the weights); use another copy (best.pt, last.pt) "
                "or train again"
            )
    not_finite = [k for k, v in ckpt["model"].items()
                  if isinstance(v, torch.Tensor) and v.is_floating_point()
                  and not torch.isfinite(v).all()]
    if not_finite:
        raise CheckpointError(
            f"{path} holds NaN or infinite parameters ({', '.join(not_finite[:4])}): the run it "
            "comes from diverged; use an earlier checkpoint or train again with a lower --lr"
        )


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and verify a checkpoint written by `spikequant train`; CheckpointError (its
    subclass UnsafeFileError for files that could run code) for anything else.

    Args:
        path: the checkpoint file (a run folder's last.pt or best.pt).
        map_location: where its tensors are loaded, as torch.load's `map_location` (a
            device name or torch.device). Default "cpu".

    Returns:
        The checkpoint dict (the entries the module docstring lists), verified: version,
        SHA-256 and finite parameters.

    Raises:
        MissingFileError: there is no file at `path`.
        CheckpointError: the file is not a readable, intact spikequant checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(
            f"no checkpoint at {path} (train writes DIR/last.pt and DIR/best.pt)"
        )
    try:
        ckpt = _torch_load(path, map_location)
    except CheckpointError:
        raise
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001 - any other reading failure means a bad file
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({first}); is the file truncated?"
        ) from None
    if (not isinstance(ckpt, dict) or not isinstance(ckpt.get("model_config"), dict)
            or not isinstance(ckpt.get("model"), dict)):
        raise CheckpointError(
            f"{path} is not a spikequant checkpoint (no model_config/model entries)"
        )
    _verify(path, ckpt)
    return ckpt


def model_from_checkpoint(
    ckpt: dict | str | os.PathLike, device: str = "cpu", source: str | None = None
) -> nn.Module:
    """Rebuild the network of a checkpoint (a loaded dict or a path) in eval mode.

    Args:
        ckpt: a checkpoint dict from `load_checkpoint`, or the path of a checkpoint file
            (read with `load_checkpoint` onto the CPU).
        device: where the rebuilt network is moved ("cpu", "cuda", ...). Default "cpu".
        source: how error messages name the checkpoint; None (default): its path, or "the
            checkpoint" for a dict.

    Returns:
        The network `spikequant.models.build(**ckpt["model_config"])` makes, with the
        checkpoint's weights, on `device`, in eval mode.

    Raises:
        UnknownComponent: the network, quantizer or neuron it names is not registered.
        CheckpointError: the weights do not fit the network the config declares, or (for a
            path) the file is not an intact checkpoint, as in `load_checkpoint`.
    """
    from ..models import build
    from ..models.registry import check_components
    from ..models.shapes import shape_mismatch
    from ..quant import state_dict_follows

    if not isinstance(ckpt, dict):
        source = source or str(ckpt)
        ckpt = load_checkpoint(ckpt)
    source = source or "the checkpoint"
    config = ckpt["model_config"]
    run = ckpt.get("run") if isinstance(ckpt.get("run"), dict) else {}
    check_components(config, run.get("plugins"), source)
    problem = shape_mismatch(config, ckpt["model"])
    if problem:  # decided before allocating what the config declares
        raise CheckpointError(
            f"{source} does not fit the network its model_config declares: {problem}"
        )
    try:
        with state_dict_follows():  # the state dict sets every quantizer's scales
            model = build(**config)
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, ValueError, KeyError) as err:
        first = " ".join(str(err).split())[:400] or type(err).__name__
        raise CheckpointError(
            f"{source} does not fit the network its model_config declares "
            f"({config.get('name')}, quantizer {config.get('quantizer')}): {first}"
        ) from None
    return model.to(device).eval()
