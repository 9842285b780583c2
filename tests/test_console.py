"""What a person sees: one line per epoch, Ray's/Paddle's/gloo's routine lines only with --verbose, and `--json`
documents alone on stdout whatever the run's processes print (a killed worker included)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ppipe import console

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
EPOCH_LINE = re.compile(r"^epoch (\d+)/(\d+)  loss \d+\.\d+  train top-1 [\d.]+%  val top-1 ([\d.]+%|-)  \d+ img/s  "
                        r"[\d.]+ s(  restarts \d+)?  checkpoint saved$")

# Lines of a real quickstart run (Ray 2.60, Paddle 3.3.1), one per kind the console hides unless verbose.
ROUTINE = [
    "Reporting training result 1: TrainingReport(checkpoint=None, metrics={'epoch': 1}, validation=False) from rank 1",
    "Checkpoint successfully created at: Checkpoint(filesystem=local, path=/tmp/run/checkpoint_2026-12-05)",
    "Attempting to start training worker group of size 2 with the following resources: [{'CPU': 1.0}] * 2",
    "Started training worker group of size 2: ",
    "- (ip=192.0.2.2, pid=28281) world_rank=0, local_rank=0, node_rank=0",
    "I1205 22:38:17.865212 28737 tcp_store.cc:336] create libuv server at port: 54089",
    "I1205 22:38:17.865674 28737 tcp_utils.cc:132] Successfully connected to 192.0.2.2:54089",
    "WARNING: OMP_NUM_THREADS set to 2, not 1. The computation speed will not be optimized if you use data parallel.",
    "PLEASE USE OMP_NUM_THREADS WISELY.",
    "======================= Modified FLAGS detected =======================",
    "FLAGS(name='FLAGS_enable_pir_in_executor', current_value=True, default_value=False)",
    "=======================================================================",
    "/venv/lib/python3.11/site-packages/paddle/utils/cpp_extension/extension_utils.py:712: UserWarning: No ccache "
    "found. Please be aware that recompiling all source files may be required.",
    "  warnings.warn(warning_message)",
    "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.",
    "worker 0: malloc keeps freed memory for reuse",
    "Compiling user custom op, it will cost a few seconds.....",
    "[2026-12-05 22:39:09,564] [    INFO] dist.py:1044 - running build_ext",
]
WANTED = [
    "epoch 3/30  loss 2.2094  train top-1 20.6%  val top-1 -  535 img/s  2.8 s  checkpoint saved",
    "AMP.use_amp: mixed precision (float16, level O2) needs a GPU and this worker runs on cpu: training in float32",
    "Traceback (most recent call last):",
]


def test_routine_lines_of_ray_paddle_and_gloo_are_noise_and_what_a_user_acts_on_is_not():
    assert [line for line in ROUTINE if not console.is_noise(line)] == []
    assert [line for line in WANTED if console.is_noise(line)] == []


def test_epoch_line_says_epoch_loss_accuracies_throughput_time_and_checkpoint():
    metrics = {"epoch": 2, "train_loss": 0.81234, "train_top1": 0.8866, "top1": 0.9444, "train_img_per_s": 773.0,
               "epoch_time_s": 2.25, "restarts": 0}
    line = console.epoch_line(metrics, 30, checkpoint=True)
    assert line == ("epoch 2/30  loss 0.8123  train top-1 88.7%  val top-1 94.4%  773 img/s  2.2 s  "
                    "checkpoint saved")
    assert EPOCH_LINE.match(line)
    no_val = console.epoch_line({**metrics, "top1": None, "restarts": 1}, 30, checkpoint=True)
    assert "val top-1 -" in no_val and "restarts 1" in no_val and EPOCH_LINE.match(no_val)


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_long_epoch_without_a_terminal_prints_plain_progress_lines_not_a_bar(monkeypatch):
    monkeypatch.setenv(console.TTY_ENV, "0")
    clock, lines = _Clock(), []
    progress = console.EpochProgress(2, 30, 450, write=lines.append, clock=clock)
    assert isinstance(progress.bar, console.LineProgress)
    for _ in range(100):  # 100 batches in 25 s: under a line's interval, nothing printed
        clock.now += 0.25
        progress.update()
    assert lines == []
    for _ in range(20):  # at 30 s: one line, then none until 30 s later
        clock.now += 0.25
        progress.update()
    assert lines == ["epoch 3/30  120/450 batches (27%)  4.0 batches/s  ~82 s left"]
    for _ in range(120):
        clock.now += 0.25
        progress.update()
    assert len(lines) == 2 and lines[1].startswith("epoch 3/30  240/450 batches (53%)")
    progress.close()
    quiet = console.EpochProgress(2, 30, 450, show=False, write=lines.append, clock=clock)
    clock.now += 60
    quiet.update()
    assert len(lines) == 2  # the workers of other ranks print nothing


def test_progress_is_a_bar_on_a_terminal_lines_elsewhere_and_nothing_when_off(monkeypatch):
    from tqdm import tqdm

    monkeypatch.setattr(console.sys.stderr, "isatty", lambda: False, raising=False)
    with console.progress("prepare", 1797, "images") as bar:
        assert isinstance(bar, console.LineProgress)
        bar.update(768)
    assert bar.line().startswith("prepare  768/1797 images (43%)")
    monkeypatch.setattr(console.sys.stderr, "isatty", lambda: True, raising=False)
    with console.progress("prepare", 10, "images") as bar:
        assert isinstance(bar, tqdm)
    with console.progress("prepare", 10, "images", enabled=False) as bar:
        bar.update(5)  # a no-op


def test_json_stdout_keeps_stdout_for_the_document_and_sends_every_other_write_to_stderr(capfd):
    with console.json_stdout() as document:
        print("a Python print")
        os.write(1, b"a C-level write to descriptor 1\n")
        subprocess.run([sys.executable, "-c", "print('a child process')"], check=True)
        json.dump({"top1": 0.5}, document)
    print("after the command")
    out, err = capfd.readouterr()
    assert out == '{"top1": 0.5}after the command\n'
    assert err.splitlines() == ["a Python print", "a C-level write to descriptor 1", "a child process"]


def test_ray_worker_output_reaches_stderr_without_routine_lines_and_all_of_it_when_verbose(capfd, monkeypatch):
    from ray._private import worker as ray_worker

    monkeypatch.setattr(ray_worker, "print_to_stdstream", ray_worker.print_to_stdstream)  # restored afterwards
    dispatcher = ray_worker.global_worker_stdstream_dispatcher
    batch = {"lines": [*ROUTINE, WANTED[0]], "pid": 4242, "ip": "127.0.0.1", "localhost": "127.0.0.1",
             "is_err": False, "actor_name": "RayTrainWorker"}
    try:
        console.route_ray_output(is_verbose=False)
        dispatcher.emit(dict(batch))
        out, err = capfd.readouterr()
        assert out == "" and err.splitlines() == [WANTED[0]]  # bare: no "(RayTrainWorker pid=...)" prefix
        console.route_ray_output(is_verbose=True)
        dispatcher.emit({**batch, "pid": 4343})
        out, err = capfd.readouterr()
        assert out == "" and "Reporting training result 1" in err and "(RayTrainWorker pid=4343)" in err
        # the raylet's messages, printed by Ray's own thread (a worker was killed), go to stderr as well
        ray_worker.print_to_stdstream({"lines": ["A worker died or was killed"], "pid": "raylet", "is_err": False},
                                      ignore_prefix=False)
        out, err = capfd.readouterr()
        assert out == "" and "A worker died or was killed" in err
    finally:
        dispatcher.remove_handler("ray_print_logs")


def test_configure_sets_the_environment_the_runs_processes_inherit(monkeypatch):
    for name in (console.VERBOSE_ENV, "GLOG_minloglevel", "PYTHONWARNINGS", "WANDB_SILENT"):
        monkeypatch.delenv(name, raising=False)
    env = console.worker_env(False)
    ours = "ignore:No ccache found:UserWarning,ignore:When training:UserWarning"
    assert env["GLOG_minloglevel"] == "2" and env["PYTHONWARNINGS"] == ours
    assert env[console.VERBOSE_ENV] == "0"
    monkeypatch.setenv("PYTHONWARNINGS", "error::DeprecationWarning")
    assert console.worker_env(False)["PYTHONWARNINGS"] == f"error::DeprecationWarning,{ours}"
    monkeypatch.setenv("PYTHONWARNINGS", ours)  # a worker's own environment passed on again: nothing doubled
    assert console.worker_env(False)["PYTHONWARNINGS"] == ours


def test_log_lines_go_to_the_current_stderr_after_the_one_configured_with_is_closed(monkeypatch):
    import contextlib
    import io
    import logging

    monkeypatch.setattr(os, "environ", dict(os.environ))  # configure() sets the run's environment
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        swapped = io.StringIO()
        with contextlib.redirect_stderr(swapped):
            console.configure(is_verbose=False)
            logging.getLogger("ppipe.test").info("while swapped")
        assert "while swapped" in swapped.getvalue()
        swapped.close()  # as pytest's capture does between tests
        now = io.StringIO()
        monkeypatch.setattr("sys.stderr", now)
        logging.getLogger("ppipe.test").info("after")
        assert "after" in now.getvalue() and "Logging error" not in now.getvalue()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_batch_norm_1d_training_notice_is_not_shown(recwarn):
    import paddle

    console.quiet_warnings()
    bn = paddle.nn.BatchNorm1D(4)
    bn.train()
    bn(paddle.randn([3, 4]))
    assert not [w for w in recwarn if "When training" in str(w.message)]
    verbose = console.worker_env(True)
    assert verbose[console.VERBOSE_ENV] == "1" and "GLOG_minloglevel" not in verbose


def _train_cli(tmp_path, prepared, *extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "ppipe", *extra, "train", str(QUICKSTART), "--data", prepared, "--json",
           "-o", "Global.epochs=2", "-o", f"Global.output_dir={tmp_path}/out", "-o", "Global.image_shape=[3, 16, 16]",
           "-o", "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
           "-o", "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16", "-o", "Optimizer.lr.warmup_epoch=0"]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)


@pytest.mark.slow
def test_cli_training_prints_one_line_per_epoch_and_no_routine_lines_unless_verbose(tmp_path, digits_prepared):
    quiet = _train_cli(tmp_path, digits_prepared)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert json.loads(quiet.stdout)["epochs_completed"] == 2  # stdout: the document alone
    lines = quiet.stderr.splitlines()
    epochs = [m.group(1) for m in map(EPOCH_LINE.match, lines) if m]
    assert epochs == ["1", "2"], quiet.stderr
    assert [line for line in lines if console.is_noise(line)] == []
    verbose = _train_cli(tmp_path, digits_prepared, "--verbose")
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert json.loads(verbose.stdout)["epochs_completed"] == 2
    assert "Reporting training result" in verbose.stderr and "Started training worker group" in verbose.stderr


@pytest.mark.slow
def test_json_document_is_alone_on_stdout_after_a_worker_is_killed_and_restarted(tmp_path, digits_prepared,
                                                                                 monkeypatch, capfd):
    """Ray prints the raylet's report of the dead worker (and its C++ stack) to the driver's stdout."""
    import ray

    from ppipe.cli import main
    from tests.test_train import _last_rank_dies_once

    marker = tmp_path / "killed"
    _last_rank_dies_once(monkeypatch, epoch=2, step=5, marker=marker)
    monkeypatch.chdir(tmp_path)
    ray.shutdown()  # ppipe's own instance, as the CLI starts it
    try:
        main(["train", str(QUICKSTART), "--data", digits_prepared, "--json", "-o", "Global.epochs=2",
              "-o", "Ray.max_failures=1", "-o", f"Global.output_dir={tmp_path}/out",
              "-o", "Global.image_shape=[3, 16, 16]",
              "-o", "DataLoader.Train.dataset.transform_ops.1.RandCropImage.size=16",
              "-o", "DataLoader.Eval.dataset.transform_ops.1.ResizeImage.size=16",
              "-o", "DataLoader.Train.sampler.batch_size=64"])
    finally:
        ray.shutdown()
    out, err = capfd.readouterr()
    assert marker.exists()
    document = json.loads(out)  # exactly one document: json.loads refuses anything after it
    assert document["restarts"] == 1 and document["epochs_completed"] == 2
