"""The `onnx` export target: the checked PIR export converted by paddle2onnx, run by ONNX Runtime.

    onnx/model.onnx      opset 17, input "x" [batch, C, H, W] with a dynamic batch, output the logits

paddle2onnx 2.1.0 reads Paddle 3's PIR ``model.json`` directly. It runs in a subprocess: a converter abort on an
unexpected program must not take the export with it. The converted model is checked with ONNX Runtime against the
dygraph logits (``ctx.reference_logits`` on ``ctx.check_inputs``) and measured with ONNX Runtime on the CPU.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np

from ppipe.export.logits_check import Float64Reference, compare_logits
from ppipe.export.target_outcome import DEFAULT_RTOL, NotApplicable, TargetFailed, build_target, check_rtol
from ppipe.export.targets import TARGETS, ExportContext, TargetResult
from ppipe.host import cpu_model

__all__ = ["OPSET", "convert_to_onnx", "onnx_session", "run_onnx", "check_onnx", "measure", "onnx_target"]

OPSET = 17
MEASURE_THREADS = 1
_UNSUPPORTED = re.compile(r"not supported|unsupported|not registered", re.IGNORECASE)


def convert_to_onnx(model_dir: str, save_file: str, *, opset: int = OPSET, timeout: int = 1800) -> None:
    """paddle2onnx: ``model_dir/model.json`` (or ``.pdmodel``) + ``model.pdiparams`` → `save_file`. Raises
    NotApplicable when the converter lacks an operator of the model, TargetFailed for any other failure."""
    from ppipe.inference import find_model_files

    model_file, params_file = find_model_files(model_dir)
    cmd = [sys.executable, "-m", "paddle2onnx.command", "--model_dir", model_dir,
           "--model_filename", os.path.basename(model_file), "--params_filename", os.path.basename(params_file),
           "--save_file", save_file, "--opset_version", str(opset), "--enable_auto_update_opset", "False"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TargetFailed(f"paddle2onnx took longer than {timeout} s") from None
    log = f"{out.stdout}\n{out.stderr}"
    if out.returncode == 0 and os.path.isfile(save_file):
        return
    reasons = [ln.strip() for ln in log.splitlines() if _UNSUPPORTED.search(ln)]
    if reasons:
        raise NotApplicable(f"paddle2onnx cannot convert this model: {' | '.join(reasons[-3:])[:400]}")
    tail = " | ".join(ln.strip() for ln in log.strip().splitlines()[-3:])
    raise TargetFailed(f"paddle2onnx failed (exit {out.returncode}): {tail[:400]}")


def onnx_session(path: str, threads: int = 1):
    """An ONNX Runtime CPU session for the model at `path` (`threads` intra-op threads)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


def run_onnx(session, batch: np.ndarray) -> np.ndarray:
    """The first output (the logits) of `session` on `batch` (float32 [N, C, H, W])."""
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.ascontiguousarray(batch, dtype=np.float32)})[0]


def check_onnx(session, check_inputs: np.ndarray, reference_logits: np.ndarray, rtol: float = DEFAULT_RTOL,
               float64: Float64Reference | None = None) -> dict:
    """Compare ONNX Runtime's logits with the dygraph ones (``max|a - b| / max|b|``), float64-arbitrated beyond
    `rtol` where `float64` is given (`ppipe.export.logits_check`); TargetFailed when they disagree."""
    import onnxruntime as ort

    check = compare_logits(run_onnx(session, check_inputs), reference_logits, rtol, float64)
    if not check.passed:
        raise TargetFailed(f"{check.explain('ONNX Runtime')} (batch {list(check_inputs.shape)})")
    return {**check.record(), "runtime": f"onnxruntime {ort.__version__}", "batch": int(check_inputs.shape[0])}


def _median_seconds(fn: Callable[[], object], budget_s: float, max_runs: int = 50) -> float:
    fn()  # warm-up: the first runs allocate and pick kernels
    times, start = [], time.perf_counter()
    while len(times) < max_runs and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def measure(run: Callable[[np.ndarray], object], input_shape: tuple[int, int, int], *, threads: int,
            budget_s: float = 2.0) -> dict:
    """Latency at batch 1 (ms, median) and throughput at batch 32 (images/s, median batch time) of `run` on random
    inputs. (The export stage's shared `measure.py` replaces this once it lands.)"""
    rng = np.random.default_rng(0)
    one = rng.standard_normal((1, *input_shape)).astype(np.float32)
    many = rng.standard_normal((32, *input_shape)).astype(np.float32)
    latency = _median_seconds(lambda: run(one), budget_s)
    batch_time = _median_seconds(lambda: run(many), budget_s)
    return {"latency_ms_b1": round(latency * 1e3, 3), "throughput_b32": round(32 / batch_time, 2),
            "threads": threads, "cpu": cpu_model()}


def build_onnx(ctx: ExportContext, folder: str) -> TargetResult:
    """Convert, check and measure into `folder`."""
    path = os.path.join(folder, "model.onnx")
    convert_to_onnx(ctx.reference_dir, path)
    session = onnx_session(path, threads=MEASURE_THREADS)
    check = check_onnx(session, ctx.check_inputs, ctx.reference_logits, check_rtol(ctx),
                       Float64Reference.of_context(ctx))
    check["opset"] = OPSET
    measurements = measure(lambda b: run_onnx(session, b), ctx.input_shape, threads=MEASURE_THREADS)
    return TargetResult(name="onnx", status="built", check=check, measurements=measurements)


@TARGETS.register(name="onnx")
def onnx_target(ctx: ExportContext) -> TargetResult:
    """ONNX (opset 17, dynamic batch), checked and measured with ONNX Runtime."""
    return build_target("onnx", ctx, lambda folder: build_onnx(ctx, folder))
