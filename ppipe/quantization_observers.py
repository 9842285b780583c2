"""A post-training quantization observer for activations that is not thrown by outliers: the per-tensor threshold
that minimises the quantization error (mean squared) on the calibration data, as PaddleSlim's `algo="mse"` and
TensorRT's calibrators choose one, instead of the abs-max of everything seen.

    from ppipe.quantization_observers import MseObserver
    config.add_type_config([paddle.nn.Conv2D], activation=MseObserver(), weight=...)

Why: one rare large value sets the abs-max, and every other value of the tensor then falls on a handful of the
255 levels. The quickstart's PP-LCNet x0.25 (digits, 30 epochs) has one such input (blocks3.0's depthwise
convolution, abs-max 47 against ~10 elsewhere): quantizing it alone takes top-1 from 0.944 to 0.814 with
abs-max thresholds (docs/export.md).
"""

from __future__ import annotations

import numpy as np
import paddle
from paddle.quantization.base_observer import BaseObserver
from paddle.quantization.factory import ObserverFactory

__all__ = ["MseObserver", "mse_threshold"]

_CANDIDATES = np.linspace(0.02, 1.0, 99)  # thresholds tried, as fractions of the abs-max


def mse_threshold(values: np.ndarray, quant_bits: int = 8) -> float:
    """The symmetric threshold t (`values` quantized to round(v / t * qmax), clipped) with the least mean squared
    error on `values`, among fractions of their abs-max; 0 for all-zero `values`."""
    a = np.abs(np.asarray(values, np.float32)).ravel()
    top = float(a.max()) if a.size else 0.0
    if top <= 0:
        return 0.0
    qmax = 2 ** (quant_bits - 1) - 1
    errors = []
    for t in top * _CANDIDATES:
        q = np.minimum(np.round(a * (qmax / t)), qmax) * (t / qmax)
        errors.append(float(np.mean((q - a) ** 2)))
    return float(top * _CANDIDATES[int(np.argmin(errors))])


class MseObserver(ObserverFactory):
    """Per-tensor activation observer: keeps a seeded sample of each calibration batch's absolute values (at most
    `samples_per_batch`, always with the batch's maximum) and chooses `mse_threshold` over all of them."""

    def __init__(self, quant_bits: int = 8, samples_per_batch: int = 65536):
        super().__init__(quant_bits=quant_bits, samples_per_batch=samples_per_batch)

    def _get_class(self):
        return MseObserverLayer


class MseObserverLayer(BaseObserver):
    def __init__(self, layer, quant_bits: int = 8, samples_per_batch: int = 65536):
        super().__init__()
        self._quant_bits = quant_bits
        self._per_batch = samples_per_batch
        self._samples: list[np.ndarray] = []
        self._rng = np.random.default_rng(0)
        self._scale = None

    def forward(self, input):
        a = np.abs(input.numpy()).ravel()
        if a.size > self._per_batch:
            a = np.append(a[self._rng.integers(0, a.size, self._per_batch)], a.max())
        self._samples.append(a.astype(np.float32))
        self._scale = None
        return input

    def cal_thresholds(self) -> None:
        seen = np.concatenate(self._samples) if self._samples else np.zeros(1, np.float32)
        self._scale = paddle.to_tensor(mse_threshold(seen, self._quant_bits), dtype="float32")

    def scales(self):
        if self._scale is None:
            self.cal_thresholds()
        return self._scale

    def zero_points(self):
        return paddle.zeros_like(self.scales())

    def quant_axis(self) -> int:
        return -1

    def bit_length(self) -> int:
        return self._quant_bits
