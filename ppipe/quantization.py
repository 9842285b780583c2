"""INT8 quantization of a model with `paddle.quantization`: the fake-quantized model quantization-aware training
(QAT) trains, the observed model post-training quantization (PTQ) calibrates, and their conversion to
quantize/dequantize form, which the INT8 export target runs with oneDNN.

    from ppipe.quantization import quantize_for_training, convert_after_training
    qat_model = quantize_for_training(model, cfg.Quantization)   # train it as usual (build_model does this)
    int8_model = convert_after_training(qat_model)               # quantize/dequantize ops, the learnt scales

Training and export both use it (training wraps the model when `Quantization.mode: qat`; export re-wraps the
trained weights to find the learnt scales), so it sits below both. Jacob et al., "Quantization and Training of
Neural Networks for Efficient Integer-Arithmetic-Only Inference" (CVPR 2018, arXiv:1712.05877).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["quant_config", "qat_enabled", "quantize_for_training", "convert_after_training", "convert_observed",
           "keep_sensitive_layers_fp32", "is_quantized_for_training", "load_qat_weights"]


def quant_config(quantization: Any = None, *, observe: bool = False):
    """A `paddle.quantization.QuantConfig` for `quantization` (a `Quantization` section; None: 8 bits).
    `observe`: observers for PTQ calibration instead of QAT's fake quanters."""
    from paddle.quantization import QuantConfig
    from paddle.quantization.observers import AbsmaxObserver
    from paddle.quantization.quanters import FakeQuanterWithAbsMaxObserver

    from ppipe.quantization_observers import MseObserver

    import paddle

    w_bits = int(getattr(quantization, "weight_bits", 8))
    a_bits = int(getattr(quantization, "activation_bits", 8))
    if observe:
        # activations: the least-error threshold, not the abs-max an outlier sets (ppipe.quantization_observers);
        # weights: oneDNN re-quantizes them per channel, the observer only satisfies Paddle's converter
        activation, weight = MseObserver(quant_bits=a_bits), AbsmaxObserver(quant_bits=w_bits)
    else:
        rate = float(getattr(quantization, "moving_rate", 0.9))
        activation = FakeQuanterWithAbsMaxObserver(moving_rate=rate, bit_length=a_bits)
        weight = FakeQuanterWithAbsMaxObserver(moving_rate=rate, bit_length=w_bits)
    # Only the layers oneDNN runs in INT8 (PaddleSlim's default `conv2d`, `depthwise_conv2d`, `mul`): a global
    # config would also wrap every batch norm and activation, renaming their parameters and adding a
    # quantize/dequantize pair after each; oneDNN takes the other scales it needs from these inputs'.
    config = QuantConfig(activation=None, weight=None)
    config.add_type_config([paddle.nn.Conv2D, paddle.nn.Linear], activation=activation, weight=weight)
    return config


def qat_enabled(quantization: Any) -> bool:
    """Whether a `Quantization` section (None: no section) asks for quantization-aware training."""
    return quantization is not None and getattr(quantization, "mode", "ptq") == "qat"


def quantize_for_training(model, quantization: Any = None):
    """QAT: a copy of `model` whose `nn.Conv2D` and `nn.Linear` layers quantize their weights and inputs in the
    forward pass (straight-through gradients). The training loop trains it like the FP32 model; the original
    layer is left as it was. Paddle swaps layers by their exact class, so wrap before anything changes the
    layers' classes (ppipe's CPU training kernels)."""
    from paddle.quantization import QAT

    model = copy.deepcopy(model)
    model.train()  # paddle.quantization.QAT refuses a model in eval mode
    return QAT(quant_config(quantization)).quantize(model, inplace=True)


def convert_after_training(qat_model, quantization: Any = None):
    """The trained QAT model in quantize/dequantize form, with the scales it learnt, in eval mode (a copy)."""
    import paddle
    from paddle.quantization import QAT

    qat_model = copy.deepcopy(qat_model)
    qat_model.eval()
    for layer in qat_model.sublayers():
        # Paddle 3.3.1: the abs-max fake quanter reports its zero point as None, and the converter then fails
        # building a tensor from it; symmetric quantization's zero point is 0.
        if type(layer).__name__ == "FakeQuanterWithAbsMaxObserverLayer" and layer.zero_points() is None:
            layer.zero_points = lambda layer=layer: paddle.zeros_like(layer.scales())
    return convert_observed(QAT(quant_config(quantization)), qat_model)


