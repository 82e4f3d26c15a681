"""The subsets of the training data a run holds back: a validation split that selects best.pt
(so nothing is chosen on the test set) and a fixed calibration slice that batch-norm
re-estimation and the hard-weight training accuracy read."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data.splits import stratified_holdout


def carve_validation(
    targets: Sequence[int], fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(train indices, validation indices): a seeded stratified share `fraction` of every
    class held out (at least one sample of each class with two or more). Both lists sorted."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the validation fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return list(range(len(targets))), []
    gen = torch.Generator().manual_seed(seed)
    held = stratified_holdout([int(t) for t in targets], fraction,
                              lambda n: torch.randperm(n, generator=gen).tolist(),
                              at_least_one=True)
    held_set = set(held)
    train = [i for i in range(len(targets)) if i not in held_set]
    if not train:
        raise ValueError(
            f"a validation fraction of {fraction} leaves no training samples; lower --val-fraction"
        )
    return train, held


def calibration_slice(indices: Sequence[int], samples: int, seed: int) -> list[int]:
    """A fixed seeded choice of `samples` of `indices` (all of them if fewer), in index order.
    The same on every rank, so re-estimated batch-norm statistics agree across processes."""
    if samples <= 0 or not indices:
        return []
    gen = torch.Generator().manual_seed(seed + 7_919)
    order = torch.randperm(len(indices), generator=gen)[:samples].tolist()
    return sorted(indices[i] for i in order)
