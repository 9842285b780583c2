"""How a Tune trial hears from the Ray Train run it started, and tells it to stop: files in a local folder.

Ray Train puts its controller on the node of the process that calls `fit()` (the trial), so a folder on that
node is shared by both without another actor. The controller's `ForwardToTrial` callback writes each epoch's
report as `reports/<n>.json`; the trial writes `stop` when Tune stops it, and the callback then aborts the run
through the controller (which removes the run's placement group: a trial killed with its run still holding one
would starve every later trial).

Ray Train builds the callbacks named in `RAY_TRAIN_CALLBACKS` (its documented extension point) in the process
that calls `fit()`; the trial names this one there, and the folder in `PPIPE_TUNE_CHANNEL`.
This module imports Ray: import it lazily.
"""

from __future__ import annotations

import json
import os

from ray.train.v2._internal.execution.callback import ReportCallback, WorkerGroupCallback

CHANNEL_ENV = "PPIPE_TUNE_CHANNEL"
CALLBACKS_ENV = "RAY_TRAIN_CALLBACKS"
CALLBACK_PATH = "ppipe.tune.channel.ForwardToTrial"


def report_path(channel: str, index: int) -> str:
    return os.path.join(channel, "reports", f"{index:06d}.json")


def stop_path(channel: str) -> str:
    return os.path.join(channel, "stop")


def open_channel(channel: str) -> None:
    """A fresh channel for the next run of this trial process, named for Ray Train's callback builder."""
    os.makedirs(os.path.join(channel, "reports"), exist_ok=True)
    for name in os.listdir(os.path.join(channel, "reports")):
        os.remove(os.path.join(channel, "reports", name))
    if os.path.exists(stop_path(channel)):
        os.remove(stop_path(channel))
    os.environ[CHANNEL_ENV] = channel
    os.environ[CALLBACKS_ENV] = CALLBACK_PATH


def read_report(channel: str, index: int) -> dict | None:
    path = report_path(channel, index)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


class ForwardToTrial(WorkerGroupCallback, ReportCallback):
    """Runs in the Ray Train controller: rank 0's report (and its checkpoint's URL) -> the trial's channel."""

    def __init__(self):
        self._channel = os.environ[CHANNEL_ENV]
        self._sent = 0
        self._aborting = False

    def after_report(self, training_report, metrics):
        report = dict(metrics[0])
        if training_report.checkpoint is not None:
            from ppipe.train.trainer import checkpoint_uri  # a URL ppipe.storage reads (s3:// or a path)

            report["checkpoint_uri"] = checkpoint_uri(training_report.checkpoint)
        path = report_path(self._channel, self._sent)
        with open(path + ".tmp", "w") as f:
            json.dump(report, f, default=str)
        os.replace(path + ".tmp", path)  # the trial never reads half a report
        self._sent += 1

    def after_worker_group_poll_status(self, worker_group_status):
        if self._aborting or not os.path.exists(stop_path(self._channel)):
            return
        import ray

        self._aborting = True
        ray.get_runtime_context().current_actor.abort.remote()
