"""``build_spec.json``: how a GPU node builds a TensorRT engine from a `tensorrt` export folder.

One owner for the format, since two sides meet in it: the export writes it (`build_spec`, from
`ppipe.export.tensorrt`, on a machine that usually has no GPU) and ``ppipe deploy tensorrt`` reads it
(`load_build_spec`, from `ppipe.export.tensorrt_engine`, on the GPU node, possibly from another ppipe version).

    {"format": "ppipe-tensorrt-build/1", "onnx": "model.onnx", "input": "x",
     "shapes": {"min": [1, C, H, W], "opt": [8, C, H, W], "max": [32, C, H, W]},
     "precision": "fp16", "precisions": ["fp32", "fp16", "int8"], "workspace_bytes": 1073741824,
     "calibration": {"kind": ..., "explicit": {"onnx": "model_int8_qdq.onnx" or null, ...}, ...},
     "rtol": {"fp32": 1e-3, "fp16": 2e-2, "int8": 0.2},
     "check": {"inputs": "check_inputs.npy", "logits": "reference_logits.npy"}}
"""

from __future__ import annotations

import json
import os

from ppipe.errors import UserError

__all__ = ["SPEC_FORMAT", "PRECISIONS", "INPUT", "BATCH_SHAPES", "WORKSPACE_BYTES", "ENGINE_RTOL", "engine_shapes",
           "build_spec", "load_build_spec", "require_precision"]

SPEC_FORMAT = "ppipe-tensorrt-build/1"
PRECISIONS = ("fp32", "fp16", "int8")
INPUT = "x"  # the ONNX input's name in ppipe's exports
BATCH_SHAPES = {"min": 1, "opt": 8, "max": 32}  # opt is also the calibration batch (TensorRT calibrates at opt)
WORKSPACE_BYTES = 1 << 30
# what an engine's logits may differ from the dygraph logits by (max|a-b|/max|b|), per precision
ENGINE_RTOL = {"fp32": 1e-3, "fp16": 2e-2, "int8": 2e-1}


def engine_shapes(input_shape) -> dict[str, list[int]]:
    """The optimisation profile's min/opt/max [N, C, H, W] for one image's [C, H, W]."""
    return {k: [b, *map(int, input_shape)] for k, b in BATCH_SHAPES.items()}


def build_spec(input_shape, calibration: dict, precision: str = "fp16") -> dict:
    """The engine build specification written as ``build_spec.json``."""
    return {"format": SPEC_FORMAT, "onnx": "model.onnx", "input": INPUT, "shapes": engine_shapes(input_shape),
            "precision": precision, "precisions": list(PRECISIONS), "workspace_bytes": WORKSPACE_BYTES,
            "calibration": calibration, "rtol": ENGINE_RTOL,
            "check": {"inputs": "check_inputs.npy", "logits": "reference_logits.npy"}}


def require_precision(precision) -> str:
    """`precision` when it is one of PRECISIONS; a UserError saying which are, otherwise."""
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def load_build_spec(folder: str) -> dict:
    """``<folder>/build_spec.json``, checked before any engine is built: a spec a GPU node cannot follow (edited
    by hand, truncated, from another tool) is a UserError naming the file and the field, not a KeyError after
    minutes of building."""
    path = os.path.join(folder, "build_spec.json")
    try:
        with open(path) as f:
            spec = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable JSON build specification ({e})") from e
    problem = _spec_problem(spec, folder)
    if problem:
        raise UserError(f"{path}: {problem}; export again with `ppipe export CONFIG --targets tensorrt`")
    return spec


def _spec_problem(spec, folder: str) -> str | None:
    """What makes `spec` one a GPU node cannot follow (the first thing found), or None."""
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        found = spec.get("format") if isinstance(spec, dict) else type(spec).__name__
        return f"format is {found!r}, expected {SPEC_FORMAT!r}"
    problem = _shapes_problem(spec.get("shapes"))
    if problem:
        return problem
    if spec.get("precision") not in PRECISIONS:
        return f"precision must be one of {', '.join(PRECISIONS)}, got {spec.get('precision')!r}"
    rtol = spec.get("rtol")
    if not (isinstance(rtol, dict) and all(_positive(rtol.get(p), (int, float)) for p in PRECISIONS)):
        return f"rtol must give a positive tolerance for each of {', '.join(PRECISIONS)}, got {rtol!r}"
    if not _positive(spec.get("workspace_bytes"), int):
        return f"workspace_bytes must be a positive integer, got {spec.get('workspace_bytes')!r}"
    if not isinstance(spec.get("input"), str) or not isinstance(spec.get("calibration"), dict):
        return "input (the ONNX input's name) and calibration (an object) are required"
    check = spec.get("check")
    files = {"onnx": spec.get("onnx"), **({f"check.{k}": check.get(k) for k in ("inputs", "logits")}
                                          if isinstance(check, dict) else {"check": None})}
    explicit = spec["calibration"].get("explicit")
    if explicit is not None:
        if not isinstance(explicit, dict) or not isinstance(explicit.get("onnx"), (str, type(None))):
            return f"calibration.explicit must be an object whose onnx is a file name or null, got {explicit!r}"
        if explicit.get("onnx") is not None:
            files["calibration.explicit.onnx"] = explicit["onnx"]
    for field, name in files.items():
        if not isinstance(name, str) or not os.path.isfile(os.path.join(folder, name)):
            return f"{field} must name a file in {folder}, got {name!r}"
    return None


def _shapes_problem(shapes) -> str | None:
    if not (isinstance(shapes, dict) and all(
            isinstance(shapes.get(k), list) and len(shapes[k]) == 4 and all(_positive(d, int) for d in shapes[k])
            for k in ("min", "opt", "max"))):
        return f"shapes must hold min, opt and max as [N, C, H, W] of positive integers, got {shapes!r}"
    if not shapes["min"][1:] == shapes["opt"][1:] == shapes["max"][1:] or \
            not shapes["min"][0] <= shapes["opt"][0] <= shapes["max"][0]:
        return f"shapes must differ only in the batch, with min <= opt <= max, got {shapes!r}"
    return None


def _positive(value, types) -> bool:
    """A JSON number of `types` above zero (a bool is no number here)."""
    return isinstance(value, types) and not isinstance(value, bool) and value > 0
