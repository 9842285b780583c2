"""The training loop every Ray worker runs, as named steps: worker setup (`setup_worker`, `build_worker_run`),
one epoch (`train_one_epoch`, batch by batch through `train_step`), validation (`validate`) and reporting
(`ppipe.train.reporting`), over a typed `TrainState`.

It is a plain function of a `WorkerJob` (a frozen, fully resolved config and where the run's files go), so the
same code runs in-process (`num_workers=0`, unit tests) and on any number of Ray workers and nodes. Collective
state comes from `PaddleBackend`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import paddle

from ppipe import console
from ppipe.config import Config
from ppipe.evaluate import decode_first, eval_transform_ops, score, summarize
from ppipe.losses import CombinedLoss
from ppipe.losses.trainable import trained_layer
from ppipe.optim import build_lr, build_optimizer, scale_lr
from ppipe.train.amp import MixedPrecision, for_evaluation, on_gpu, sync_batchnorm, to_float32
from ppipe.train.backend import all_reduce_sum, average_buffers, init_collective
from ppipe.train.checkpoint import load_checkpoint
from ppipe.train.ema import ModelEMA
from ppipe.train.reporting import CheckpointReporter, EpochStats, epoch_metrics
from ppipe.train.scheduling import foreground_training_thread
from ppipe.train.state import TrainState

log = logging.getLogger("ppipe.train")


def scaled_schedule(cfg: Config, world: int):
    """The recipe's `Optimizer.lr` for `world` workers, and a sentence saying exactly what changed (None: nothing).

    With `Global.recipe_workers` set and different from `world`, the linear scaling rule (Goyal et al., 2017):
    every rate the schedule uses (`optim.lr_fields`: learning_rate or Piecewise's values, eta_min, end_lr,
    warmup_start_lr) is multiplied by world / recipe_workers, so the whole schedule keeps its shape. The config
    itself is never changed: the schedule is built from the returned copy.
    """
    lr, ref = cfg.Optimizer.lr, cfg.Global.recipe_workers
    if not ref or ref == world:
        return lr, None
    scaled, changes = scale_lr(lr, world / ref)
    if not changes:
        return lr, None
    return scaled, (f"learning rate scaled linearly for {world} workers (recipe tuned for {ref} workers; global "
                    f"batch {world * cfg.DataLoader.Train.sampler.batch_size}): {lr.name} {', '.join(changes)}")


def scaled_learning_rate(cfg: Config, world: int) -> tuple[float | list[float], str | None]:
    """The rate the recipe's schedule runs at on `world` workers (`learning_rate`; a Piecewise schedule: its
    `values`) and the note of `scaled_schedule`, which scales the rest of the schedule with it."""
    lr, note = scaled_schedule(cfg, world)
    return (lr.values if lr.name == "Piecewise" else lr.learning_rate), note


@dataclass(frozen=True)
class WorkerJob:
    """What the driver hands every worker: the resolved config (absolute paths, GPU placement decided) and where
    the run's data and records are."""

    config: Config
    prepared: str
    attempts_dir: str
    workers_dir: str


@dataclass(frozen=True)
class Worker:
    """This worker's place in the run."""

    job: WorkerJob
    rank: int
    world: int
    in_process: bool  # Ray Train's in-process mode (Ray.num_workers: 0): no run storage

    @property
    def cfg(self) -> Config:
        return self.job.config


@dataclass
class WorkerRun:
    """What one worker trains with: built from the recipe and, on a restart, restored from the checkpoint."""

    model: Any  # the training model (with its loss's layers, `ppipe.losses.trainable`); DataParallel around it
    optimizer: Any
    lr: Any
    ema: ModelEMA | None
    precision: MixedPrecision
    criterion: CombinedLoss
    eval_loss: CombinedLoss
    steps: int  # batches per epoch on this rank
    state: TrainState

    def bare_model(self):
        return self.model._layers if isinstance(self.model, paddle.DataParallel) else self.model


