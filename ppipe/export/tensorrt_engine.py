"""Build, serialise and check a TensorRT engine from a `tensorrt` export folder (what `ppipe deploy tensorrt` runs).

    from ppipe.export.tensorrt_engine import deploy_tensorrt
    deploy_tensorrt("pulled/model")   # {"status": "built", "engine": ".../engine_fp16.plan", "check": {...}, ...}
                                      # or {"status": "skipped", "reason": "TensorRT is not installed ..."}

Runs where TensorRT and an NVIDIA GPU are: the engine follows ``build_spec.json`` (precision, min/opt/max shapes,
workspace), INT8 uses ``calibration.cache`` when the export wrote one, else calibrates with
``IInt8EntropyCalibrator2`` on ``calibration_images.npy`` and writes the cache beside the engine. The engine's logits
on ``check_inputs.npy`` must match ``reference_logits.npy`` within the precision's ``rtol``. Polygraphy (installed
with paddle2onnx) drives TensorRT and the device memory.
"""

from __future__ import annotations

import os

import numpy as np

from ppipe.errors import UserError
from ppipe.export.onnx import measure
from ppipe.export.paddle_inference import max_relative_error
from ppipe.export.tensorrt_spec import INPUT, load_build_spec, require_precision
from ppipe.storage import write_bytes_atomic

__all__ = ["TENSORRT_REQUIREMENT", "tensorrt_unavailable", "calibrate", "build_engine", "find_tensorrt_folder",
           "deploy_tensorrt"]

# TensorRT 10.x: ppipe builds fp16/int8 engines from the FP32 ONNX model by builder flags and calibrates INT8 with
# IInt8EntropyCalibrator2 ("weak typing"), which TensorRT 11 removed (strongly typed networks, explicit Q/DQ
# quantization only). Paddle 3.3.1's GPU wheels (cu126) pair with TensorRT 10.5 for Paddle-TRT likewise.
TENSORRT_REQUIREMENT = "tensorrt-cu12>=10.5,<11"


def tensorrt_unavailable() -> str | None:
    """Why no TensorRT engine can be built in this process (None when one can): TensorRT or Polygraphy missing,
    a TensorRT major version this build does not drive, or no CUDA GPU for TensorRT's builder."""
    try:
        import tensorrt as trt
    except ImportError:
        return f"TensorRT is not installed (pip install '{TENSORRT_REQUIREMENT}'; it needs an NVIDIA GPU with CUDA)"
    except Exception as e:  # noqa: BLE001 - a broken CUDA install shows up as any error at import
        return f"TensorRT does not load: {type(e).__name__}: {e}"
    version = str(getattr(trt, "__version__", "?"))
    major = version.split(".")[0]
    if not major.isdigit() or int(major) >= 11:
        return (f"TensorRT {version} is installed; ppipe builds engines with TensorRT 10.x "
                f"(fp16/int8 builder flags and INT8 calibrators, which TensorRT 11 removed): "
                f"pip install '{TENSORRT_REQUIREMENT}'")
    try:
        import polygraphy.backend.trt  # noqa: F401
    except ImportError:
        return "Polygraphy is not installed (pip install polygraphy)"
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as e:  # noqa: BLE001 - TensorRT raises a bare TypeError/RuntimeError without a GPU
        return f"no CUDA GPU for TensorRT's builder ({type(e).__name__}: {e})"
    return None if builder is not None else "no CUDA GPU for TensorRT's builder"


def _profile(shapes: dict, input_name: str):
    from polygraphy.backend.trt import Profile

    return Profile().add(input_name, min=shapes["min"], opt=shapes["opt"], max=shapes["max"])


def _calibrator(images: np.ndarray | None, batch: int, cache_path: str, input_name: str = INPUT):
    """An IInt8EntropyCalibrator2 fed `images` in batches of `batch` (TensorRT calibrates at the profile's opt
    shape), reading/writing `cache_path`."""
    import tensorrt as trt
    from polygraphy.backend.trt import Calibrator

    if images is None:
        loader = []  # the cache alone calibrates; TensorRT never asks for a batch
    else:
        usable = len(images) // batch * batch
        if usable == 0:
            raise ValueError(f"INT8 calibration needs at least {batch} images (the opt batch), got {len(images)}")
        loader = [{input_name: images[i:i + batch]} for i in range(0, usable, batch)]
    return Calibrator(loader, cache=cache_path, BaseClass=trt.IInt8EntropyCalibrator2)


def build_engine(onnx_path: str, shapes: dict, precision: str, workspace_bytes: int, calibrator=None,
                 input_name: str = INPUT):
    """A TensorRT engine for the ONNX model with one optimisation profile (`shapes`: min/opt/max [N, C, H, W] of
    the input `input_name`)."""
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, engine_from_network, network_from_onnx_path

    require_precision(precision)
    config = CreateConfig(fp16=precision in ("fp16", "int8"), int8=precision == "int8", calibrator=calibrator,
                          profiles=[_profile(shapes, input_name)],
                          memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(workspace_bytes)})
    return engine_from_network(network_from_onnx_path(onnx_path), config=config)


