"""The training checkpoint: what a run needs to continue exactly where it stopped.

A checkpoint is a directory: `model.pdparams` (the bare model's state dict under PaddleClas's key names,
so it is also a PaddleClas pretrained file; float32 under AMP O2 too), `optimizer.pdopt` (optimizer state,
AMP O2's float32 master weights included, LR-schedule state, and under AMP the loss scaler's state) and
`state.json` (epochs completed, step, metric history, restarts); a distillation run also saves its
infer model (the student) alone as `infer_model.pdparams`, and an EMA run its averaged weights as
`ema.pdparams` (also the `infer_model.pdparams` that is published). `state.json`'s `batch_in_epoch` is the
data position of a mid-epoch checkpoint. Ray Train copies the directory into the
run's storage only after the worker has finished writing it, and registers it after the copy, so a
checkpoint is either all there or not there.
"""

from __future__ import annotations

import json
import os

import paddle

MODEL_FILE = "model.pdparams"
INFER_MODEL_FILE = "infer_model.pdparams"  # a DistillationModel's student alone, ready to export
OPTIMIZER_FILE = "optimizer.pdopt"
STATE_FILE = "state.json"


EMA_FILE = "ema.pdparams"


def save_checkpoint(directory: str, model, optimizer, lr_scheduler, state: dict, ema=None, amp=None) -> None:
    """Write the checkpoint; `amp`: the run's `MixedPrecision`, whose loss-scaler state an exact resume needs."""
    os.makedirs(directory, exist_ok=True)
    paddle.save(model.state_dict(), os.path.join(directory, MODEL_FILE))
    infer = getattr(model, "infer_model", None)
    if ema is not None:
        # The published weights of an EMA run are the averaged ones.
        paddle.save(ema.state_dict(), os.path.join(directory, EMA_FILE))
        paddle.save(ema.state_dict(), os.path.join(directory, INFER_MODEL_FILE))
    elif infer is not None:
        paddle.save(infer.state_dict(), os.path.join(directory, INFER_MODEL_FILE))
    training = {"optimizer": optimizer.state_dict(), "lr": lr_scheduler.state_dict()}
    if amp is not None:
        training["amp"] = amp.state_dict()
    paddle.save(training, os.path.join(directory, OPTIMIZER_FILE))
    with open(os.path.join(directory, STATE_FILE), "w") as f:
        json.dump(state, f, indent=1)


def load_state(directory: str) -> dict:
    with open(os.path.join(directory, STATE_FILE)) as f:
        return json.load(f)


def load_checkpoint(directory: str, model, optimizer, lr_scheduler, ema=None, amp=None) -> dict:
    """Restore model, optimizer, schedule (and EMA, and `amp`'s loss scaler) in place; returns the saved state.

    Under AMP O2 call it before `MixedPrecision.decorate`: the saved weights are float32.
    """
    model.set_state_dict(paddle.load(os.path.join(directory, MODEL_FILE)))
    if ema is not None and os.path.exists(os.path.join(directory, EMA_FILE)):
        ema.set_state_dict(paddle.load(os.path.join(directory, EMA_FILE)))
    opt = paddle.load(os.path.join(directory, OPTIMIZER_FILE))
    optimizer.set_state_dict(opt["optimizer"])
    lr_scheduler.set_state_dict(opt["lr"])
    if amp is not None:
        amp.set_state_dict(opt.get("amp") or {})
    return load_state(directory)
