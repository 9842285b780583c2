"""GPU checks of the tensorrt export target: real TensorRT engines built from a quickstart-like export.

Run on a machine with an NVIDIA GPU, TensorRT 10.x (`pip install 'tensorrt-cu12>=10.5,<11'`, as the GPU image
does; 11 removed the fp16 flag and the calibrators, so there engine_fp16 and engine_int8 are SKIPped with the
reason) and ppipe installed:

    python tests/gpu/check_tensorrt.py [--size 32] [--out DIR]

Prints one `PASS`/`FAIL`/`SKIP` line per item and exits 1 if any item failed; where TensorRT or a GPU is missing
every item is SKIPped with the reason and the exit status is 0 (nothing was wrong, nothing ran). Items:

* `env`: TensorRT imports and its builder finds a GPU (`ppipe.export.tensorrt_engine.tensorrt_unavailable`).
* `export`: PPLCNet_x0_25 (the quickstart model, random weights, 10 classes) at `--size` exported by the tensorrt
  target: built, its ONNX checked with ONNX Runtime, and the INT8 calibration written as TensorRT's own cache
  (IInt8EntropyCalibrator2 on 32 images), since TensorRT 10 is here (TensorRT 11: ONNX Runtime's ranges).
* `engine_fp32`, `engine_fp16`, `engine_int8`: `deploy_tensorrt` builds, serialises and checks an engine of each
  precision: its logits on the export's check inputs within the precision's rtol of the dygraph logits, the
  `.plan` file written, latency and throughput measured; INT8 reads the exported calibration cache (implicit
  quantization: the random PP-LCNet's Q/DQ model fails its INT8 check on the CPU and is not shipped).
* `engine_int8_explicit`: a small CNN exported with its Q/DQ model (`model_int8_qdq.onnx`), built as a strongly
  typed network without precision flags (explicit quantization, TensorRT 10 and 11) and checked the same way.
* `cli`: `ppipe deploy tensorrt DIR --json` prints one JSON document with status "built" and exits 0.
* `paddle_trt`: where Paddle is a CUDA build with TensorRT, a Paddle Inference predictor configured from
  `paddle_trt_config.json` runs the Paddle export and matches the dygraph logits (fp16 tolerance).

Not collected by pytest (no GPU in CI).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_amp_nccl import RESULTS, ROOT, check, record  # noqa: E402 - the shared PASS/FAIL/SKIP recorder

ITEMS = ("export", "engine_fp32", "engine_fp16", "engine_int8", "engine_int8_explicit", "cli", "paddle_trt")


def check_env() -> str:
    from ppipe.export.tensorrt_engine import tensorrt_unavailable

    reason = tensorrt_unavailable()
    if reason:
        return f"SKIP:{reason}"
    import tensorrt as trt

    return f"TensorRT {trt.__version__}"


def check_export(out: Path, size: int) -> str:
    from ppipe.export.tensorrt import tensorrt_target
    from tests.export_context import make_context

    ctx = make_context(out, "PPLCNet_x0_25", size, 10, calibration_batches=8)
    result = tensorrt_target(ctx)
    check(result.status == "built", f"tensorrt target {result.status}: {result.reason}")
    with open(out / "export" / "tensorrt" / "build_spec.json") as f:
        calibration = json.load(f)["calibration"]
    from ppipe.export.tensorrt_engine import tensorrt_major

    if tensorrt_major() >= 11:  # no implicit calibration in TensorRT 11: ONNX Runtime's ranges instead
        check(calibration["kind"] == "onnxruntime-ranges", f"calibration is {calibration}, expected the ranges")
        return f"ONNX max_rel_err {result.check['max_rel_err']:.2e}, TensorRT 11: no calibration cache"
    check(calibration["kind"] == "tensorrt-cache", f"calibration is {calibration}, expected TensorRT's cache")
    check((out / "export" / "tensorrt" / "calibration.cache").stat().st_size > 0, "empty calibration cache")
    return f"ONNX max_rel_err {result.check['max_rel_err']:.2e}, calibration cache from {calibration['images']} images"


def check_engine(out: Path, precision: str, int8_mode: str | None = None) -> str:
    from ppipe.export.tensorrt_engine import deploy_tensorrt

    result = deploy_tensorrt(str(out / "export"), precision=precision, int8_mode=int8_mode)
    if result["status"] == "skipped" and "has no" in result["reason"]:  # TensorRT 11: removed, not broken
        return f"SKIP:{result['reason']}"
    check(result["status"] == "built", f"{result['status']}: {result['reason']}")
    check(os.path.getsize(result["engine"]) > 0, "empty engine file")
    m = result["measurements"]
    return (f"max_rel_err {result['check']['max_rel_err']:.2e} (rtol {result['check']['rtol']}), "
            f"{m['latency_ms_b1']} ms at batch 1, {m['throughput_b32']} img/s at batch 32")


def check_explicit_int8(out: Path, size: int) -> str:
    from ppipe.export.tensorrt import tensorrt_target
    from tests.export_context import make_context, small_cnn

    ctx = make_context(out, size=size, model=small_cnn(), calibration_batches=8)
    check(tensorrt_target(ctx).status == "built", "tensorrt target of the small CNN not built")
    with open(out / "export" / "tensorrt" / "build_spec.json") as f:
        explicit = json.load(f)["calibration"]["explicit"]
    check(explicit["onnx"] is not None, f"no Q/DQ model exported: {explicit.get('reason')}")
    return check_engine(out, "int8", "explicit")


def check_cli(out: Path) -> str:
    from ppipe.export.tensorrt_engine import tensorrt_major

    # the spec's default precision (fp16) on TensorRT 10; fp32 on 11, which has no fp16 flag
    precision = ["--precision", "fp32"] if tensorrt_major() >= 11 else []
    proc = subprocess.run([sys.executable, "-m", "ppipe", "deploy", "tensorrt", str(out / "export"), *precision,
                           "--json"], capture_output=True, text=True, cwd=ROOT)
    check(proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    doc = json.loads(proc.stdout)
    check(doc["status"] == "built", f"status {doc['status']}")
    return doc["engine"]


def check_paddle_trt(out: Path) -> str:
    import paddle
    from paddle import inference as pi

    from ppipe.export import max_relative_error
    from ppipe.export.tensorrt import apply_paddle_trt_config
    from ppipe.inference import find_model_files, predict

    if not paddle.is_compiled_with_cuda() or not hasattr(pi.Config, "enable_tensorrt_engine"):
        return "SKIP:Paddle is not a CUDA build with TensorRT (GPU wheels: Paddle's own package index)"
    folder = out / "export" / "tensorrt"
    with open(folder / "paddle_trt_config.json") as f:
        spec = json.load(f)
    config = pi.Config(*find_model_files(str(folder / spec["model_dir"])))  # the legacy program
    apply_paddle_trt_config(config, spec)
    predictor = pi.create_predictor(config)
    inputs = np.load(folder / "check_inputs.npy")
    reference = np.load(folder / "reference_logits.npy")
    err = max_relative_error(predict(predictor, inputs), reference)
    check(err <= 2e-2, f"Paddle-TRT max_rel_err {err:.3e} > 2e-2")
    return f"max_rel_err {err:.2e}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--out", default=None, help="keep the export and engines here (default: a temporary folder)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    record("env", check_env)
    if RESULTS[-1][1] != "PASS":
        for item in ITEMS:
            print(f"SKIP {item}: {RESULTS[-1][2]}")
        print("nothing ran: this machine cannot build TensorRT engines")
        return 0 if RESULTS[-1][1] == "SKIP" else 1
    with tempfile.TemporaryDirectory(prefix="ppipe-trt-check-") as tmp:
        out = Path(args.out or tmp)
        record("export", check_export, out, args.size)
        for precision in ("fp32", "fp16", "int8"):
            record(f"engine_{precision}", check_engine, out, precision)
        record("engine_int8_explicit", check_explicit_int8, out / "qdq", args.size)
        record("cli", check_cli, out)
        record("paddle_trt", check_paddle_trt, out)
    failed = [item for item, status, _ in RESULTS if status == "FAIL"]
    print(f"{len(RESULTS) - len(failed)}/{len(RESULTS)} without failure" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
