"""Seeding, random-number state capture/restore, and per-epoch deterministic sampling."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def capture_rng() -> dict:
    """Every random state, as tensors, numbers and tuples only, so a checkpoint holding it
    loads with torch.load(weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    if isinstance(keys, torch.Tensor):
        keys = keys.numpy()
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class EpochShuffleSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch), sharded over ranks. Because the order does
    not depend on how many epochs this process has run, a resumed run sees the same batches as
    an uninterrupted one. With several ranks each takes an equal share (the remainder of the
    shuffled indices is dropped for that epoch)."""

    def __init__(
        self, size: int, seed: int, rank: int = 0, world_size: int = 1, shuffle: bool = True
    ) -> None:
        self.size, self.seed, self.rank, self.world = size, seed, rank, world_size
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.size, generator=gen).tolist()

    def __iter__(self) -> Iterator[int]:
        order = self._order()
        if self.world > 1:
            per_rank = self.size // self.world
            order = order[self.rank : per_rank * self.world : self.world]
        return iter(order)

    def __len__(self) -> int:
        return self.size // self.world if self.world > 1 else self.size


class ShardSampler(Sampler[int]):
    """Every index exactly once over all ranks, in order (for evaluation)."""

    def __init__(self, size: int, rank: int = 0, world_size: int = 1) -> None:
        self.indices = list(range(rank, size, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
