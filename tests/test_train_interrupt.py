"""Ctrl-C (SIGINT) and SIGTERM stop `ppipe train` within seconds: the workers and ppipe's Ray instance stop, the
last checkpoint stays valid, the command says how to continue, and a `--resume` continues from that checkpoint.

Each test runs `ppipe train` as a user does, in its own process (the signal goes to that process only).
"""

import glob
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ppipe.train.checkpoint import load_state
from ppipe.train.runs import latest_checkpoint

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart.yaml"
STOP_WITHIN_S = 15.0


def _train_command(tmp_path, prepared, *overrides) -> list[str]:
    small = ["Global.image_shape=[3, 16, 16]", "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
             "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16", "Ray.num_workers=1",
             f"Global.output_dir={tmp_path}/out", *overrides]
    return [sys.executable, "-m", "ppipe", "train", str(QUICKSTART), "--data", prepared,
            *[part for o in small for part in ("-o", o)]]


def _env(**extra) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "WANDB_MODE": "disabled", **extra}


def _start(tmp_path, command, env) -> tuple[subprocess.Popen, Path]:
    stderr = tmp_path / "stderr.txt"
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr.open("w"))
    return proc, stderr


def _wait_until(condition, proc: subprocess.Popen, stderr: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"ppipe train exited ({proc.returncode}) early:\n{stderr.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"not reached within {timeout_s:.0f} s:\n{stderr.read_text()[-3000:]}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen, signum: int) -> float:
    """Send `signum`; the seconds until the process exited."""
    start = time.monotonic()
    proc.send_signal(signum)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"ppipe train still running 60 s after {signal.Signals(signum).name}")
    return time.monotonic() - start


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _ray_processes_left(driver_pid: int, worker_pids: list[int]) -> list[str]:
    """Processes of the Ray instance that driver started: its services name the session folder, which Ray names
    after the driver's pid (`session_<time>_<pid>`); training workers retitle themselves, so they go by pid."""
    found = subprocess.run(["pgrep", "-af", f"session_[0-9_-]*_{driver_pid}([/ ]|$)"], capture_output=True,
                           text=True).stdout.splitlines()
    return found + [f"training worker {pid}" for pid in worker_pids if _alive(pid)]


def _assert_nothing_left_running(proc: subprocess.Popen, worker_pids: list[int]) -> None:
    deadline = time.monotonic() + 5  # processes whose parent just died are reaped within moments
    while (left := _ray_processes_left(proc.pid, worker_pids)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, left


def _worker_pids(run_dir: Path) -> list[int]:
    return [json.loads(p.read_text())["pid"] for p in run_dir.glob("workers/*/start*-rank*.json")]


def test_sigint_stops_training_keeps_the_last_checkpoint_and_resume_continues_from_it(tmp_path, digits_prepared):
    storage = tmp_path / "out" / "ray"
    proc, stderr = _start(tmp_path, _train_command(tmp_path, digits_prepared, "Global.epochs=50"), _env())
    _wait_until(lambda: glob.glob(f"{storage}/quickstart-*/checkpoint_manager_snapshot.json"), proc, stderr, 150)
    (run_dir,) = storage.iterdir()
    workers = _worker_pids(run_dir)
    elapsed = _stop(proc, signal.SIGINT)
    message = stderr.read_text()
    assert proc.returncode == 130, message[-3000:]
    assert elapsed < STOP_WITHIN_S, (elapsed, message[-3000:])
    assert f" --resume {run_dir.name}" in message and "Continue it with: ppipe train " in message
    _assert_nothing_left_running(proc, workers)

    checkpoint = latest_checkpoint(str(storage), run_dir.name)
    assert checkpoint is not None and checkpoint.epoch >= 1
    assert load_state(checkpoint.path).epochs_completed == checkpoint.epoch
    assert f"epoch {checkpoint.epoch}, {checkpoint.path}" in message

    epochs = checkpoint.epoch + 1
    resumed = subprocess.run(_train_command(tmp_path, digits_prepared, f"Global.epochs={epochs}") +
                             ["--resume", run_dir.name, "--json"], cwd=tmp_path, env=_env(), capture_output=True,
                             text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    assert summary["run_name"] == run_dir.name and summary["epochs_completed"] == epochs
    curves = (tmp_path / "out" / "quickstart" / "curves.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in curves] == list(range(1, epochs + 1))  # nothing trained twice
    assert len(list((run_dir / "attempts").iterdir())) == 2  # the interrupted call and the resume


# SIGTERM by default takes the same path as SIGINT (~20 s each); both run with -m slow and in CI
@pytest.mark.parametrize("signum", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_a_signal_while_waiting_for_workers_stops_at_once(tmp_path, digits_prepared, signum):
    # GPU workers on a machine without GPUs, and an autoscaler said to exist: the run waits for GPU nodes
    proc, stderr = _start(tmp_path, _train_command(tmp_path, digits_prepared, "Ray.use_gpu=true"),
                          _env(PPIPE_RAY_AUTOSCALER="1"))
    _wait_until(lambda: "waiting for the autoscaler" in stderr.read_text(), proc, stderr, 150)
    time.sleep(5)  # Ray Train's controller is now waiting for the workers' placement
    elapsed = _stop(proc, signum)
    message = stderr.read_text()
    assert proc.returncode == 128 + signum, message[-3000:]
    assert elapsed < STOP_WITHIN_S, (elapsed, message[-3000:])
    assert f"ppipe: {signal.Signals(signum).name}: stopped run quickstart-" in message
    assert "before its first checkpoint" in message
    _assert_nothing_left_running(proc, [])
