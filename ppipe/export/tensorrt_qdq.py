"""The tensorrt target's explicitly quantized model, ``model_int8_qdq.onnx``, made and checked on the CPU.

TensorRT builds INT8 engines two ways. Implicit quantization (the FP32 network, the INT8 builder flag and a
calibrator run on the GPU) is deprecated in TensorRT 10 and removed in 11. Explicit quantization takes its scales
from QuantizeLinear/DequantizeLinear (Q/DQ) nodes in the ONNX model and builds a strongly typed network without
precision flags: the only INT8 route in TensorRT 11, and the one whose accuracy can be known before a GPU is
involved, since ONNX Runtime computes the same quantized model here.

ONNX Runtime's static quantizer writes it from the calibration images, in the form TensorRT's ONNX parser takes:
- symmetric INT8 activations and weights (zero point 0: TensorRT's quantization is symmetric);
- weights per output channel, kept in float behind a Q/DQ pair (TensorRT quantizes them when it builds);
- biases kept in float (ONNX Runtime's INT32 bias dequantization has no TensorRT counterpart);
- Q/DQ on the inputs of the weighted layers (Conv, Gemm, MatMul), one pair per consumer, and never on their
  outputs: TensorRT's placement recommendation, which leaves each layer's fusion with what follows it to TensorRT.
  (ONNX Runtime's default also quantizes outputs, which quantizes the next layer's input even where that layer
  is left in float: on a MobileNetV1 trained on the digits, top-1 0.55 against 0.67 without, FP32 0.71.)
- depthwise convolutions and the layers `sensitive_nodes` finds left in float (no Q/DQ), so TensorRT runs them in
  float: a per-tensor scale cannot serve a depthwise convolution's input well (its channels are never mixed, so
  the small ones keep the few levels a large one leaves them). The same MobileNetV1: 0.73 with its depthwise
  convolutions in float, 0.67 with only the one sensitive layer; the quickstart's PP-LCNet 0.942 and 0.919 (FP32
  0.947). The depthwise layers are a small share of a model's arithmetic.

`check_qdq` runs it with ONNX Runtime before it is shipped: logits within the INT8 engine tolerance of the
dygraph model's, and, with val batches, top-1 within `Export.int8_max_top1_drop` of the FP32 ONNX model's.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator

import numpy as np

from ppipe.export.logits_check import max_relative_error
from ppipe.export.targets import ExportContext
from ppipe.export.tensorrt_spec import BATCH_SHAPES, ENGINE_RTOL, INPUT

__all__ = ["QDQ_ONNX", "OP_TYPES", "calibrate", "tensor_ranges", "fold_for_quantization", "depthwise_nodes",
           "sensitive_nodes", "quantize", "check_qdq", "top1_of", "write_qdq"]

QDQ_ONNX = "model_int8_qdq.onnx"
SENSITIVITY_IMAGES = 16
SEARCH_SECONDS = 60.0  # Export.qdq_search_seconds' default: the sensitive-layer search's time budget
OP_TYPES = ("Conv", "Gemm", "MatMul")
# ONNX Runtime's quantizer options for TensorRT (see the module docstring); MatMul's weight [K, N] is per channel
# along its output axis 1, Conv's and Gemm's along ONNX Runtime's default 0
_EXTRA_OPTIONS = {"ActivationSymmetric": True, "WeightSymmetric": True, "AddQDQPairToWeight": True,
                  "QuantizeBias": False, "DedicatedQDQPair": True, "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
                  "OpTypesToExcludeOutputQuantization": list(OP_TYPES)}


def calibrate(onnx_path: str, images: np.ndarray, batch: int = BATCH_SHAPES["opt"]):
    """ONNX Runtime's MinMax calibration of every tensor of the ONNX model over `images`: its `TensorsData`, read
    by both `tensor_ranges` and `quantize` (one pass over the images)."""
    from onnxruntime.quantization.calibrate import CalibrationDataReader, CalibrationMethod, create_calibrator

    class Images(CalibrationDataReader):
        def __init__(self):
            self.chunks = iter(np.array_split(images, max(1, -(-len(images) // batch))))

        def get_next(self):
            chunk = next(self.chunks, None)
            return None if chunk is None else {INPUT: chunk}

    with tempfile.TemporaryDirectory(prefix="ppipe-ort-calib-") as tmp, _quiet_onnxruntime():
        calibrator = create_calibrator(onnx_path, augmented_model_path=os.path.join(tmp, "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        calibrator.collect_data(Images())
        return calibrator.compute_data()


def tensor_ranges(tensors_data) -> dict[str, dict[str, float]]:
    """{tensor name: {"min", "max", "amax"}} of a calibration; `amax` (``max(|min|, |max|)``) is the symmetric
    range TensorRT's ``ITensor.set_dynamic_range(-amax, amax)`` takes."""
    ranges = {}
    for name, value in tensors_data.items():
        lo, hi = (float(np.asarray(v).reshape(-1)[0]) for v in value.range_value)
        ranges[name] = {"min": lo, "max": hi, "amax": max(abs(lo), abs(hi))}
    return ranges


