"""What a worker tells Ray Train: per-epoch metrics summed over workers, and checkpoints with its reports."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from ppipe.metrics import top1_counts
from ppipe.train.backend import all_reduce_sum
from ppipe.train.checkpoint import save_checkpoint

WARMUP_STEPS = 3  # the first steps of a process are several times slower (allocations, kernel selection)


@dataclass
class EpochStats:
    """One rank's running totals over an epoch's batches; the steady rate leaves the first WARMUP_STEPS out."""

    images: int = 0
    batches: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    counted: int = 0
    steady_images: int = 0
    steady_since: float | None = None

    def begin_batch(self, batches_into_start: int) -> None:
        """Called as each batch arrives: `batches_into_start` batches of this epoch came before it on this start."""
        if batches_into_start == WARMUP_STEPS:
            self.steady_since, self.steady_images = time.perf_counter(), 0

    def add(self, loss, outputs, labels) -> None:
        """Count one trained batch."""
        correct, counted = top1_counts(outputs, labels)
        self.correct, self.counted = self.correct + correct, self.counted + counted
        self.images += len(labels)
        self.steady_images += len(labels)
        self.loss_sum += float(loss)
        self.batches += 1

    def img_per_s(self) -> float:
        elapsed = time.perf_counter() - self.steady_since if self.steady_since is not None else 0.0
        return self.steady_images / elapsed if elapsed > 0 else 0.0


def epoch_metrics(stats: EpochStats, val: dict | None, *, epoch: int, world: int, lr: float, state,
                  epoch_time_s: float) -> dict[str, Any]:
    """The epoch's metrics row (the same on every rank): training numbers summed over workers, `val` as is."""
    total_img_per_s, train_loss, correct, counted, n_images = all_reduce_sum(
        [stats.img_per_s(), stats.loss_sum / max(1, stats.batches), stats.correct, stats.counted, stats.images])
    metrics = {"epoch": epoch + 1, "train_loss": train_loss / world, "lr": lr,
               "train_img_per_s": total_img_per_s, "restarts": state.restarts,
               "global_step": state.global_step, "batches_this_start": state.batches_this_start,
               "epoch_time_s": epoch_time_s, "train_images": int(n_images)}
    if counted:  # top-1 of the main head on the training batches (none with soft targets: Mixup/Cutmix)
        metrics["train_top1"] = correct / counted
    if val is not None:
        metrics.update({"top1": val["top1"], "top5": val["top5"], "val_loss": val["loss"]})
    return metrics


class CheckpointReporter:
    """Reports metrics to Ray Train, rank 0 with a checkpoint of `run` (a `ppipe.train.loop.WorkerRun`).

    `ray.train.report` is a barrier: every rank calls it equally often. The checkpoint's files are written
    before training goes on; Ray copies them to the run storage and queues the report in its upload thread
    (ASYNC), then deletes the local copy. A synchronous report also waits for the controller to take the
    previous report off the worker (a queue of one, polled every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S): measured on
    the quickstart, 0.65-0.9 s of every 2 s epoch. Ray flushes pending uploads when the training function returns.
    """

    def __init__(self, run, *, rank: int, in_process: bool):
        self.run, self.rank, self.in_process = run, rank, in_process
        self.last_local: str | None = None

    def __call__(self, metrics: dict[str, Any]) -> None:
        import ray.train
        from ray.train import Checkpoint, CheckpointUploadMode

        local = self._save() if self.rank == 0 else None
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(local) if local else None,
                         checkpoint_upload_mode=CheckpointUploadMode.ASYNC, delete_local_checkpoint_after_upload=True)
        if self.in_process:
            # Ray Train's in-process mode (Ray.num_workers: 0) has no run storage: nothing uploads or deletes
            # there, so keep only the latest checkpoint, the run's result.
            if self.last_local:
                shutil.rmtree(self.last_local, ignore_errors=True)
            self.last_local = local

    def _save(self) -> str:
        run = self.run
        local = tempfile.mkdtemp(prefix="ppipe-checkpoint-")
        save_checkpoint(local, run.bare_model(), run.optimizer, run.lr, run.state, run.ema, amp=run.precision)
        return local
