"""Where a `spikequant train` epoch goes, timed inside the training process by patching the
library's functions (nothing in the library knows it is being timed).

Phases: `steps` (the network's forward in training mode to the end of its optimizer step),
`loading` (waiting for the next training batch), `re-estimation` (the batch-norm pass with
hard weights over the calibration slice), `calibration accuracy`, `validation`, `test` (each
evaluation pass, its own data loading included). Each phase is recorded per epoch (the epoch
`spikequant train` is in when it runs) so an evaluated epoch and one without evaluation can be
told apart; `soft-hard gap` is the share of weights not yet hard that log.csv records
(every quantizer run twice over its layer). What the run does after its last epoch goes to epoch 0.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

PHASES = ("steps", "loading", "re-estimation", "calibration accuracy", "validation", "test",
          "soft-hard gap")


class EpochSplit:
    """Seconds of each phase, per epoch: `seconds[epoch][phase]`."""

    def __init__(self) -> None:
        self.seconds: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.run: Any = None
        self.epoch = 0  # 1-based while an epoch runs, 0 outside
        self._step_start: float | None = None

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[self.epoch][phase] += seconds

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {str(e): dict(p) for e, p in sorted(self.seconds.items())}

    # which evaluation a pass over `batches` is
    def phase_of(self, batches: Any, default: str) -> str:
        loaders = getattr(self.run, "loaders", None)
        source = getattr(batches, "iterable", batches)  # evaluate wraps its loader in tqdm
        if loaders is not None and source is loaders.test:
            return "test"
        if loaders is not None and source is loaders.val:
            return "validation"
        return default


def install() -> EpochSplit:
    """Patch the training process so every phase is timed; returns the record."""
    import torch
    from torch.nn.modules.module import register_module_forward_pre_hook
    from torch.optim.optimizer import register_optimizer_step_post_hook
    from torch.utils.data import dataloader

    from spikequant.models.convnet import SpikingConvNet
    from spikequant.train import calibration, epoch_eval, evaluation, trainer

    split = EpochSplit()

    def forward_pre(module, _inputs):
        if isinstance(module, SpikingConvNet) and module.training and torch.is_grad_enabled():
            split._step_start = time.perf_counter()

    def step_post(_optimizer, _args, _kwargs):
        if split._step_start is not None:
            split.add("steps", time.perf_counter() - split._step_start)
            split.seconds[split.epoch]["step_count"] += 1
            split._step_start = None

    register_module_forward_pre_hook(forward_pre)
    register_optimizer_step_post_hook(step_post)

    setup = trainer.setup

    def timed_setup(cfg):
        split.run = setup(cfg)
        return split.run

    trainer.setup = timed_setup

    train_epoch = trainer.train_epoch

    def timed_train_epoch(run, *args, **kwargs):
        split.epoch = run.epoch + 1
        return train_epoch(run, *args, **kwargs)

    trainer.train_epoch = timed_train_epoch

    save_epoch = trainer.save_epoch

    def timed_save_epoch(*args, **kwargs):
        try:
            return save_epoch(*args, **kwargs)
        finally:
            split.epoch = 0  # the epoch (as log.csv times it) ended before its files

    trainer.save_epoch = timed_save_epoch

    next_batch = dataloader._BaseDataLoaderIter.__next__

    def timed_next(self):
        train = getattr(split.run, "loaders", None)
        if train is None or self._dataset is not train.train.dataset:
            return next_batch(self)
        start = time.perf_counter()
        try:
            return next_batch(self)
        finally:
            split.add("loading", time.perf_counter() - start)

    dataloader._BaseDataLoaderIter.__next__ = timed_next

    def timed_passes(module, default: str):
        forward_batches = module.forward_batches

        def wrapper(model, batches, *args, **kwargs) -> Iterator:
            phase = split.phase_of(batches, default)
            start = time.perf_counter()
            try:
                yield from forward_batches(model, batches, *args, **kwargs)
            finally:
                split.add(phase, time.perf_counter() - start)

        module.forward_batches = wrapper

    timed_passes(calibration, "re-estimation")
    gap = epoch_eval.soft_hard_gap

    def timed_gap(*args, **kwargs):
        start = time.perf_counter()
        try:
            return gap(*args, **kwargs)
        finally:
            split.add("soft-hard gap", time.perf_counter() - start)

    epoch_eval.soft_hard_gap = timed_gap
    timed_passes(evaluation, "calibration accuracy")
    return split


def summarize(split: dict[str, dict[str, float]], epoch_seconds: list[float]) -> dict[str, Any]:
    """Per epoch: each phase, and `other` (the epoch's seconds as log.csv records them less the
    phases); plus the same summed over the epochs and the time after the last epoch."""
    epochs = []
    for number, total in enumerate(epoch_seconds, start=1):
        phases = split.get(str(number), {})
        row = {p: phases.get(p, 0.0) for p in PHASES}
        row["steps_count"] = int(phases.get("step_count", 0))
        row["epoch"] = number
        row["epoch_s"] = total
        row["other"] = total - sum(row[p] for p in PHASES)
        epochs.append(row)
    after = {p: split.get("0", {}).get(p, 0.0) for p in PHASES}
    return {"epochs": epochs, "after_last_epoch": after}
