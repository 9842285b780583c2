"""The `tensorrt` export target: everything a GPU node needs to build a TensorRT engine, without needing a GPU here.

    tensorrt/model.onnx              the ONNX model (opset 17, dynamic batch), checked with ONNX Runtime
    tensorrt/build_spec.json         precision, min/opt/max input shapes, workspace, the INT8 calibration in use
    tensorrt/check_inputs.npy        inputs and the dygraph logits they give: `ppipe deploy tensorrt` checks the
    tensorrt/reference_logits.npy    engine's logits against them
    tensorrt/calibration_images.npy  the calibration images (float32 [N, C, H, W], eval transforms, train split)
    tensorrt/model_int8_qdq.onnx     the explicitly quantized (Q/DQ) model for INT8 engines, checked with ONNX
                                     Runtime (logits, and top-1 on the val batches): `ppipe.export.tensorrt_qdq`
    tensorrt/calibration.cache       TensorRT's INT8 calibration cache (IInt8EntropyCalibrator2) for implicit
                                     quantization, where TensorRT 10 and a GPU were available at export time, else
    tensorrt/calibration_ranges.json per-tensor ranges from ONNX Runtime's MinMax calibrator (documented below)
    tensorrt/paddle_trt_config.json  the Paddle-TRT predictor configuration for paddlepaddle-gpu images, for
    tensorrt/paddle/                 the model as a legacy program (model.pdmodel + model.pdiparams), checked here:
                                     Paddle Inference builds TensorRT subgraphs of legacy programs only (its PIR
                                     predictor has no TensorRT pass: a PIR model.json runs without TensorRT)

The engine itself is built on the GPU node by `ppipe deploy tensorrt` (`ppipe.export.tensorrt_engine`).

``calibration_ranges.json``: ``{"format": "ppipe-onnxruntime-ranges/1", "method": "MinMax", "onnx":
"model.onnx", "images": N, "tensors": {ONNX tensor name: {"min": float, "max": float, "amax": float}}}``; `amax`
(``max(|min|, |max|)``) is the symmetric range TensorRT's ``ITensor.set_dynamic_range(-amax, amax)`` takes.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from ppipe.export import tensorrt_engine, tensorrt_qdq
from ppipe.export.legacy import LegacyExportError
from ppipe.export.legacy_check import check_legacy_model
from ppipe.export.logits_check import Float64Reference
from ppipe.export.onnx import check_onnx, convert_to_onnx, onnx_session
from ppipe.export.target_outcome import TargetFailed, build_target, check_rtol
from ppipe.export.targets import TARGETS, ExportContext, TargetResult
from ppipe.export.tensorrt_spec import BATCH_SHAPES, PRECISIONS, WORKSPACE_BYTES, build_spec, engine_shapes

__all__ = ["BATCH_SHAPES", "PRECISIONS", "TENSORRT_TARGET", "WORKSPACE_BYTES", "build_spec", "paddle_trt_config",
           "apply_paddle_trt_config", "write_calibration", "tensorrt_target"]

TENSORRT_TARGET = "tensorrt"  # the target's name in export.json, the artifact and the evaluation
MAX_CALIBRATION_IMAGES = 512
PADDLE_DIR = "paddle"  # the legacy program paddle_trt_config.json runs, inside the target's folder


def paddle_trt_config(input_shape, model_dir: str, precision: str = "fp16") -> dict:
    """The Paddle-TRT predictor configuration (``paddle_trt_config.json``): `model_dir` is the legacy program's
    folder relative to this one; `apply_paddle_trt_config` applies it to a `paddle.inference.Config` of that
    program. Format 2: format 1 named the PIR export, which Paddle-TRT does not run and the artifact did not hold."""
    shapes = engine_shapes(input_shape)
    return {"format": "ppipe-paddle-trt/2", "model_dir": model_dir, "program": "legacy", "gpu_memory_mb": 1024,
            "device_id": 0,
            "enable_tensorrt_engine": {"workspace_size": WORKSPACE_BYTES, "max_batch_size": BATCH_SHAPES["max"],
                                       "min_subgraph_size": 3, "precision": precision, "use_static": True,
                                       "use_calib_mode": precision == "int8"},
            "dynamic_shape": {"min_input_shape": {"x": shapes["min"]}, "max_input_shape": {"x": shapes["max"]},
                              "optim_input_shape": {"x": shapes["opt"]}}}


_PADDLE_PRECISION = {"fp32": "Float32", "fp16": "Half", "int8": "Int8"}


def apply_paddle_trt_config(config, spec: dict, precision_type=None):
    """Turn on Paddle-TRT in `config` (a GPU build's `paddle.inference.Config` of the legacy program in `spec`'s
    ``model_dir``) as `spec` (a ``paddle_trt_config.json``) says, on the legacy IR. `precision_type` is
    `paddle.inference.PrecisionType` (looked up when omitted)."""
    if precision_type is None:
        from paddle.inference import PrecisionType as precision_type
    trt = dict(spec["enable_tensorrt_engine"])
    precision = trt.pop("precision")
    if precision not in _PADDLE_PRECISION:
        raise ValueError(f"paddle_trt_config.json: precision must be one of {sorted(_PADDLE_PRECISION)}, "
                         f"got {precision!r}")
    config.enable_use_gpu(int(spec["gpu_memory_mb"]), int(spec["device_id"]))
    config.enable_new_ir(False)  # TensorRT subgraphs are built by the legacy IR's passes only
    config.enable_tensorrt_engine(precision_mode=getattr(precision_type, _PADDLE_PRECISION[precision]), **trt)
    config.set_trt_dynamic_shape_info(spec["dynamic_shape"]["min_input_shape"],
                                      spec["dynamic_shape"]["max_input_shape"],
                                      spec["dynamic_shape"]["optim_input_shape"])
    return config


def _calibration_images(calibration, input_shape) -> np.ndarray:
    batches, count = [], 0
    for batch in calibration():
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != tuple(input_shape):
            raise ValueError(f"calibration batch of shape {list(batch.shape)}, expected [N, "
                             f"{', '.join(map(str, input_shape))}]")
        batches.append(batch[: MAX_CALIBRATION_IMAGES - count])
        count += len(batches[-1])
        if count >= MAX_CALIBRATION_IMAGES:
            break
    if not count:
        raise ValueError("the calibration source yielded no images")
    return np.concatenate(batches)


def write_calibration(ctx: ExportContext, folder: str) -> dict:
    """Write the INT8 calibration into `folder` (beside its ``model.onnx``): the images, the Q/DQ model
    (`ppipe.export.tensorrt_qdq`), and TensorRT's own calibration cache where TensorRT 10 and a GPU are here, else
    ONNX Runtime's per-tensor ranges. Returns the build spec's `calibration` entry (what was written, and why)."""
    if ctx.calibration is None:
        return {"kind": "none", "reason": "no calibration images were given to the export: INT8 engines cannot be "
                                          "calibrated from this artifact (fp32/fp16 can be built)"}
    images = _calibration_images(ctx.calibration, ctx.input_shape)
    np.save(os.path.join(folder, "calibration_images.npy"), images)
    onnx_path = os.path.join(folder, "model.onnx")
    tensors = tensorrt_qdq.calibrate(onnx_path, images)
    entry = {"images_file": "calibration_images.npy", "images": int(len(images)),
             "explicit": tensorrt_qdq.write_qdq(ctx, folder, images, tensors)}
    unavailable = tensorrt_engine.implicit_int8_unavailable()
    if unavailable is None:
        tensorrt_engine.calibrate(onnx_path, images, engine_shapes(ctx.input_shape),
                                  os.path.join(folder, "calibration.cache"), WORKSPACE_BYTES)
        return {**entry, "kind": "tensorrt-cache", "cache_file": "calibration.cache",
                "calibrator": "IInt8EntropyCalibrator2"}
    doc = {"format": "ppipe-onnxruntime-ranges/1", "method": "MinMax", "onnx": "model.onnx",
           "images": int(len(images)), "tensors": tensorrt_qdq.tensor_ranges(tensors)}
    _write_json(os.path.join(folder, "calibration_ranges.json"), doc)
    return {**entry, "kind": "onnxruntime-ranges", "ranges_file": "calibration_ranges.json",
            "reason": f"no TensorRT calibration cache written here ({unavailable}); `ppipe deploy tensorrt "
                      f"--precision int8 --int8 implicit` calibrates from calibration_images.npy on the GPU node"}


def _write_json(path: str, doc: dict) -> None:
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)


def write_paddle_trt(ctx: ExportContext, folder: str) -> dict:
    """``paddle/`` (the legacy program, checked with Paddle Inference on this CPU) and ``paddle_trt_config.json``
    for it, inside the target's folder so that the published artifact holds what the configuration names. Returns
    the check's ``paddle_trt`` entry. Without a legacy program (a model Paddle's legacy tracer cannot write), or
    with one that disagrees with the dygraph model, neither is written and the entry says why: the TensorRT engine
    itself does not need them."""
    try:
        legacy_dir = ctx.legacy_program()
        check = check_legacy_model(legacy_dir, ctx.check_inputs, ctx.reference_logits, check_rtol(ctx))
    except (LegacyExportError, TargetFailed) as e:
        return {"written": False, "reason": f"no checked legacy program for Paddle-TRT: {e}"}
    dest = os.path.join(folder, PADDLE_DIR)
    os.makedirs(dest)
    for name in ("model.pdmodel", "model.pdiparams"):
        shutil.copy2(os.path.join(legacy_dir, name), dest)
    _write_json(os.path.join(folder, "paddle_trt_config.json"), paddle_trt_config(ctx.input_shape, PADDLE_DIR))
    return {"written": True, "model_dir": PADDLE_DIR, "program": "legacy", **check}


def build_tensorrt(ctx: ExportContext, folder: str) -> TargetResult:
    onnx_path = os.path.join(folder, "model.onnx")
    convert_to_onnx(ctx.reference_dir, onnx_path)
    check = check_onnx(onnx_session(onnx_path), ctx.check_inputs, ctx.reference_logits, check_rtol(ctx),
                       Float64Reference.of_context(ctx))
    np.save(os.path.join(folder, "check_inputs.npy"), np.asarray(ctx.check_inputs, dtype=np.float32))
    np.save(os.path.join(folder, "reference_logits.npy"), np.asarray(ctx.reference_logits, dtype=np.float32))
    calibration = write_calibration(ctx, folder)
    _write_json(os.path.join(folder, "build_spec.json"), build_spec(ctx.input_shape, calibration))
    check["paddle_trt"] = write_paddle_trt(ctx, folder)
    check["int8_explicit"] = calibration.get("explicit") or {"onnx": None, "reason": calibration["reason"]}
    check["engine"] = "built by `ppipe deploy tensorrt` on a GPU node, checked there against reference_logits.npy"
    return TargetResult(name=TENSORRT_TARGET, status="built", check=check,
                        measurements={"note": "measured on the GPU node by `ppipe deploy tensorrt`"})


@TARGETS.register(name=TENSORRT_TARGET)
def tensorrt_target(ctx: ExportContext) -> TargetResult:
    """ONNX + build specification + INT8 calibration + Paddle-TRT configuration for a TensorRT engine."""
    return build_target(TENSORRT_TARGET, ctx, lambda folder: build_tensorrt(ctx, folder))
