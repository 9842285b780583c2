"""One Tune trial = one ppipe training run (`ppipe.train.trainer.train`, Ray Train inside Tune).

The trial is a class Trainable: `step()` hands Tune the next epoch's report of the run that a background
thread drives, `cleanup()` stops that run when Tune stops the trial (ASHA), `save_checkpoint()` copies the weights
of the last reported epoch's Ray Train checkpoint into Tune's checkpoint with what they are (trial, epoch, config),
and `load_checkpoint()` starts the next run from them (PBT).

PBT's exploit: Tune restarts the losing trial with the winner's config, perturbed, and the winner's Tune
checkpoint. Its next run starts from the donor's weights and counts epochs on from the donor's epoch (`Global.epochs`
less those, warm-up less those); the optimizer's moments and the schedule's position are not carried, so the
schedule runs over the remaining epochs at the perturbed rates. Each trial's reports carry its record: the epochs
it reported (`history`, across its exploits) and the exploits it made (`exploits`: epoch, donor, donor's and new
config, the weights file and its sha256). The record is kept in the run storage (`<trials>/records/<trial id>.json`)
because a restarted trial is a new actor, possibly on another node, and because Tune's own per-trial result frame
loses the rows of a trial that PBT restarted.

Why not Ray Train's in-process mode (`Ray.num_workers: 0`) inside the trial: `ray.train.report` refuses to run in a
Tune session (Ray issue 49454), so the training loop runs on Ray Train workers that share the cluster with the
trials. This module imports Ray: import it lazily.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from typing import Any

from ray import tune

from ppipe.config import load_config
from ppipe.storage import filesystem, join, read_bytes, sha256_file, write_bytes_atomic
from ppipe.tune.channel import open_channel, read_report, stop_path
from ppipe.tune.space import override

log = logging.getLogger("ppipe.tune")

POINTER_FILE = "train_checkpoint.json"  # what the weights beside it are: trial, epoch, config, exploits
WEIGHTS_FILE = "model.pdparams"
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
        self._dir = os.path.join(trials_dir, self.trial_id)
        self._channel = os.path.join(self._dir, "channel")
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._received = 0
        self._pretrained: str | None = None  # PBT: the donor's weights, for the next run
        self._epoch_offset = 0
        self._record_url = join(trials_storage, "records", f"{self.trial_id}.json")
        record = _read_record(self._record_url)
        self._history: list[dict[str, Any]] = record["history"]
        self._exploits: list[dict[str, Any]] = record["exploits"]
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
            done = self._epoch_offset
            cfg = load_config(data=_data(cfg), overrides=[
                override("Global.pretrained_model", self._pretrained),
                override("Global.epochs", max(1, cfg.Global.epochs - done)),
                override("Optimizer.lr.warmup_epoch", max(0, cfg.Optimizer.lr.warmup_epoch - done))])
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
                self._history.append(_scalars(report))
                self._save_record()
                report["history"], report["exploits"] = list(self._history), list(self._exploits)
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
        pointer = {"trial_id": self.trial_id, "epoch": self._last.get("epoch", 0), "config": dict(self.config),
                   # what these weights scored when reported: kept with the exploit, since Tune's per-trial
                   # result frame can miss the rows of a trial paused and restored by synchronous PBT
                   "metrics": _scalars(self._last)}
        source = self._last.get("checkpoint_uri")
        if source:
            # A copy, not a path: the run keeps training meanwhile and deletes its older checkpoints.
            weights = os.path.join(checkpoint_dir, WEIGHTS_FILE)
            with open(weights, "wb") as f:
                f.write(read_bytes(join(source, WEIGHTS_FILE)))
            pointer["weights_sha256"] = sha256_file(weights)
        with open(os.path.join(checkpoint_dir, POINTER_FILE), "w") as f:
            json.dump(pointer, f)
        return None

    def load_checkpoint(self, checkpoint_dir: str) -> None:
        with open(os.path.join(checkpoint_dir, POINTER_FILE)) as f:
            pointer = json.load(f)
        if not pointer.get("weights_sha256"):
            return  # saved before its first epoch: nothing to continue from
        self.cleanup()
        self._thread = None
        epoch, donor = int(pointer["epoch"]), pointer["trial_id"]
        # Tune may remove the restored folder once this returns; the run reads the weights later.
        self._pretrained = os.path.join(self._dir, "starts", f"epoch{epoch}-from-{donor}.pdparams")
        os.makedirs(os.path.dirname(self._pretrained), exist_ok=True)
        shutil.copyfile(os.path.join(checkpoint_dir, WEIGHTS_FILE), self._pretrained)
        self._epoch_offset = epoch
        if donor != self.trial_id:
            self._exploits.append({"trial_id": self.trial_id, "epoch": epoch, "donor": donor,
                                   "donor_config": pointer["config"], "donor_metrics": pointer.get("metrics", {}),
                                   "config": dict(self.config),
                                   "weights": self._pretrained, "weights_sha256": pointer["weights_sha256"]})
            self._save_record()
            log.info("trial %s continues from trial %s at epoch %d with %s", self.trial_id, donor, epoch, self.config)

    def _save_record(self) -> None:
        write_bytes_atomic(self._record_url,
                           json.dumps({"history": self._history, "exploits": self._exploits}).encode())


def _read_record(url: str) -> dict[str, list]:
    """What the trial reported and the exploits it made before this actor started (nothing for a new trial)."""
    fs, path = filesystem(url)
    return json.loads(read_bytes(url)) if fs.exists(path) else {"history": [], "exploits": []}


def _scalars(report: dict[str, Any]) -> dict[str, float | int]:
    """The report's numbers (epoch and metrics), without its flags, paths and lists."""
    return {k: v for k, v in report.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _data(cfg) -> dict:
    from ppipe.config import config_to_data

    return config_to_data(cfg)