def build_worker_run(cfg: Config, prepared: str, *, rank: int, world: int,
                     checkpoint_dir: str | None = None) -> WorkerRun:
    """Model, optimizer, schedule (scaled for `world` workers), EMA and precision of one worker, restored from
    `checkpoint_dir` when given.

    The order matters: SyncBatchNorm before the optimizer collects parameters; the checkpoint (float32) before AMP
    O2 casts the weights to float16; DataParallel last, around the decorated model.
    """
    from ppipe.build import build_model, exported_model
    from ppipe.data import num_batches

    gpu = on_gpu()
    precision = MixedPrecision(cfg.AMP, gpu=gpu)  # float32, with a warning, where AMP has no GPU
    train_cfg = cfg.DataLoader.Train
    model = build_model(cfg, pretrained=cfg.Global.pretrained_model)
    model = sync_batchnorm(model, cfg.Arch.use_sync_bn, gpu=gpu, world=world)
    criterion = CombinedLoss(cfg.Loss.Train, "Loss.Train")
    # What the optimizer, the checkpoint and DataParallel see: the model, with the loss's layers where it has any
    trained = trained_layer(model, criterion)
    steps = num_batches(prepared, "train", train_cfg.sampler.batch_size, rank=rank, world_size=world,
                        drop_last=train_cfg.sampler.drop_last)
    schedule, lr_note = scaled_schedule(cfg, world)
    if lr_note and rank == 0:
        log.warning(lr_note)
    lr = build_lr(schedule, cfg.Global.epochs, max(1, steps // cfg.Global.update_freq))
    optimizer = build_optimizer(cfg.Optimizer, trained, lr)
    ema = ModelEMA(exported_model(model), cfg.EMA.decay) if cfg.EMA is not None else None
    state = TrainState()
    if checkpoint_dir is not None:
        state = load_checkpoint(checkpoint_dir, trained, optimizer, lr, ema, amp=precision)
    state.lr_scaling, state.precision = lr_note, precision.precision
    # O2 casts the model alone, in place: the loss's layers read float32 outputs (PaddleClas decorates its model alone)
    _, optimizer = precision.decorate(model, optimizer)
    if world > 1:
        trained = paddle.DataParallel(trained)
    return WorkerRun(model=trained, optimizer=optimizer, lr=lr, ema=ema, precision=precision, criterion=criterion,
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


def train_step(run: WorkerRun, step: int, images, labels, update_freq: int):
    """Batch `step` of the epoch: forward and backward, and every `update_freq` batches an optimizer step (with
    the schedule and EMA). Returns (loss, outputs, whether the optimizer stepped)."""
    from ppipe.build import exported_model

    loss, outputs = forward_backward(run.model, run.criterion, run.precision, paddle.to_tensor(images),
                                     paddle.to_tensor(labels), update_freq)
    stepped = (step + 1) % update_freq == 0
    if stepped:
        run.precision.step(run.optimizer)
        run.optimizer.clear_grad()
        run.lr.step()
        if run.ema is not None:
            run.ema.update(exported_model(run.bare_model()))
        run.state.global_step += 1
    run.state.batches_this_start += 1
    return loss, outputs, stepped


def train_one_epoch(worker: Worker, run: WorkerRun, epoch: int, report: CheckpointReporter) -> EpochStats:
    """Train `epoch` (0-based) from the state's data position; with `Global.checkpoint_every_steps` also report a
    mid-epoch checkpoint that records the position."""
    from ppipe.data import iter_batches

    cfg, state = worker.cfg, run.state
    train_cfg = cfg.DataLoader.Train
    every = cfg.Global.checkpoint_every_steps
    start = state.batch_in_epoch
    stats = EpochStats()
    progress = console.EpochProgress(epoch, cfg.Global.epochs, run.steps - start, show=worker.rank == 0)
    run.model.train()
    batches = iter_batches(
        worker.job.prepared, "train", decode_first(train_cfg.dataset.transform_ops), train_cfg.sampler.batch_size,
        rank=worker.rank, world_size=worker.world, epoch=epoch, shuffle=train_cfg.sampler.shuffle,
        seed=cfg.Global.seed, drop_last=train_cfg.sampler.drop_last, pad=True, num_workers=train_cfg.loader.num_workers,
        batch_transform_ops=train_cfg.dataset.batch_transform_ops, class_num=cfg.num_classes, start_batch=start)
    for step, (images, labels) in enumerate(batches, start=start):
        stats.begin_batch(step - start)
        loss, outputs, stepped = train_step(run, step, images, labels, cfg.Global.update_freq)
        if stepped and every and state.global_step % every == 0 and step + 1 < run.steps:
            state.batch_in_epoch = step + 1
            report({"epoch": epoch + (step + 1) / run.steps, "global_step": state.global_step,
                    "restarts": state.restarts})
        stats.add(loss, outputs, labels)
        progress.update()
    progress.close()
    return stats


def validation_due(cfg: Config, epoch: int) -> bool:
    return (cfg.DataLoader.Eval is not None and cfg.Global.eval_during_train
            and ((epoch + 1) % cfg.Global.eval_interval == 0 or epoch + 1 == cfg.Global.epochs))


def validate(worker: Worker, run: WorkerRun) -> dict[str, Any]:
    """Top-1/top-5 and loss on the val split (each rank scores its part; the counts are summed), with the EMA
    weights where the run keeps them."""
    from ppipe.build import exported_model

    cfg = worker.cfg
    evaluated = exported_model(run.bare_model())
    with (run.ema.applied(evaluated) if run.ema is not None else contextlib.nullcontext()):
        counts = score(for_evaluation(evaluated, run.precision), worker.job.prepared, "val", eval_transform_ops(cfg),
                       cfg.DataLoader.Eval.sampler.batch_size, rank=worker.rank, world_size=worker.world,
                       loss_fn=run.eval_loss)
    keys = sorted(counts)
    return summarize(dict(zip(keys, all_reduce_sum([counts[k] for k in keys]))))


def quiet_worker_logs() -> None:
    """In a Ray worker, unless the run is verbose: ppipe's warnings only (every worker would repeat its INFO
    lines; the driver says what the run does), and Paddle's routine warnings off. Rank 0's epoch lines are
    printed, not logged (`ppipe.console`)."""
    console.quiet_warnings()
    if not console.verbose():
        logging.getLogger("ppipe").setLevel(logging.WARNING)


def setup_worker(job: WorkerJob) -> Worker:
    """This process's device, allocator, collective group and seed."""
    import ray.train
    from ray.train.v2.api.context import LocalTrainContext

    cfg = job.config
    ctx = ray.train.get_context()
    worker = Worker(job=job, rank=ctx.get_world_rank(), world=ctx.get_world_size(),
                    in_process=isinstance(ctx, LocalTrainContext))
    if not worker.in_process:
        quiet_worker_logs()
    paddle.set_device("gpu" if cfg.Ray.use_gpu else "cpu")
    if not cfg.Ray.use_gpu and cfg.Global.cpu_kernels == "onednn":
        # This process exists to train: let malloc keep freed memory for the next step (ppipe/ops/host_memory.py).
        from ppipe.ops.host_memory import keep_freed_memory

        log.debug("worker %d: %s", worker.rank, keep_freed_memory())
    init_collective()
    paddle.seed(cfg.Global.seed + worker.rank)
    if cfg.Global.use_dali and worker.rank == 0:
        log.warning("Global.use_dali: DALI (NVIDIA's GPU image decoding) is not used: ppipe reads the prepared shards "
                    "with its own loader, running the same transform_ops")
    return worker


def start_run(worker: Worker, policy: str) -> WorkerRun:
    """The worker's model and state, from the run's latest checkpoint when there is one; this start recorded."""
    import ray.train

    from ppipe.train.starts import record_start, record_worker

    checkpoint = ray.train.get_checkpoint()
    with (checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext()) as checkpoint_dir:
        run = build_worker_run(worker.cfg, worker.job.prepared, rank=worker.rank, world=worker.world,
                               checkpoint_dir=checkpoint_dir)
    restarts = record_start(worker.job.attempts_dir, worker.rank)
    record_worker(worker.job.workers_dir, worker.rank, restarts, policy)
    run.state.start_again(restarts)
    return run


def train_loop(loop_config: dict[str, WorkerJob]) -> None:
    """The Ray Train worker function: `loop_config["job"]` is the run's `WorkerJob`."""
    # Before any math thread exists: they inherit this thread's CPU policy (ppipe.train.scheduling).
    policy = foreground_training_thread()
    worker = setup_worker(loop_config["job"])
    run = start_run(worker, policy)
    state, cfg = run.state, worker.cfg
    report = CheckpointReporter(run, rank=worker.rank, in_process=worker.in_process)
    # Each epoch's wall time, from the previous epoch's metrics: its steps, evaluation and the previous epoch's
    # checkpoint report (what the steady img/s leaves out).
    epoch_mark = time.perf_counter()
    for epoch in range(state.epochs_completed, cfg.Global.epochs):
        stats = train_one_epoch(worker, run, epoch, report)
        average_buffers(run.bare_model())
        val = validate(worker, run) if validation_due(cfg, epoch) else None
        metrics = epoch_metrics(stats, val, epoch=epoch, world=worker.world, lr=float(run.lr.get_lr()), state=state,
                                epoch_time_s=time.perf_counter() - epoch_mark)
        state.epochs_completed, state.batch_in_epoch = epoch + 1, 0
        state.history.append(metrics)
        epoch_mark = time.perf_counter()
        report(metrics)
        if worker.rank == 0:  # rank 0 reports every epoch with a checkpoint
            console.print_line(console.epoch_line(metrics, cfg.Global.epochs, checkpoint=True))