@contextlib.contextmanager
def _quiet_onnxruntime():
    """ONNX Runtime's quantization tools without their console noise: an INFO line per step through the Python
    logger (Paddle's root handler prints it), and C++ warnings from the sessions they open themselves
    (shape-merge notices on every interpolation of HRNet, ...). Errors still show."""
    import logging

    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # process-wide; ppipe's own sessions already log errors only
    quiet = logging.getLogger("onnxruntime.quantization")
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        yield
    finally:
        quiet.setLevel(level)


def fold_for_quantization(onnx_path: str, out_path: str) -> None:
    """The FP32 model with its batch normalisations folded into the convolutions (ONNX Runtime's quantization
    pre-processing: ONNX shape inference and ONNX Runtime's basic, ONNX-only graph optimisations): the weights
    quantized are then the ones TensorRT runs, not ones a normalisation after them rescales. ONNX Runtime's
    symbolic shape inference is skipped: it gives up on ViT and TNT ("Incomplete symbolic shape inference"),
    leaving ``sym_shape_infer_temp.onnx`` and its weights in the current directory when it does."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet_onnxruntime():
        quant_pre_process(onnx_path, out_path, skip_symbolic_shape=True)


def _fake_quantized(model, node, amax: float):
    """`model` with only `node`'s input quantized (scale amax/127, zero point 0), as bytes; `model` unchanged."""
    from onnx import helper, numpy_helper

    tensor, at = node.input[0], list(model.graph.node).index(node)
    scale = numpy_helper.from_array(np.array(max(amax, 1e-12) / 127, np.float32), f"{tensor}_ppipe_scale")
    zero = numpy_helper.from_array(np.array(0, np.int8), f"{tensor}_ppipe_zero")
    q = helper.make_node("QuantizeLinear", [tensor, scale.name, zero.name], [f"{tensor}_ppipe_q"])
    dq = helper.make_node("DequantizeLinear", [q.output[0], scale.name, zero.name], [f"{tensor}_ppipe_dq"])
    model.graph.initializer.extend([scale, zero])
    model.graph.node.insert(at, dq)
    model.graph.node.insert(at, q)
    node.input[0] = dq.output[0]
    try:
        return model.SerializeToString()
    finally:
        node.input[0] = tensor
        del model.graph.node[at:at + 2]
        del model.graph.initializer[-2:]


def depthwise_nodes(model) -> list[str]:
    """The depthwise convolutions of the ONNX `model` (one input channel per group, more than one group)."""
    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "Conv" and len(shapes.get(n.input[1], ())) == 4
            and shapes[n.input[1]][1] == 1 and next((a.i for a in n.attribute if a.name == "group"), 1) > 1]