def calibrate(onnx_path: str, images: np.ndarray, shapes: dict, cache_path: str, workspace_bytes: int) -> None:
    """Write TensorRT's INT8 calibration cache for the ONNX model from `images` (an INT8 build whose engine is
    dropped: TensorRT calibrates while it builds)."""
    build_engine(onnx_path, shapes, "int8", workspace_bytes, _calibrator(images, shapes["opt"][0], cache_path))
    if not os.path.isfile(cache_path):
        raise RuntimeError(f"TensorRT calibrated but wrote no cache at {cache_path}")


def find_tensorrt_folder(path: str) -> str:
    """The folder holding ``build_spec.json``: `path` itself or its ``tensorrt/`` (an export or pulled artifact)."""
    for folder in (path, os.path.join(path, "tensorrt")):
        if os.path.isfile(os.path.join(folder, "build_spec.json")):
            return folder
    raise UserError(f"{path}: not a TensorRT export (expected build_spec.json in it or in its tensorrt/ folder); "
                    f"export with `ppipe export CONFIG --targets tensorrt`")


def _int8_calibrator(folder: str, spec: dict):
    cache = os.path.join(folder, spec["calibration"].get("cache_file") or "calibration.cache")
    if os.path.isfile(cache):
        return _calibrator(None, spec["shapes"]["opt"][0], cache, spec["input"]), "calibration cache"
    images_file = spec["calibration"].get("images_file")
    if not images_file:
        raise UserError(f"{folder}: INT8 needs calibration, and this export has none "
                        f"({spec['calibration'].get('reason', 'no calibration images')})")
    images = np.load(os.path.join(folder, images_file))
    return (_calibrator(images, spec["shapes"]["opt"][0], cache, spec["input"]),
            "IInt8EntropyCalibrator2 on calibration images")


def _run_and_check(engine, folder: str, spec: dict, precision: str) -> tuple[dict, dict]:
    from polygraphy.backend.trt import TrtRunner

    inputs = np.load(os.path.join(folder, spec["check"]["inputs"]))
    reference = np.load(os.path.join(folder, spec["check"]["logits"]))
    rtol = float(spec["rtol"][precision])
    with TrtRunner(engine) as runner:
        def run(batch):
            # the model's one output, the logits (TrtRunner has no output metadata to name it by)
            outputs = runner.infer({spec["input"]: np.ascontiguousarray(batch, dtype=np.float32)})
            return next(iter(outputs.values()))

        err = max_relative_error(np.asarray(run(inputs)), reference)
        measurements = measure(run, tuple(spec["shapes"]["opt"][1:]), threads=1)
    import tensorrt as trt

    measurements["runtime"] = f"TensorRT {trt.__version__} (GPU)"
    return {"max_rel_err": float(err), "rtol": rtol, "passed": bool(err <= rtol)}, measurements


def deploy_tensorrt(path: str, precision: str | None = None) -> dict:
    """Build and check the engine of the export at `path`; serialise it (``<folder>/engine_<precision>.plan``,
    atomically) only when its logits pass.

    Returns ``{"status": "built"|"skipped"|"failed", "reason", "engine", "precision", "check", "measurements"}``;
    "skipped" where TensorRT or a GPU is missing."""
    folder = find_tensorrt_folder(os.fspath(path))
    spec = load_build_spec(folder)
    precision = require_precision(precision or spec["precision"])
    result = {"status": "skipped", "reason": "", "precision": precision, "engine": None, "check": {},
              "measurements": {}}
    unavailable = tensorrt_unavailable()
    if unavailable is not None:
        return {**result, "reason": f"the TensorRT engine was not built: {unavailable}"}
    from polygraphy.backend.trt import bytes_from_engine

    calibrator, calibration = _int8_calibrator(folder, spec) if precision == "int8" else (None, None)
    engine = build_engine(os.path.join(folder, spec["onnx"]), spec["shapes"], precision, spec["workspace_bytes"],
                          calibrator, spec["input"])
    check, measurements = _run_and_check(engine, folder, spec, precision)
    if calibration:
        check["calibration"] = calibration
    if not check["passed"]:  # no plan file: one lying beside the spec would look like a usable engine
        return {**result, "status": "failed", "check": check, "measurements": measurements,
                "reason": f"engine logits disagree with the dygraph model: max_rel_err {check['max_rel_err']:.3e} "
                          f"> rtol {check['rtol']:.1e}; no engine written"}
    engine_path = os.path.join(folder, f"engine_{precision}.plan")
    write_bytes_atomic(engine_path, bytes_from_engine(engine))  # never a half-written plan beside the spec
    return {**result, "status": "built", "engine": engine_path, "check": check, "measurements": measurements}
