"""One Tune trial = one ppipe training run (`ppipe.train.trainer.train`, Ray Train inside Tune).

The trial is a class Trainable: `step()` hands Tune the next epoch's report of the run that a background
thread drives, `cleanup()` stops that run when Tune stops the trial (ASHA), `save_checkpoint()` writes a
pointer to the run's latest Ray Train checkpoint (PBT), `load_checkpoint()` starts the next run from the weights
it points to. Why not Ray Train's in-process mode (`Ray.num_workers: 0`) inside the trial: `ray.train.report`
refuses to run in a Tune session (Ray issue 49454), so the training loop runs on Ray Train workers that share the
cluster with the trials. This module imports Ray: import it lazily.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

from ray import tune

from ppipe.config import load_config
from ppipe.storage import filesystem, join
from ppipe.tune.channel import open_channel, read_report, stop_path
from ppipe.tune.space import override

log = logging.getLogger("ppipe.tune")

POINTER_FILE = "train_checkpoint.json"
_STOP_WAIT_S = 300  # how long cleanup() waits for an aborted run to give its workers back


def trial_overrides(params: dict[str, Any], *, output_dir: str, storage: str) -> list[str]:
    """The sampled values, then the keys the tuner owns: each trial's run folder and run storage."""
    return [override(k, v) for k, v in params.items()] + [
        override("Global.output_dir", output_dir), override("Ray.storage_path", storage)]


class TrainingTrial(tune.Trainable):
    def setup(self, config: dict[str, Any], base: dict | None = None, prepared: str | None = None,
              trials_dir: str | None = None, trials_storage: str | None = None) -> None:
        self._cfg = load_config(data=base, overrides=trial_overrides(
            config, output_dir=os.path.join(trials_dir, self.trial_id),
            storage=join(trials_storage, self.trial_id)))
        self._prepared = prepared
        self._channel = os.path.join(trials_dir, self.trial_id, "channel")
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._received = 0
        self._pretrained: str | None = None  # PBT: the donor's weights, for the next run
        self._epoch_offset = 0
        self._last: dict[str, Any] = {}

    def _run(self, cfg, resume: bool) -> None:
        from ppipe.train.trainer import train

        try:
            train(cfg, data=self._prepared, resume=resume)
        except BaseException as e:  # noqa: BLE001 - handed to step(), which raises it in Tune's thread
            self._error = e

    def _has_earlier_run(self) -> bool:
        fs, root = filesystem(self._cfg.Ray.storage_path)
        return fs.exists(root) and bool(fs.ls(root, detail=False))

    def _start(self) -> None:
        cfg, resume = self._cfg, False
        if self._pretrained:
            cfg = load_config(data=_data(cfg), overrides=[
                override("Global.pretrained_model", self._pretrained),
                override("Global.epochs", max(1, cfg.Global.epochs - self._epoch_offset))])
        else:
            resume = self._has_earlier_run()  # a restored experiment: continue this trial's run
        open_channel(self._channel)
        self._received, self._error = 0, None
        self._thread = threading.Thread(target=self._run, args=(cfg, resume), daemon=True,
                                        name=f"ppipe-trial-{self.trial_id}")
        self._thread.start()

    def step(self) -> dict[str, Any]:
        if self._thread is None:
            self._start()
        while True:
            report = read_report(self._channel, self._received)
            if report is not None:
                self._received += 1
                if "train_loss" not in report:  # a mid-epoch checkpoint report: not an epoch result
                    continue
                report["epoch"] += self._epoch_offset
                report["done"] = report["epoch"] >= self._cfg.Global.epochs
                self._last = report
                return report
            if not self._thread.is_alive() and read_report(self._channel, self._received) is None:
                if self._error is not None:
                    raise self._error
                return {**self._last, "done": True}
            time.sleep(0.2)

    def cleanup(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            open(stop_path(self._channel), "w").close()
            self._thread.join(_STOP_WAIT_S)

    def save_checkpoint(self, checkpoint_dir: str) -> dict | None:
        with open(os.path.join(checkpoint_dir, POINTER_FILE), "w") as f:
            json.dump({"checkpoint": self._last.get("checkpoint_path"), "epoch": self._last.get("epoch", 0)}, f)
        return None

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        with open(os.path.join(checkpoint_dir, POINTER_FILE)) as f:
            pointer = json.load(f)
        if not pointer.get("checkpoint"):
            return
        from ppipe.train.run_dir import CheckpointDir

        self.cleanup()
        self._thread = None
        self._pretrained = CheckpointDir(pointer["checkpoint"]).model
        self._epoch_offset = int(pointer["epoch"])


def _data(cfg) -> dict:
    from ppipe.config import config_to_data

    return config_to_data(cfg)
