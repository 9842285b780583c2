"""The training loop every Ray worker runs: one epoch over its own part of the shards, evaluation, checkpoint.

It is a plain function of (config, run settings), so the same code runs in-process (`num_workers=0`,
unit tests) and on any number of Ray workers and nodes. Collective state comes from `PaddleBackend`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import paddle

from ppipe.config import load_config
from ppipe.evaluate import decode_first, eval_transform_ops, score, summarize
from ppipe.train.amp import MixedPrecision, for_evaluation, on_gpu, sync_batchnorm, to_float32
from ppipe.train.backend import all_reduce_sum, average_buffers, init_collective
from ppipe.train.checkpoint import load_checkpoint, save_checkpoint
from ppipe.train.ema import ModelEMA
from ppipe.losses import CombinedLoss
from ppipe.metrics import top1_counts
from ppipe.optim import build_lr, build_optimizer, scale_lr
from ppipe.train.scheduling import foreground_training_thread

log = logging.getLogger("ppipe.train")

WARMUP_STEPS = 3  # the first steps of a process are several times slower (allocations, kernel selection)


def _bare(model):
    return model._layers if isinstance(model, paddle.DataParallel) else model


def scaled_schedule(cfg, world: int):
    """The recipe's `Optimizer.lr` for `world` workers, and a sentence saying exactly what changed (None: nothing).

    With `Global.recipe_workers` set and different from `world`, the linear scaling rule (Goyal et al., 2017):
    every rate the schedule uses (`optim.lr_fields`: learning_rate or Piecewise's values, eta_min, end_lr,
    warmup_start_lr) is multiplied by world / recipe_workers, so the whole schedule keeps its shape.
    """
    lr, ref = cfg.Optimizer.lr, cfg.Global.recipe_workers
    if not ref or ref == world:
        return lr, None
    scaled, changes = scale_lr(lr, world / ref)
    if not changes:
        return lr, None
    return scaled, (f"learning rate scaled linearly for {world} workers (recipe tuned for {ref} workers; global "
                    f"batch {world * cfg.DataLoader.Train.sampler.batch_size}): {lr.name} {', '.join(changes)}")


def scaled_learning_rate(cfg, world: int) -> tuple[float | list[float], str | None]:
    """The rate the recipe's schedule runs at on `world` workers (`learning_rate`; a Piecewise schedule: its
    `values`) and the note of `scaled_schedule`, which scales the rest of the schedule with it."""
    lr, note = scaled_schedule(cfg, world)
    return (lr.values if lr.name == "Piecewise" else lr.learning_rate), note


@dataclass
class WorkerRun:
    """What one worker trains with: built from the recipe and, on a restart, restored from the checkpoint."""

    model: Any  # the training model; a paddle.DataParallel around it with more than one worker
    optimizer: Any
    lr: Any
    ema: ModelEMA | None
    precision: MixedPrecision
    criterion: CombinedLoss
    eval_loss: CombinedLoss
    steps: int  # batches per epoch on this rank
    state: dict


def build_worker_run(cfg, prepared: str, *, rank: int, world: int, checkpoint_dir: str | None = None) -> WorkerRun:
    """Model, optimizer, schedule, EMA and precision of one worker, restored from `checkpoint_dir` when given.

    The order matters: SyncBatchNorm before the optimizer collects parameters; the checkpoint (float32) before AMP
    O2 casts the weights to float16; DataParallel last, around the decorated model.
    """
    from ppipe.data import num_batches
    from ppipe.build import build_model, exported_model

    gpu = on_gpu()
    precision = MixedPrecision(cfg.AMP, gpu=gpu)  # float32, with a warning, where AMP has no GPU
    train_cfg = cfg.DataLoader.Train
    model = build_model(cfg, pretrained=cfg.Global.pretrained_model)
    model = sync_batchnorm(model, cfg.Arch.use_sync_bn, gpu=gpu, world=world)
    steps = num_batches(prepared, "train", train_cfg.sampler.batch_size, rank=rank, world_size=world,
                        drop_last=train_cfg.sampler.drop_last)
    lr = build_lr(cfg.Optimizer.lr, cfg.Global.epochs, max(1, steps // cfg.Global.update_freq))
    optimizer = build_optimizer(cfg.Optimizer, model, lr)
    ema = ModelEMA(exported_model(model), cfg.EMA.decay) if cfg.EMA is not None else None
    state = {"epochs_completed": 0, "global_step": 0, "history": [], "batch_in_epoch": 0}
    if checkpoint_dir is not None:
        state = load_checkpoint(checkpoint_dir, model, optimizer, lr, ema, amp=precision)
    model, optimizer = precision.decorate(model, optimizer)
    if world > 1:
        model = paddle.DataParallel(model)
    return WorkerRun(model=model, optimizer=optimizer, lr=lr, ema=ema, precision=precision,
                     criterion=CombinedLoss(cfg.Loss.Train, "Loss.Train"),
                     eval_loss=CombinedLoss(cfg.Loss.Eval, "Loss.Eval"), steps=steps, state=state)


def forward_backward(model, criterion, precision: MixedPrecision, images, labels, update_freq: int = 1):
    """One batch's forward pass (under AMP's auto_cast when on) and backward; returns (loss, outputs).

    The loss is computed in float32 outside auto_cast, on whatever the model returned (one tensor, or
    GoogLeNet's [main, aux1, aux2]), and divided by `update_freq` for gradient accumulation.
    """
    with precision.autocast():
        outputs = model(images)
    outputs = to_float32(outputs)
    loss = criterion(outputs, labels)
    precision.backward(loss / update_freq if update_freq > 1 else loss)
    return loss, outputs


def train_loop(loop_config: dict[str, Any]) -> None:
    import ray.train
    from ray.train import Checkpoint, CheckpointUploadMode
    from ray.train.v2.api.context import LocalTrainContext

    from ppipe.data import iter_batches
    from ppipe.build import exported_model

    # Before any math thread exists: they inherit this thread's CPU policy (ppipe.train.scheduling).
    policy = foreground_training_thread()
    cfg = load_config(data=loop_config["config"])
    prepared = loop_config["prepared"]
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    # Ray Train's in-process mode (Ray.num_workers: 0): no run storage; the last reported checkpoint is the result.
    in_process, last_reported = isinstance(ctx, LocalTrainContext), None
    paddle.set_device("gpu" if cfg.Ray.use_gpu else "cpu")
    if not cfg.Ray.use_gpu and cfg.Global.cpu_kernels == "onednn":
        # This process exists to train: let malloc keep freed memory for the next step (ppipe/ops/host_memory.py).
        from ppipe.ops.host_memory import keep_freed_memory

        log.info("worker %d: %s", rank, keep_freed_memory())
    init_collective()
    paddle.seed(cfg.Global.seed + rank)

    cfg.Optimizer.lr, lr_note = scaled_schedule(cfg, world)
    if lr_note and rank == 0:
        log.warning(lr_note)
    train_cfg = cfg.DataLoader.Train
    train_ops = decode_first(train_cfg.dataset.transform_ops)
    batch_size = train_cfg.sampler.batch_size
    update_freq = cfg.Global.update_freq
    checkpoint = ray.train.get_checkpoint()
    with (checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext()) as checkpoint_dir:
        run = build_worker_run(cfg, prepared, rank=rank, world=world, checkpoint_dir=checkpoint_dir)
    model, optimizer, lr, ema, precision, steps = run.model, run.optimizer, run.lr, run.ema, run.precision, run.steps

    restarts = _record_attempt(loop_config["attempts_dir"], rank)
    _record_worker(loop_config.get("workers_dir"), rank, restarts, policy)
    state = run.state
    state["restarts"] = restarts
    state["batches_this_start"] = 0  # batches trained since this worker group started (restart tests read it)
    if lr_note:
        state["lr_scaling"] = lr_note
    state["precision"] = precision.precision
    if cfg.Global.use_dali and rank == 0:
        log.warning("Global.use_dali: DALI (NVIDIA's GPU image decoding) is not used: ppipe reads the prepared shards "
                    "with its own loader, running the same transform_ops")
    every = cfg.Global.checkpoint_every_steps

    def report(metrics: dict) -> None:
        nonlocal last_reported
        # report() is a barrier: every rank calls it equally often; only rank 0 carries the checkpoint. The
        # checkpoint's files are written here, before training goes on; Ray copies them to the run storage and
        # queues the report in its upload thread (ASYNC), then deletes the local copy. A synchronous report
        # also waits for the controller to take the previous report off the worker (a queue of one, polled
        # every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S): measured on the quickstart, 0.65-0.9 s of every 2 s epoch.
        # Ray flushes pending uploads when the training function returns.
        local = tempfile.mkdtemp(prefix="ppipe-checkpoint-") if rank == 0 else None
        if local is not None:
            save_checkpoint(local, _bare(model), optimizer, lr, state, ema, amp=precision)
        ray.train.report(metrics, checkpoint=Checkpoint.from_directory(local) if local else None,
                         checkpoint_upload_mode=CheckpointUploadMode.ASYNC, delete_local_checkpoint_after_upload=True)
        if in_process:  # nothing uploads or deletes there: keep the latest checkpoint, the run's result, only
            if last_reported:
                shutil.rmtree(last_reported, ignore_errors=True)
            last_reported = local

    # Each epoch's wall time, from the previous epoch's metrics: its steps, evaluation and the previous epoch's
    # checkpoint report (what the steady img/s leaves out).
    epoch_mark = time.perf_counter()
    for epoch in range(state["epochs_completed"], cfg.Global.epochs):
        model.train()
        start = state.get("batch_in_epoch", 0)
        seen, t_steady, loss_sum, n_loss, correct, counted, n_images = 0, None, 0.0, 0, 0, 0, 0
        for step, (images, labels) in enumerate(iter_batches(
                prepared, "train", train_ops, batch_size, rank=rank, world_size=world, epoch=epoch,
                shuffle=train_cfg.sampler.shuffle, seed=cfg.Global.seed, drop_last=train_cfg.sampler.drop_last,
                pad=True, num_workers=train_cfg.loader.num_workers,
                batch_transform_ops=train_cfg.dataset.batch_transform_ops, class_num=cfg.num_classes,
                start_batch=start), start=start):
            if step - start == WARMUP_STEPS:
                t_steady, seen = time.perf_counter(), 0
            _maybe_inject_failure(loop_config.get("fail_at"), epoch + 1, step, rank, world)
            loss, outputs = forward_backward(model, run.criterion, precision, paddle.to_tensor(images),
                                             paddle.to_tensor(labels), update_freq)
            if (step + 1) % update_freq == 0:
                precision.step(optimizer)
                optimizer.clear_grad()
                lr.step()
                if ema is not None:
                    ema.update(exported_model(_bare(model)))
                state["global_step"] += 1
                if every and state["global_step"] % every == 0 and step + 1 < steps:
                    state["batch_in_epoch"] = step + 1
                    report({"epoch": epoch + (step + 1) / steps, "global_step": state["global_step"],
                            "restarts": state["restarts"]})
            batch_correct, batch_counted = top1_counts(outputs, labels)
            correct, counted = correct + batch_correct, counted + batch_counted
            seen += len(labels)
            n_images += len(labels)
            loss_sum += float(loss)
            n_loss += 1
            state["batches_this_start"] += 1
        elapsed = time.perf_counter() - t_steady if t_steady is not None else 0.0
        img_per_s = seen / elapsed if elapsed > 0 else 0.0

        average_buffers(_bare(model))
        val = None
        if cfg.DataLoader.Eval is not None and cfg.Global.eval_during_train and \
                ((epoch + 1) % cfg.Global.eval_interval == 0 or epoch + 1 == cfg.Global.epochs):
            evaluated = exported_model(_bare(model))
            with (ema.applied(evaluated) if ema is not None else contextlib.nullcontext()):
                counts = score(for_evaluation(evaluated, precision), prepared, "val", eval_transform_ops(cfg),
                               cfg.DataLoader.Eval.sampler.batch_size, rank=rank, world_size=world,
                               loss_fn=run.eval_loss)
            keys = sorted(counts)
            val = summarize(dict(zip(keys, all_reduce_sum([counts[k] for k in keys]))))
        total_img_per_s, train_loss, correct, counted, n_images = all_reduce_sum(
            [img_per_s, loss_sum / max(1, n_loss), correct, counted, n_images])
        metrics = {"epoch": epoch + 1, "train_loss": train_loss / world, "lr": float(lr.get_lr()),
                   "train_img_per_s": total_img_per_s, "restarts": state["restarts"],
                   "global_step": state["global_step"], "batches_this_start": state["batches_this_start"],
                   "epoch_time_s": time.perf_counter() - epoch_mark, "train_images": int(n_images)}
        if counted:  # top-1 of the main head on the training batches (none with soft targets: Mixup/Cutmix)
            metrics["train_top1"] = correct / counted
        if val is not None:
            metrics.update({"top1": val["top1"], "top5": val["top5"], "val_loss": val["loss"]})
        state["epochs_completed"] = epoch + 1
        state["batch_in_epoch"] = 0
        state["history"].append(metrics)
        epoch_mark = time.perf_counter()
        report(metrics)


def _record_attempt(attempts_dir: str, rank: int) -> int:
    """Note this start of the worker group in the run's storage; returns how many starts came before it.

    Counting starts rather than "found a checkpoint at start" also counts a restart whose failure came
    before the first checkpoint. Every rank reads the same count (the barrier orders it after rank 0's
    write), so all ranks report the same number.
    """
    import uuid

    from ppipe.storage import filesystem, join, write_bytes_atomic
    from ppipe.train.backend import barrier

    fs, path = filesystem(attempts_dir)
    before = len(fs.ls(path, detail=False)) if fs.exists(path) else 0
    barrier()
    if rank == 0:
        write_bytes_atomic(join(attempts_dir, f"{time.time():.6f}-{uuid.uuid4().hex[:8]}"), b"")
    return before


def _record_worker(workers_dir: str | None, rank: int, start: int, policy: str) -> None:
    """Where each rank of this start runs (node, process, collective endpoint, scheduling niceness and the
    training thread's CPU policy, malloc setting, the controller's poll interval that Ray Train passed on):
    for operators and tests."""
    import json

    import ray

    from ppipe.ops.host_memory import current_setting
    from ppipe.storage import join, write_bytes_atomic

    if not workers_dir:
        return
    info = {"rank": rank, "start": start, "node_id": ray.get_runtime_context().get_node_id(), "pid": os.getpid(),
            "endpoint": os.environ.get("PADDLE_CURRENT_ENDPOINT"), "niceness": os.nice(0),
            "training_thread_policy": policy,
            "malloc": current_setting(),
            "controller_poll_interval_s": os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S")}
    write_bytes_atomic(join(workers_dir, f"start{start}-rank{rank}.json"), json.dumps(info).encode())


def _maybe_inject_failure(fail_at: dict | None, epoch: int, step: int, rank: int, world: int) -> None:
    """Fault injection for failure tests: the last rank dies like an OOM-killed process, once per run
    (a marker file in the run's folder remembers that it already did)."""
    if not fail_at or fail_at["epoch"] != epoch or fail_at["step"] != step or rank != world - 1:
        return
    marker = fail_at["marker"]
    if os.path.exists(marker):
        return
    with open(marker, "w") as f:
        f.write(f"killed rank {rank} at epoch {epoch} step {step}\n")
    # Ray Train registers a reported checkpoint when its controller next polls the workers (every 2 s);
    # a failure inside that window restarts from the checkpoint before. Waiting past it makes the test
    # exercise the resume-from-last-checkpoint path deterministically.
    time.sleep(fail_at.get("delay_s", 5.0))
    os._exit(1)