def sensitive_nodes(onnx_path: str, tensors_data, images: np.ndarray, max_error: float, skip=(),
                    budget_s: float = SEARCH_SECONDS) -> tuple[dict[str, float], dict]:
    """The weighted layers (but those named in `skip`) whose input quantization alone moves the logits on
    `images` by more than `max_error` (mean squared difference over the mean squared logit, as
    `ppipe.quantization.keep_sensitive_layers_fp32` measures the oneDNN INT8 target's layers): ({node name:
    error}, {"searched": layers tried, "layers": candidates, "budget_s"}). They are left without Q/DQ, so
    TensorRT runs them in float. Each layer costs a session of the whole model (HRNet-W18: 326 layers, ~0.3 s
    each here), so the search stops after `budget_s` seconds (0: tries none), widest input range first: a range
    an outlier widened is what makes a layer sensitive."""
    import time

    import onnx
    import onnxruntime as ort

    from ppipe.export.onnx import run_onnx

    model = onnx.load(onnx_path)
    ranges, weights = tensor_ranges(tensors_data), {i.name for i in model.graph.initializer}
    images = np.ascontiguousarray(images, dtype=np.float32)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # half the creation time
    options.intra_op_num_threads, options.log_severity_level = 1, 3

    def logits(proto) -> np.ndarray:
        session = ort.InferenceSession(proto, options, providers=["CPUExecutionProvider"])
        return np.asarray(run_onnx(session, images), np.float64)

    candidates = sorted((n for n in model.graph.node if n.op_type in OP_TYPES and n.name not in skip
                         and n.input[0] in ranges and n.input[0] not in weights),
                        key=lambda n: -ranges[n.input[0]]["amax"])
    errors, deadline = {}, time.monotonic() + budget_s
    reference = logits(model.SerializeToString()) if candidates and budget_s > 0 else None
    power = max(float(np.mean(reference ** 2)), 1e-30) if reference is not None else 1.0
    for node in candidates if reference is not None else ():
        if time.monotonic() >= deadline:
            break
        got = logits(_fake_quantized(model, node, ranges[node.input[0]]["amax"]))
        errors[node.name] = float(np.mean((got - reference) ** 2)) / power
    search = {"searched": len(errors), "layers": len(candidates), "budget_s": budget_s}
    return {name: error for name, error in errors.items() if error > max_error}, search


