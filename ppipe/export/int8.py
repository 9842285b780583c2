"""The `paddle-inference-mkldnn-int8` target: Paddle Inference's oneDNN INT8 kernels on a quantized model.

    from ppipe.export.int8 import calibrate, save_int8_program
    quantized, seen = calibrate(model, calibration_batches(...))   # PTQ, abs-max observers
    save_int8_program(quantized, "out/int8", (3, 224, 224))          # model.pdmodel + model.pdiparams

The target calibrates the reparameterized model on `ExportContext.calibration` (PTQ), or takes the scales a
QAT run learnt (`ExportContext.qat_model`, `ppipe.quantization`), converts it to quantize/dequantize form
(activations only: oneDNN quantizes the weights itself), saves it as a legacy program (Paddle 3.3.1's oneDNN
INT8 passes work on legacy programs only), runs it in Paddle Inference with oneDNN INT8, and records the
top-1/top-5 change against the FP32 export on the val batches. What was tried on Paddle 3.3.1, and what each
attempt gave, is recorded in docs/export.md.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ppipe import inference as _inference
from ppipe.export.paddle_inference import ExportError, predictor_target, shipped_settings
from ppipe.export.targets import TARGETS, ExportContext, TargetResult
from ppipe.metrics import topk_correct
from ppipe.quantization import convert_after_training, convert_observed, keep_sensitive_layers_fp32, quant_config

__all__ = ["INT8_TARGET", "calibrate", "save_int8_program", "topk_of", "paddle_inference_mkldnn_int8"]

INT8_TARGET = "paddle-inference-mkldnn-int8"


def calibrate(model, batches: Iterable[np.ndarray], quantization: Any = None):
    """PTQ: `model` (eval mode, reparameterized) observed on `batches` and converted to quantize/dequantize form,
    the layers too sensitive to quantize left FP32 (`keep_sensitive_layers_fp32` on the first batch, with
    `Quantization.max_layer_error`). Returns (the model, images seen, names of the FP32 layers); raises
    `ExportError` when no batch came."""
    import paddle
    from paddle.quantization import PTQ

    ptq = PTQ(quant_config(quantization, observe=True))
    observed = ptq.quantize(copy.deepcopy(model), inplace=True)
    observed.eval()
    seen, first = 0, None
    with paddle.no_grad():
        for images in batches:
            observed(paddle.to_tensor(np.asarray(images, np.float32)))
            seen += len(images)
            first = images if first is None else first
    if not seen:
        raise ExportError("INT8 calibration saw no images")
    quantized = convert_observed(ptq, observed)
    max_error = float(getattr(quantization, "max_layer_error", 0.01))
    return quantized, seen, keep_sensitive_layers_fp32(quantized, model, first, max_error)


class GateRefused(ExportError):
    """The INT8 model loses more top-1 than the gate allows; `check` is the gate's record (both models' top-1/top-5
    on the same val images), which the export keeps in the failed target's entry."""

    def __init__(self, message: str, check: dict):
        super().__init__(message)
        self.check = check


def topk_of(run: Callable[[np.ndarray], np.ndarray],
            batches: Iterable[tuple[np.ndarray, np.ndarray]], ks=(1, 5)) -> dict[str, float]:
    """{"top1", "top5", "num_images"} of ``run(images) -> logits`` on labelled batches."""
    counts = {k: 0.0 for k in ks}
    n = 0
    for images, labels in batches:
        logits = np.asarray(run(images))
        kk = tuple(k for k in ks if k <= logits.shape[1])
        for k, c in topk_correct(logits, np.asarray(labels), kk).items():
            counts[k] += c
        n += len(labels)
    if not n:
        raise ExportError("the INT8 accuracy check saw no labelled images")
    return {**{f"top{k}": counts[k] / n for k in ks}, "num_images": n}


def save_int8_program(quantized, directory: str, input_shape: tuple[int, int, int]) -> None:
    """Save a converted (quantize/dequantize) layer as a legacy program, ``model.pdmodel`` + ``model.pdiparams``.

    Paddle 3.3.1's oneDNN INT8 passes (quant_dequant_onednn_pass, cpu_quantize_pass, ...) exist only for
    legacy programs; a PIR program of the same layer saves only at a fixed batch and then fails to load in the
    predictor ("Tensor holds no memory"); see docs/export.md."""
    from ppipe.export.legacy import LegacyExportError, export_legacy_model

    # The one legacy exporter: a subprocess with Paddle's legacy tracer, where the functions Paddle 3.3.1 sank to
    # PIR-only C++ calls (multiply in squeeze-excitation blocks, ...) get their legacy branch back.
    try:
        export_legacy_model(quantized, directory, input_shape)
    except LegacyExportError as e:
        raise ExportError(f"saving the quantized model as a legacy program failed: {e}") from e
    info = os.path.join(directory, "model.pdiparams.info")  # a training-only file; the predictor ignores it
    if os.path.exists(info):
        os.remove(info)


@TARGETS.register(name=INT8_TARGET)
def paddle_inference_mkldnn_int8(ctx: ExportContext) -> TargetResult:
    """PTQ (or a QAT model's learnt scales) -> quantize/dequantize legacy program -> oneDNN INT8 predictor, refused
    when its top-1 on the val batches falls more than `Export.int8_max_top1_drop` below the FP32 export's."""
    if ctx.qat_model is not None:
        quantized, source = convert_after_training(ctx.qat_model, ctx.quantization), {"scales": "qat"}
    elif ctx.calibration is None:
        return TargetResult(INT8_TARGET, "skipped", reason="no calibration images (give the prepared dataset)")
    else:
        quantized, seen, fp32_layers = calibrate(ctx.model, ctx.calibration(), ctx.quantization)
        source = {"scales": "ptq", "calibration_images": seen, "fp32_layers": fp32_layers}
    max_drop = float(getattr(ctx.settings, "int8_max_top1_drop", 0.01))
    with tempfile.TemporaryDirectory(dir=ctx.out_root, prefix=".int8-") as tmp:
        save_int8_program(quantized, tmp, ctx.input_shape)
        fp32 = _inference.create_predictor(ctx.reference_dir,
                                           settings=shipped_settings(ctx.settings, ctx.reference_dir))

        def check(predictor) -> dict:
            if ctx.evaluation is None:
                raise ExportError("no val batches to measure the INT8 accuracy change on")
            ref = topk_of(lambda x: _inference.predict(fp32, x), ctx.evaluation())
            got = topk_of(lambda x: _inference.predict(predictor, x), ctx.evaluation())
            record = {**source, "fp32": ref, "int8": got, "top1_change": got["top1"] - ref["top1"],
                      "top5_change": got["top5"] - ref["top5"], "max_top1_drop": max_drop}
            if ref["top1"] - got["top1"] > max_drop:
                raise GateRefused(f"INT8 loses {ref['top1'] - got['top1']:.4f} top-1 (> {max_drop}): {record}", record)
            return record

        return predictor_target(ctx, INT8_TARGET, tmp,
                                shipped_settings(ctx.settings, ctx.reference_dir, int8=True), check)
