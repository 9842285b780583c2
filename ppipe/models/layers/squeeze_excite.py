"""Squeeze-and-excitation (Hu et al., 2018, arXiv:1709.01507) with the hard sigmoid gate of MobileNetV3.

Keys `conv1.{weight,bias}`, `conv2.{weight,bias}` as in PaddleClas. The gate's slope differs between PaddleClas's
families: MobileNetV3 uses 0.2, PP-LCNet paddle's default 1/6; both are data here.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr

HARDSIGMOID_SLOPE_PADDLE = 0.1666667  # paddle.nn.Hardsigmoid's default


class SEModule(nn.Layer):
    """Global pool -> 1x1 conv (channels // reduction) -> ReLU -> 1x1 conv -> hard sigmoid -> rescale the input."""

    def __init__(self, channels: int, reduction: int = 4, gate_slope: float = HARDSIGMOID_SLOPE_PADDLE,
                 gate_offset: float = 0.5, lr_mult: float = 1.0):
        super().__init__()
        self.gate_slope, self.gate_offset = gate_slope, gate_offset
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        attr = dict(weight_attr=ParamAttr(learning_rate=lr_mult), bias_attr=ParamAttr(learning_rate=lr_mult))
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1, **attr)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1, **attr)

    def forward(self, x):
        s = self.conv2(self.relu(self.conv1(self.avg_pool(x))))
        return paddle.multiply(x, F.hardsigmoid(s, slope=self.gate_slope, offset=self.gate_offset))
