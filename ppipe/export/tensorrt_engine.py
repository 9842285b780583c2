"""Build, serialise and check a TensorRT engine from a `tensorrt` export folder (what `ppipe deploy tensorrt` runs).

    from ppipe.export.tensorrt_engine import deploy_tensorrt
    deploy_tensorrt("pulled/model")   # {"status": "built", "engine": ".../engine_fp16.plan", "check": {...}, ...}
                                      # or {"status": "skipped", "reason": "TensorRT is not installed ..."}

Runs where TensorRT and an NVIDIA GPU are: the engine follows ``build_spec.json`` (precision, min/opt/max shapes,
workspace). INT8 is built from the export's Q/DQ model (``model_int8_qdq.onnx``, explicit quantization, a strongly
typed network) where the export has one; otherwise, or with ``int8_mode="implicit"``, TensorRT 10 quantizes the FP32
model itself, from ``calibration.cache`` when the export wrote one, else calibrating with
``IInt8EntropyCalibrator2`` on ``calibration_images.npy`` (the cache is written beside the engine). TensorRT 11
builds fp32 and explicit INT8 only. The engine's logits
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

__all__ = ["TENSORRT_REQUIREMENT", "INT8_MODES", "tensorrt_major", "tensorrt_unavailable", "implicit_int8_unavailable",
           "calibrate", "build_engine", "find_tensorrt_folder", "deploy_tensorrt"]

# The TensorRT this build drives fully: 10.x builds fp16 engines by builder flag and INT8 engines either way
# (implicit: builder flag + IInt8EntropyCalibrator2; explicit: the Q/DQ model). TensorRT 11 removed the flags and
# the calibrators (strongly typed networks only): there ppipe builds fp32, and int8 from the Q/DQ model. Paddle
# 3.3.1's GPU wheels (cu126) pair with TensorRT 10.5 for Paddle-TRT likewise.
TENSORRT_REQUIREMENT = "tensorrt-cu12>=10.5,<11"
INT8_MODES = ("explicit", "implicit")


def tensorrt_major() -> int:
    """The installed TensorRT's major version (-1 where it does not say)."""
    import tensorrt as trt

    major = str(getattr(trt, "__version__", "?")).split(".")[0]
    return int(major) if major.isdigit() else -1


def tensorrt_unavailable() -> str | None:
    """Why no TensorRT engine can be built in this process (None when one can): TensorRT or Polygraphy missing,
    a TensorRT older than 10, or no CUDA GPU for TensorRT's builder."""
    try:
        import tensorrt as trt
    except ImportError:
        return f"TensorRT is not installed (pip install '{TENSORRT_REQUIREMENT}'; it needs an NVIDIA GPU with CUDA)"
    except Exception as e:  # noqa: BLE001 - a broken CUDA install shows up as any error at import
        return f"TensorRT does not load: {type(e).__name__}: {e}"
    if tensorrt_major() < 10:
        return (f"TensorRT {getattr(trt, '__version__', '?')} is installed; ppipe builds engines with TensorRT 10 "
                f"or 11: pip install '{TENSORRT_REQUIREMENT}'")
    try:
        import polygraphy.backend.trt  # noqa: F401
    except ImportError:
        return "Polygraphy is not installed (pip install polygraphy)"
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as e:  # noqa: BLE001 - TensorRT raises a bare TypeError/RuntimeError without a GPU
        return f"no CUDA GPU for TensorRT's builder ({type(e).__name__}: {e})"
    return None if builder is not None else "no CUDA GPU for TensorRT's builder"


def _removed_in_11(what: str) -> str:
    import tensorrt as trt

    return (f"TensorRT {trt.__version__} has no {what} (TensorRT 11 removed the precision builder flags and INT8 "
            f"calibrators; strongly typed networks only): pip install '{TENSORRT_REQUIREMENT}'")


def implicit_int8_unavailable() -> str | None:
    """Why TensorRT cannot calibrate INT8 itself here (implicit quantization), or None."""
    unavailable = tensorrt_unavailable()
    if unavailable is None and tensorrt_major() >= 11:
        return _removed_in_11("implicit INT8 calibration")
    return unavailable


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


def build_engine(onnx_path: str, shapes: dict, workspace_bytes: int, *, fp16: bool = False, int8: bool = False,
                 strongly_typed: bool = False, calibrator=None, input_name: str = INPUT):
    """A TensorRT engine for the ONNX model with one optimisation profile (`shapes`: min/opt/max [N, C, H, W] of
    the input `input_name`). `fp16`/`int8`: TensorRT 10's precision flags (weak typing); `strongly_typed`: the
    ONNX model's own types decide, as a Q/DQ model's must (TensorRT 11 types every network strongly, and may no
    longer know the flag that asks for it)."""
    import tensorrt as trt
    from polygraphy.backend.trt import CreateConfig, engine_from_network, network_from_onnx_path

    config = CreateConfig(fp16=fp16, int8=int8, calibrator=calibrator, profiles=[_profile(shapes, input_name)],
                          memory_pool_limits={trt.MemoryPoolType.WORKSPACE: int(workspace_bytes)})
    network = network_from_onnx_path(onnx_path, strongly_typed=strongly_typed and tensorrt_major() < 11)
    return engine_from_network(network, config=config)


