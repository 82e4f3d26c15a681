"""Accuracy of a network over a data loader."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader
from tqdm.auto import tqdm


def to_time_major(frames: torch.Tensor) -> torch.Tensor:
    """Loader batches are [B, T, C, H, W]; the networks take [T, B, C, H, W]."""
    return frames.transpose(0, 1).contiguous()


def forward_batches(model: nn.Module, batches: Iterable, device: str | torch.device = "cpu",
                    amp: bool = False) -> Iterator[tuple[torch.Tensor, Any, int]]:
    """(scores, labels, B) of each (frames [B, T, ...], labels) batch, the model run as it is:
    each quantized weight computed once for all batches, float16 autocast on CUDA with `amp`.
    Call under torch.no_grad(), with the model in the mode wanted."""
    with parametrize.cached():  # quantize each weight once, not once a batch
        for frames, labels in batches:
            with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
                scores = model(to_time_major(frames.to(device, non_blocking=True)).float())
            yield scores, labels, frames.shape[0]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    device: str | torch.device = "cpu",
    progress: bool = False,
    desc: str = "eval",
    amp: bool = False,
) -> dict[str, Any]:
    """Eval-mode accuracy: {"accuracy": fraction, "correct", "total", "predictions": LongTensor}.

    The model runs in eval mode without gradient (each quantized weight computed once for all
    batches) and is put back in the mode it was in afterwards.

    Args:
        model: the network, already on `device`; it takes [T, B, ...] and returns class
            scores [B, num_classes].
        loader: yields (frames [B, T, ...], labels [B]) batches, labels on the CPU; the
            frames are moved to `device`, made time-major and float.
        device: where the frames are sent: the model's device. Default "cpu".
        progress: show a progress bar. Default False.
        desc: the progress bar's label. Default "eval".
        amp: run the model under float16 autocast on CUDA. Default False.

    Returns:
        {"accuracy": correct / total (0 for an empty loader), "correct": int, "total": int,
        "predictions": the predicted classes, a LongTensor [total] in loader order}.
    """
    was_training = model.training
    model.eval()
    correct, total, predictions = 0, 0, []
    try:
        batches = tqdm(loader, desc=desc, leave=False, disable=not progress)
        for scores, labels, _ in forward_batches(model, batches, device, amp):
            pred = scores.argmax(dim=1).cpu()
            predictions.append(pred)
            correct += int((pred == labels).sum())
            total += labels.numel()
    finally:
        model.train(was_training)
    preds = torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)
    return {
        "accuracy": correct / max(total, 1),
        "correct": correct,
        "total": total,
        "predictions": preds,
    }