def convert_observed(quantizer, observed):
    """`observed` (quantized by `quantizer`, a `paddle.quantization` QAT or PTQ) in quantize/dequantize form for
    Paddle Inference's oneDNN INT8 passes: the activations carry the observed (PTQ) or learnt (QAT) scales, the
    weights stay float32 with no quantize/dequantize pair of their own, and oneDNN quantizes them per output
    channel after it has folded batch norm into them.

    Why not Paddle's default form, where the weights are integers with a `dequantize_linear` (docs/export.md):
    `quant_dequant_onednn_pass` reads such a weight as int8 *storage*, so integers in a float32 tensor reach
    it reinterpreted byte by byte (top-1 at chance); and a weight that keeps its own pair (`remain_weight`)
    pins its per-tensor scale from before the batch-norm folding, which `compute_propagate_scales_onednn_pass`
    never replaces (top-1 0.93 -> 0.74 on the digits model)."""
    with warnings.catch_warnings():
        # Paddle's own LinearQuanter copies each observer's scale tensor with paddle.to_tensor, which warns once
        # per conversion on the user's console; the copy is what is wanted here
        warnings.filterwarnings("ignore", message="To copy construct from a tensor", category=UserWarning)
        converted = quantizer.convert(observed, inplace=True, remain_weight=True)
    for layer in converted.sublayers(include_self=True):
        for _weight, quanter in getattr(layer, "weights_to_quanters", lambda: [])():
            setattr(layer, quanter, None)
    return converted


def keep_sensitive_layers_fp32(quantized, reference, images: np.ndarray, max_error: float) -> list[str]:
    """Mixed precision for a converted model: each layer's input quantization is tried alone on `images`, and
    the layers whose logits then differ from `reference`'s (the FP32 model) by more than `max_error` (mean
    squared difference over the mean squared logit) lose their quantize/dequantize pair, so oneDNN runs them in
    FP32. Returns their names.

    Why: a per-tensor scale cannot serve a depthwise convolution whose input has one channel far larger than
    the others; the small channels fall on a few levels, and nothing mixes them back. Alone, such a layer of
    the quickstart's PP-LCNet moves the logits by 0.2 (and its top-1 from 0.944 to 0.81); every other layer by
    less than 0.0015."""
    import paddle

    x = paddle.to_tensor(np.asarray(images, np.float32))
    pairs = {name: layer.activation_quanter for name, layer in quantized.named_sublayers()
             if getattr(layer, "activation_quanter", None) is not None}
    layers = dict(quantized.named_sublayers())
    with paddle.no_grad():
        ref = reference(x).numpy().astype(np.float64)
        for name in pairs:
            layers[name].activation_quanter = None
        errors = {}
        for name, pair in pairs.items():
            layers[name].activation_quanter = pair
            errors[name] = float(np.mean((quantized(x).numpy() - ref) ** 2) / max(np.mean(ref ** 2), 1e-30))
            layers[name].activation_quanter = None
    kept = [name for name, error in errors.items() if error > max_error]
    for name, pair in pairs.items():
        if name not in kept:
            layers[name].activation_quanter = pair
    return kept


def is_quantized_for_training(model) -> bool:
    """Whether `model` carries QAT's fake quanters (`quantize_for_training`)."""
    return any("Quanter" in type(layer).__name__ for layer in model.sublayers())


def load_qat_weights(model, weights: str | os.PathLike | Mapping, quantization: Any = None):
    """The QAT model a `Quantization.mode: qat` run trained: `model` (the architecture, fresh) wrapped by
    `quantize_for_training` with `weights` (the run's state dict, a path or a mapping: weights and learnt
    scales) loaded. `model`
    itself receives the same float weights, so it is the run's FP32 model. A mismatch (weights not trained
    with QAT) raises `ppipe.models.weights.CheckpointMismatchError` naming the keys."""
    from ppipe.models.weights import load_pretrained

    qat = quantize_for_training(model, quantization)
    load_pretrained(qat, weights, drop_classifier=False)
    trained, fp32 = qat.state_dict(), set(model.state_dict())
    missing = sorted(fp32 - set(trained))
    if missing:  # the wrapping renamed a parameter: the FP32 model would keep its fresh initialisation
        raise ValueError(f"the QAT model has no {', '.join(missing[:5])} for the FP32 model")
    model.set_state_dict({k: v for k, v in trained.items() if k in fp32})
    return qat
