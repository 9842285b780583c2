"""The training checkpoint: what a run needs to continue exactly where it stopped.

A checkpoint is a directory (file names: `ppipe.train.run_dir.CheckpointDir`): the bare model's state dict
under PaddleClas's key names, so it is also a PaddleClas pretrained file (float32 under AMP O2 too); the
optimizer state (AMP O2's float32 master weights included), LR-schedule state, and under AMP the loss scaler's
state; and the `TrainState` (epochs completed, step, metric history, restarts). A distillation run also saves
its infer model (the student) alone, and an EMA run its averaged weights (also the infer model that is
published). Ray Train copies the directory into the run's storage only after the worker has finished writing
it, and registers it after the copy, so a checkpoint is either all there or not there.
"""

from __future__ import annotations

import json
import os

import paddle

from ppipe.train.run_dir import CheckpointDir
from ppipe.train.state import TrainState


def save_checkpoint(directory: str, model, optimizer, lr_scheduler, state: TrainState, ema=None, amp=None) -> None:
    """Write the checkpoint; `amp`: the run's `MixedPrecision`, whose loss-scaler state an exact resume needs."""
    files = CheckpointDir(directory)
    os.makedirs(directory, exist_ok=True)
    paddle.save(model.state_dict(), files.model)
    infer = getattr(model, "infer_model", None)
    if ema is not None:
        # The published weights of an EMA run are the averaged ones.
        paddle.save(ema.state_dict(), files.ema)
        paddle.save(ema.state_dict(), files.infer_model)
    elif infer is not None:
        paddle.save(infer.state_dict(), files.infer_model)
    training = {"optimizer": optimizer.state_dict(), "lr": lr_scheduler.state_dict()}
    if amp is not None:
        training["amp"] = amp.state_dict()
    paddle.save(training, files.optimizer)
    with open(files.state, "w") as f:
        json.dump(state.to_dict(), f, indent=1)


def load_state(directory: str) -> TrainState:
    path = CheckpointDir(directory).state
    with open(path) as f:
        return TrainState.from_dict(json.load(f), where=path)


def load_checkpoint(directory: str, model, optimizer, lr_scheduler, ema=None, amp=None) -> TrainState:
    """Restore model, optimizer, schedule (and EMA, and `amp`'s loss scaler) in place; returns the saved state.

    Under AMP O2 call it before `MixedPrecision.decorate`: the saved weights are float32.
    """
    files = CheckpointDir(directory)
    model.set_state_dict(paddle.load(files.model))
    if ema is not None and os.path.exists(files.ema):
        ema.set_state_dict(paddle.load(files.ema))
    opt = paddle.load(files.optimizer)
    optimizer.set_state_dict(opt["optimizer"])
    lr_scheduler.set_state_dict(opt["lr"])
    if amp is not None:
        amp.set_state_dict(opt.get("amp") or {})
    return load_state(directory)
