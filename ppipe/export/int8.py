"""INT8 quantization with `paddle.quantization` and the `paddle-inference-mkldnn-int8` target.

    from ppipe.export.int8 import quantize_for_training, convert_after_training
    qmodel = quantize_for_training(model, cfg.Quantization)   # QAT: fake-quant layers, train as usual
    ...
    int8_model = convert_after_training(qmodel)               # quantize/dequantize ops with the learnt scales

The target calibrates the reparameterized model on `ExportContext.calibration` (PTQ, abs-max observers), or
takes the scales of a QAT model, converts it to quantize/dequantize form, saves it as a legacy program
(Paddle 3.3.1's oneDNN INT8 passes work on legacy programs only), runs it in Paddle Inference with
oneDNN INT8, and records the top-1/top-5 change against the FP32 export on the val batches. What runs and what
does not on Paddle 3.3.1 is recorded in docs/export.md.
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
from ppipe.quantization import (convert_after_training, convert_observed, is_quantized_for_training, quant_config,
                                quantize_for_training)

__all__ = ["INT8_TARGET", "quant_config", "quantize_for_training", "convert_after_training", "calibrate",
           "is_quantized_for_training", "topk_of", "paddle_inference_mkldnn_int8"]

INT8_TARGET = "paddle-inference-mkldnn-int8"


def calibrate(model, batches: Iterable[np.ndarray], quantization: Any = None):
    """PTQ: `model` (eval mode, reparameterized) observed on `batches` and converted to quantize/dequantize
    form. Raises `ExportError` when no batch came."""
    import paddle
    from paddle.quantization import PTQ

    ptq = PTQ(quant_config(quantization, observe=True))
    observed = ptq.quantize(copy.deepcopy(model), inplace=True)
    observed.eval()
    seen = 0
    with paddle.no_grad():
        for images in batches:
            observed(paddle.to_tensor(np.asarray(images, np.float32)))
            seen += len(images)
    if not seen:
        raise ExportError("INT8 calibration saw no images")
    return convert_observed(ptq, observed), seen


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
    """PTQ (or QAT scales) -> quantize/dequantize PIR program -> oneDNN INT8 predictor; accuracy change on val."""
    if is_quantized_for_training(ctx.model):
        quantized, seen = convert_after_training(copy.deepcopy(ctx.model), ctx.quantization), 0
    elif ctx.calibration is None:
        return TargetResult(INT8_TARGET, "skipped", reason="no calibration images (give the prepared dataset)")
    else:
        quantized, seen = calibrate(ctx.model, ctx.calibration(), ctx.quantization)
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
            record = {"calibration_images": seen, "fp32": ref, "int8": got,
                      "top1_change": got["top1"] - ref["top1"], "top5_change": got["top5"] - ref["top5"],
                      "max_top1_drop": max_drop}
            if ref["top1"] - got["top1"] > max_drop:
                raise ExportError(f"INT8 loses {ref['top1'] - got['top1']:.4f} top-1 (> {max_drop}): {record}")
            return record

        return predictor_target(ctx, INT8_TARGET, tmp,
                                shipped_settings(ctx.settings, ctx.reference_dir, int8=True), check)
