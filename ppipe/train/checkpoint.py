"""The training checkpoint: what a run needs to continue exactly where it stopped.

A checkpoint is a directory (file names: `ppipe.train.run_dir.CheckpointDir`): the bare model's state dict
under PaddleClas's key names, so it is also a PaddleClas pretrained file (float32 under AMP O2 too); the
optimizer state (AMP O2's float32 master weights included), LR-schedule state, and under AMP the loss scaler's
state; and the `TrainState` (epochs completed, step, metric history, restarts). A distillation run also saves
its infer model (the student) alone, and an EMA run its averaged weights (also the infer model that is
published). Ray Train copies the directory into the run's storage only after the worker has finished writing
it, and registers it after the copy, so a checkpoint is either all there or not there.

Every file is written with `ppipe.weights_io.save_state` (safetensors: nothing in it runs on load, and any
safetensors reader, `paddle.load(path, safetensors=True)` too, reads the model files) and read with
`weights_io.load_state`, which also reads Paddle pickles (checkpoints written before the switch) but refuses one
that carries anything but weights. The run's *published* `model.pdparams` (`write_published_weights`) is a
Paddle pickle, written by `paddle.save` from the state loaded safely, so PaddleClas users' `paddle.load` reads it.
"""

from __future__ import annotations

import json
import os

from ppipe import weights_io
from ppipe.train.run_dir import CheckpointDir
from ppipe.train.state import TrainState


def save_checkpoint(directory: str, model, optimizer, lr_scheduler, state: TrainState, ema=None, amp=None) -> None:
    """Write the checkpoint; `amp`: the run's `MixedPrecision`, whose loss-scaler state an exact resume needs."""
    files = CheckpointDir(directory)
    os.makedirs(directory, exist_ok=True)
    weights_io.save_state(model.state_dict(), files.model)
    infer = getattr(model, "infer_model", None)
    if ema is not None:
        # The published weights of an EMA run are the averaged ones.
        weights_io.save_state(ema.state_dict(), files.ema)
        weights_io.save_state(ema.state_dict(), files.infer_model)
    elif infer is not None:
        weights_io.save_state(infer.state_dict(), files.infer_model)
    training = {"optimizer": optimizer.state_dict(), "lr": lr_scheduler.state_dict()}
    if amp is not None:
        training["amp"] = amp.state_dict()
    weights_io.save_state(training, files.optimizer)
    with open(files.state, "w") as f:
        json.dump(state.to_dict(), f, indent=1)


def write_published_weights(directory: str, dest: str) -> None:
    """The checkpoint's published weights (`CheckpointDir.published_weights`) as a Paddle pickle at `dest`."""
    write_paddle_pickle(CheckpointDir(directory).published_weights(), dest)


def write_paddle_pickle(weights: str, dest: str) -> None:
    """The weights file `weights` (safetensors or a pickle, loaded safely) as a Paddle pickle at `dest`,
    atomically: the format PaddleClas's `paddle.load` and `Global.pretrained_model` expect."""
    import paddle

    state = weights_io.load_state(weights, return_numpy=True)
    tmp = os.path.join(os.path.dirname(os.path.abspath(dest)), f".{os.path.basename(dest)}.tmp-{os.getpid()}")
    paddle.save(state, tmp)
    os.replace(tmp, dest)


def load_state(directory: str) -> TrainState:
    path = CheckpointDir(directory).state
    with open(path) as f:
        return TrainState.from_dict(json.load(f), where=path)


def load_checkpoint(directory: str, model, optimizer, lr_scheduler, ema=None, amp=None) -> TrainState:
    """Restore model, optimizer, schedule (and EMA, and `amp`'s loss scaler) in place; returns the saved state.

    Under AMP O2 call it before `MixedPrecision.decorate`: the saved weights are float32.
    """
    files = CheckpointDir(directory)
    model.set_state_dict(weights_io.load_state(files.model))
    if ema is not None and os.path.exists(files.ema):
        ema.set_state_dict(weights_io.load_state(files.ema))
    opt = weights_io.load_state(files.optimizer)  # Tensors: the optimizer keeps master_weights as given
    optimizer.set_state_dict(opt["optimizer"])
    lr_scheduler.set_state_dict(opt["lr"])
    if amp is not None:
        amp.set_state_dict(opt.get("amp") or {})
    return load_state(directory)
