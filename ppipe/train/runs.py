"""The training runs in a run storage (`Ray.storage_path`): which exist, when each last started, and the checkpoint
each would continue from. `ppipe train --resume` picks its run here.

A run's name is `<Ray.run_name>-<UTC time it was created>`. Each `ppipe train` call that starts the run's workers
leaves `attempts/<UTC time of the call>/` in the run's folder (`ppipe.train.starts`), so the newest run is the one
started last, an older run resumed since included; a run whose workers never started counts from its name's time.
Which checkpoints are complete is Ray Train's record (`RunStorage.checkpoint_snapshot`): a checkpoint folder that
a stopped run left half-copied is not listed there, and Ray Train resumes from the one that is.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

from ppipe.errors import ConfigError
from ppipe.storage import exists, filesystem, join, read_bytes
from ppipe.train.run_dir import RunStorage

TIME_FORMAT = "%Y%m%d-%H%M%S-%f"  # run names' suffix and `attempts/` folder names: UTC, sorts as it happened
_STAMP = re.compile(r"(\d{8}-\d{6}-\d{6})$")
_UNKNOWN = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
_LISTED = 10  # runs named in a "no such run" error


def utc_stamp() -> str:
    """Now, in `TIME_FORMAT`."""
    return dt.datetime.now(dt.timezone.utc).strftime(TIME_FORMAT)


def _parse_stamp(text: str) -> dt.datetime | None:
    match = _STAMP.search(text)
    if not match:
        return None
    try:
        return dt.datetime.strptime(match.group(1), TIME_FORMAT).replace(tzinfo=dt.timezone.utc)
    except ValueError:
        return None


def fresh_run_name(base: str) -> str:
    return f"{base}-{utc_stamp()}"


def is_run_of(name: str, base: str) -> bool:
    """Whether `name` is a run created from a recipe whose `Ray.run_name` is `base` (not one of a longer base that
    merely starts with it: `quickstart-big-...` is not a `quickstart` run)."""
    return name.startswith(base + "-") and _parse_stamp(name) is not None and len(name) == len(base) + 23


@dataclass(frozen=True)
class StoredRun:
    name: str
    last_start: dt.datetime  # UTC; the earliest datetime when neither the records nor the name say


def _last_start(fs, run: RunStorage) -> dt.datetime:
    _, attempts = filesystem(run.all_attempts)
    calls = fs.ls(attempts, detail=False) if fs.exists(attempts) else []
    times = [t for t in (_parse_stamp(c.rstrip("/").rsplit("/", 1)[-1]) for c in calls) if t]
    return max(times, default=None) or _parse_stamp(run.name) or _UNKNOWN


def stored_runs(storage: str) -> list[StoredRun]:
    """Every run folder in `storage`, newest start first."""
    fs, root = filesystem(storage)
    if not fs.exists(root):
        return []
    names = [e["name"].rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(root, detail=True) if e["type"] == "directory"]
    runs = [StoredRun(n, _last_start(fs, RunStorage(storage, n))) for n in names if not n.startswith(".")]
    return sorted(runs, key=lambda r: (r.last_start, r.name), reverse=True)


def run_to_resume(storage: str, base: str, resume: str | bool) -> str:
    """The run `--resume` continues: the run named `resume`, or with `True` the newest run of the recipe whose
    `Ray.run_name` is `base`. A ConfigError naming the runs there when there is no such run."""
    runs = stored_runs(storage)
    if resume is True:
        mine = [r.name for r in runs if is_run_of(r.name, base)]
        if not mine:
            raise ConfigError(f"--resume: no earlier run of {base!r} under {storage}; start one without --resume")
        return mine[0]
    if any(r.name == resume for r in runs):
        return resume
    if not runs:
        raise ConfigError(f"--resume {resume}: no such run: {storage} holds no runs yet")
    listed = ", ".join(r.name for r in runs[:_LISTED]) + (f" and {len(runs) - _LISTED} more" if len(runs) > _LISTED
                                                          else "")
    raise ConfigError(f"--resume {resume}: no such run under {storage}; the runs there, newest first: {listed}")


@dataclass(frozen=True)
class StoredCheckpoint:
    path: str  # a local path or URL
    epoch: int | None  # the epoch the run had completed, as its report said


def latest_checkpoint(storage: str, name: str) -> StoredCheckpoint | None:
    """The complete checkpoint a resume of the run continues from (Ray Train's latest registered one), or None."""
    run = RunStorage(storage, name)
    if not exists(run.checkpoint_snapshot):
        return None
    latest = json.loads(read_bytes(run.checkpoint_snapshot)).get("latest_checkpoint_result")
    if not latest:
        return None
    return StoredCheckpoint(join(run.root, latest["checkpoint_dir_name"]), (latest.get("metrics") or {}).get("epoch"))
