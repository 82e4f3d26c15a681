"""The metrics of a run (OUT/metrics.json): its settings, accuracies, model selection and
memory figures."""

from __future__ import annotations

from typing import Any

from ..quant.registry import is_float_quantizer
from .config import weight_bits
from .epoch_eval import eval_every
from .run import Run


def size_metrics(run: Run) -> dict[str, Any]:
    """Memory figures: the fp32 size against the exact size of the file that `spikequant
    export` writes for this run's checkpoint (run settings and epoch included)."""
    from ..export import count_weights, fp32_model_bytes, packed_model_bytes, run_metadata

    meta = run_metadata(run.config.to_dict(), run.epoch)
    fp32, packed = fp32_model_bytes(run.net), packed_model_bytes(run.net, meta)
    return {
        "num_weights": count_weights(run.net),
        "model_bytes_fp32": fp32,
        "model_bytes_quantized": packed,
        "memory_savings": fp32 / packed,
    }


def metrics_of(run: Run, final: bool) -> dict[str, Any]:
    cfg = run.config
    last = run.history[-1] if run.history else {}
    tests = [row["test_accuracy"] for row in run.history if row.get("test_accuracy") is not None]
    return {
        "dataset": cfg.dataset,
        "quantizer": cfg.quantizer,
        "bits": weight_bits(cfg.quantizer, cfg.bits, cfg.levels),
        "levels": cfg.levels,
        "layer_bits": dict(cfg.layer_bits),
        "state_bits": cfg.state_bits,  # None: float neuron state
        "model": cfg.model or cfg.dataset,
        "epochs": cfg.epochs,
        "epochs_completed": run.epoch,
        "finished": final,
        "time_steps": run.time_steps,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "loss": cfg.loss,
        "init_from": run.init_info,
        # the final epoch's network (last.pt)
        "test_accuracy": last.get("test_accuracy"),
        "val_accuracy": last.get("val_accuracy"),
        # best.pt: the epoch chosen on the validation split, never on the test set
        "best_epoch": run.selection.get("best_epoch"),
        "best_val_accuracy": run.selection.get("best_val_accuracy"),
        "best_test_accuracy": run.selection.get("test_accuracy_at_best_val"),
        "selection": run.selection.get("criterion"),
        # only for comparison with papers that report it: chosen on the test set, over the
        # epochs that measured it (every epoch with --test-every 1)
        "max_test_accuracy_over_epochs": max(tests) if tests else None,
        "eval_every": eval_every(run),
        "test_every": cfg.test_every,
        "train_accuracy": last.get("train_accuracy"),
        "hard_train_accuracy": last.get("hard_train_accuracy"),
        "soft_hard_gap": last.get("soft_hard_gap"),
        "final_temperature": last.get("temperature"),
        "bn_recalibration": bool(cfg.bn_recalibration and not is_float_quantizer(cfg.quantizer)),
        "train_seconds": round(run.train_seconds, 3),
        "world_size": run.ctx.world_size,
        "split": run.split_info,
        "device": str(cfg.device),
        **size_metrics(run),
    }