def calibrate(onnx_path: str, images: np.ndarray, shapes: dict, cache_path: str, workspace_bytes: int) -> None:
    """Write TensorRT's INT8 calibration cache for the ONNX model from `images` (an implicitly quantized INT8
    build whose engine is dropped: TensorRT calibrates while it builds; TensorRT 10 only)."""
    build_engine(onnx_path, shapes, workspace_bytes, fp16=True, int8=True,
                 calibrator=_calibrator(images, shapes["opt"][0], cache_path))
    if not os.path.isfile(cache_path):
        raise RuntimeError(f"TensorRT calibrated but wrote no cache at {cache_path}")


def find_tensorrt_folder(path: str) -> str:
    """The folder holding ``build_spec.json``: `path` itself, its ``tensorrt/`` (an export folder) or its
    ``export/tensorrt/`` (a run folder, or an artifact `ppipe artifacts pull` wrote)."""
    for folder in (path, os.path.join(path, "tensorrt"), os.path.join(path, "export", "tensorrt")):
        if os.path.isfile(os.path.join(folder, "build_spec.json")):
            return folder
    raise UserError(f"{path}: not a TensorRT export (expected build_spec.json in it, in its tensorrt/ or in its "
                    f"export/tensorrt/ folder); "
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


def _route(folder: str, spec: dict, precision: str, int8_mode: str | None) -> dict | str:
    """How this TensorRT builds `precision` from the export: {"onnx", "fp16", "int8", "strongly_typed",
    "quantization"}, or why it cannot (a str). INT8 is explicit (the Q/DQ model) unless `int8_mode` says
    "implicit" or the export has no Q/DQ model."""
    major = tensorrt_major()
    plain = {"onnx": spec["onnx"], "fp16": False, "int8": False, "strongly_typed": False, "quantization": None}
    if precision == "fp32":
        return plain
    if precision == "fp16":
        return _removed_in_11("fp16 builder flag") if major >= 11 else {**plain, "fp16": True}
    explicit = spec["calibration"].get("explicit") or {}
    if int8_mode not in (None, *INT8_MODES):
        raise UserError(f"--int8 must be one of {', '.join(INT8_MODES)}, got {int8_mode!r}")
    if int8_mode == "explicit" or (int8_mode is None and explicit.get("onnx")):
        if not explicit.get("onnx"):
            raise UserError(f"{folder}: this export has no Q/DQ model for explicit INT8 "
                            f"({explicit.get('reason', 'exported before ppipe wrote one')})")
        return {**plain, "onnx": explicit["onnx"], "strongly_typed": True,
                "quantization": f"explicit: {explicit['onnx']}"}
    if major >= 11:
        return _removed_in_11("implicit INT8 calibration")
    return {**plain, "fp16": True, "int8": True, "quantization": "implicit"}


def deploy_tensorrt(path: str, precision: str | None = None, int8_mode: str | None = None) -> dict:
    """Build and check the engine of the export at `path`; serialise it (``<folder>/engine_<precision>.plan``,
    atomically) only when its logits pass. INT8 (`int8_mode`): "explicit" builds the export's Q/DQ model,
    "implicit" calibrates the FP32 model in TensorRT 10 (from the export's cache, else its images); by default
    explicit where the export has a Q/DQ model.

    Returns ``{"status": "built"|"skipped"|"failed", "reason", "engine", "precision", "check", "measurements"}``;
    "skipped" where TensorRT, a GPU, or this TensorRT's support for the precision is missing."""
    folder = find_tensorrt_folder(os.fspath(path))
    spec = load_build_spec(folder)
    precision = require_precision(precision or spec["precision"])
    result = {"status": "skipped", "reason": "", "precision": precision, "engine": None, "check": {},
              "measurements": {}}
    unavailable = tensorrt_unavailable()
    if unavailable is not None:
        return {**result, "reason": f"the TensorRT engine was not built: {unavailable}"}
    route = _route(folder, spec, precision, int8_mode)
    if isinstance(route, str):
        return {**result, "reason": f"the TensorRT engine was not built: {route}"}
    from polygraphy.backend.trt import bytes_from_engine

    calibrator, calibration = _int8_calibrator(folder, spec) if route["int8"] else (None, None)
    engine = build_engine(os.path.join(folder, route["onnx"]), spec["shapes"], spec["workspace_bytes"],
                          fp16=route["fp16"], int8=route["int8"], strongly_typed=route["strongly_typed"],
                          calibrator=calibrator, input_name=spec["input"])
    check, measurements = _run_and_check(engine, folder, spec, precision)
    if route["quantization"]:
        check["quantization"] = route["quantization"]
    if calibration:
        check["calibration"] = calibration
    if not check["passed"]:  # no plan file: one lying beside the spec would look like a usable engine
        return {**result, "status": "failed", "check": check, "measurements": measurements,
                "reason": f"engine logits disagree with the dygraph model: max_rel_err {check['max_rel_err']:.3e} "
                          f"> rtol {check['rtol']:.1e}; no engine written"}
    engine_path = os.path.join(folder, f"engine_{precision}.plan")
    write_bytes_atomic(engine_path, bytes_from_engine(engine))  # never a half-written plan beside the spec
    return {**result, "status": "built", "engine": engine_path, "check": check, "measurements": measurements}