def quantize(onnx_path: str, out_path: str, tensors_data, exclude=()) -> None:
    """Write the Q/DQ model of the FP32 ONNX model at `onnx_path` to `out_path`, with the scales of `tensors_data`
    (`calibrate`); the nodes named in `exclude` stay in float."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationMethod, save_tensors_data

    with tempfile.TemporaryDirectory(prefix="ppipe-qdq-") as tmp, _quiet_onnxruntime():
        cache = os.path.join(tmp, "ranges.json")  # quantize_static takes a computed calibration only as a file
        save_tensors_data(tensors_data, cache)
        quantize_static(onnx_path, out_path, None, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(OP_TYPES), nodes_to_exclude=list(exclude),
                        calibrate_method=CalibrationMethod.MinMax, calibration_cache_path=cache,
                        extra_options=dict(_EXTRA_OPTIONS))


def check_qdq(qdq_path: str, check_inputs: np.ndarray, reference_logits: np.ndarray,
              evaluation: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]] | None,
              max_top1_drop: float, fp32_top1: dict | None = None) -> dict:
    """The Q/DQ model run by ONNX Runtime: {"max_rel_err", "rtol", "passed", "reason", and with `evaluation`
    "fp32"/"int8" top-1 on the val batches, "top1_change", "max_top1_drop"}. `passed` is False when the logits are
    out of the INT8 tolerance or top-1 falls more than `max_top1_drop` below `fp32_top1` (the FP32 ONNX model's
    `top1_of`, required with `evaluation`)."""
    from ppipe.export.onnx import onnx_session, run_onnx

    session = onnx_session(qdq_path)
    rtol = ENGINE_RTOL["int8"]
    err = max_relative_error(np.asarray(run_onnx(session, check_inputs)), reference_logits)
    record = {"max_rel_err": float(err), "rtol": rtol, "runtime": "ONNX Runtime (CPU)"}
    reasons = [] if err <= rtol else [f"logits differ from the dygraph model's by {err:.3e} > rtol {rtol}"]
    if evaluation is None:
        record["accuracy"] = "not measured: no val batches were given to the export"
    else:
        int8 = top1_of(session, evaluation)
        drop = fp32_top1["top1"] - int8["top1"]
        record.update(fp32=fp32_top1, int8=int8, top1_change=-drop, max_top1_drop=max_top1_drop)
        if drop > max_top1_drop:
            reasons.append(f"top-1 falls by {drop:.4f} (> {max_top1_drop}) against the FP32 ONNX model")
    return {**record, "passed": not reasons, "reason": "; ".join(reasons)}


def top1_of(session, evaluation: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]) -> dict:
    """{"top1", "num_images"} of an ONNX Runtime session on the labelled val batches (the INT8 targets' scorer)."""
    from ppipe.export.int8 import topk_of
    from ppipe.export.onnx import run_onnx

    return topk_of(lambda images: run_onnx(session, images), evaluation(), ks=(1,))


def write_qdq(ctx: ExportContext, folder: str, images: np.ndarray, tensors_data) -> dict:
    """Make, check and write ``<folder>/model_int8_qdq.onnx`` from ``<folder>/model.onnx`` and its calibration
    (`calibrate` on `images`); returns the build spec's ``calibration.explicit`` entry: ``onnx`` names the file,
    or is None with the ``reason`` when the model was not written (its check failed, or ONNX Runtime could not
    make or run it). Depthwise convolutions stay in float; when the model fails its check, the layers
    `sensitive_nodes` finds on the first SENSITIVITY_IMAGES images (with `Quantization.max_layer_error`) are left
    in float too and the model is checked again (``sensitivity_search`` records how far the search got, null
    where it was not needed). Not searched up front: it costs a session per layer, and with the depthwise layers
    in float the trained models measured here needed none."""
    import onnx

    from ppipe.export.onnx import onnx_session

    fp32 = os.path.join(folder, "model.onnx")
    out = os.path.join(folder, QDQ_ONNX)
    max_error = float(getattr(ctx.quantization, "max_layer_error", 0.01))
    entry = {"onnx": None, "format": "QDQ", "calibration": "MinMax", "op_types": list(OP_TYPES),
             "max_layer_error": max_error}

    fp32_top1 = {}  # the FP32 model's top-1, scored once for both checks

    def checked() -> dict:
        if ctx.evaluation is not None and not fp32_top1:
            fp32_top1.update(top1_of(onnx_session(fp32), ctx.evaluation))
        return check_qdq(out, ctx.check_inputs, ctx.reference_logits, ctx.evaluation,
                         float(getattr(ctx.settings, "int8_max_top1_drop", 0.01)), fp32_top1)

    with tempfile.TemporaryDirectory(prefix="ppipe-qdq-") as tmp:
        folded = os.path.join(tmp, "folded.onnx")
        try:
            fold_for_quantization(fp32, folded)
            depthwise = depthwise_nodes(onnx.load(folded))
            quantize(folded, out, tensors_data, exclude=depthwise)
            check, fp32_nodes, search = checked(), {}, None
            if not check["passed"]:
                fp32_nodes, search = sensitive_nodes(
                    folded, tensors_data, images[:SENSITIVITY_IMAGES], max_error, skip=depthwise,
                    budget_s=float(getattr(ctx.settings, "qdq_search_seconds", SEARCH_SECONDS)))
                if fp32_nodes:
                    quantize(folded, out, tensors_data, exclude=[*depthwise, *fp32_nodes])
                    check = checked()
        except Exception as e:  # noqa: BLE001 - ONNX Runtime raises anything on a graph its quantizer cannot take
            if os.path.exists(out):
                os.remove(out)
            why = f"the Q/DQ model could not be made or checked: {type(e).__name__}: {e}"
            return {**entry, "reason": why[:500]}
    entry.update(depthwise_in_float=depthwise, sensitivity_search=search, fp32_nodes=fp32_nodes, check=check)
    if not check["passed"]:  # a Q/DQ model beside the spec would be built by the GPU node as if it were good
        os.remove(out)
        return {**entry, "reason": f"not shipped: {check['reason']}"}
    return {**entry, "onnx": QDQ_ONNX}
