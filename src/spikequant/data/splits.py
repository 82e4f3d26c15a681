"""Seeded stratified hold-outs: the test split of a dataset without an official one, and the
validation split a training run carves from its training data (train.splits), by one rule.

Each class (in sorted order, its members in index order) gives round(fraction * n) members, the
first of a seeded permutation of them. Each caller keeps the generator its published splits
were drawn with (numpy's for a dataset's test split, torch's for a run's validation split), so
no existing split moves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def stratified_holdout(labels: Sequence[int] | np.ndarray, fraction: float,
                       permutation: Callable[[int], Sequence[int]],
                       at_least_one: bool = False) -> list[int]:
    """Sorted indices of the held-out share of `labels`: round(fraction * n_c) of each class c,
    taken in the order `permutation(n_c)` gives (a seeded permutation of range(n_c)), classes
    in sorted order. `at_least_one`: a class of two or more members gives at least one."""
    labels = np.asarray(labels)
    held: list[int] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = int(round(fraction * len(members)))
        if at_least_one and count == 0 and len(members) >= 2:
            count = 1
        order = list(permutation(len(members)))
        held.extend(int(members[i]) for i in order[:count])
    return sorted(held)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the test items of a dataset: `stratified_holdout` with numpy's
    generator seeded by `seed`."""
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[stratified_holdout(labels, test_fraction, rng.permutation)] = True
    return is_test
