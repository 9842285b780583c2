"""Stochastic depth (Huang et al., 2016, arXiv:1603.09382): drop a residual branch per sample in training.

EfficientNet's "drop connect" is the same operation. Survivors are scaled by 1/keep so the expected value is
unchanged; in eval mode it is the identity.
"""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn


def drop_path(x: paddle.Tensor, drop_prob: float = 0.0, training: bool = False) -> paddle.Tensor:
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    mask = paddle.floor(keep + paddle.rand(shape, dtype=x.dtype))
    return x / keep * mask


class DropPath(nn.Layer):
    def __init__(self, drop_prob: float | None = 0.0):
        super().__init__()
        self.drop_prob = float(drop_prob or 0.0)

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training)


def stochastic_depth_rates(drop_path_rate: float, depth: int) -> list[float]:
    """Drop-path probability of each of `depth` blocks, rising linearly from 0 to `drop_path_rate`."""
    return np.linspace(0, drop_path_rate, depth).tolist()
