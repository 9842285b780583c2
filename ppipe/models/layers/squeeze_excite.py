"""Squeeze-and-excitation (Hu et al., 2018, arXiv:1709.01507): the zoo's one channel-attention gate.

Global pool -> reduce to `rd_channels` -> [BatchNorm] -> act -> expand -> gate -> rescale the input, parameterised
as timm's `SEModule` is. What PaddleClas's families vary is data here: the reduction, the activation, the gate
(MobileNetV3's hard sigmoid of slope 0.2, PP-LCNet's paddle default 1/6, GhostNet's clip to [0, 1], EfficientNet's
and SENet's sigmoid), ReXNet's BatchNorm after the reduction, and 1x1 convs or, with
`fc_layer`, fully connected layers (SE-ResNet, HRNet, GhostNet). Keys `conv1.*`, [`bn.*`], `conv2.*`, PaddleClas's
MobileNetV3 naming; families naming them otherwise rename their keys (`ppipe.models.layers.checkpoint_keys`).
"""

from __future__ import annotations

from typing import Callable

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr

from ppipe.models.layers.activations import create_act

HARDSIGMOID_SLOPE_PADDLE = 0.1666667  # paddle.nn.Hardsigmoid's default
# "clip" is a hard sigmoid of slope 1 and offset 0, kept as PaddleClas's GhostNet writes it (`paddle.clip`): OpenVINO's
# Paddle front end converts `hard_sigmoid` with offset 0 wrongly (GhostNet's logits were off by 77x there)
GATES = ("hardsigmoid", "clip", "sigmoid")


class SEModule(nn.Layer):
    """x * gate(conv2(act([bn](conv1(pool(x)))))), `conv1` reducing to `rd_channels` (default channels //
    `reduction`).

    `gate`: "hardsigmoid" (`gate_slope`, `gate_offset`), "clip" (to [0, 1]) or "sigmoid". `fc_layer(in, out)`: build the two layers
    fully connected (on the pooled vector) instead of as biased 1x1 convs. `data_format` "NHWC": channels-last input.
    """

    def __init__(self, channels: int, reduction: int = 4, rd_channels: int | None = None, act: str = "relu",
                 gate: str = "hardsigmoid", gate_slope: float = HARDSIGMOID_SLOPE_PADDLE, gate_offset: float = 0.5,
                 norm: bool = False, fc_layer: Callable[[int, int], nn.Layer] | None = None, lr_mult: float = 1.0,
                 data_format: str = "NCHW"):
        super().__init__()
        if gate not in GATES:
            raise ValueError(f"SE gate must be one of {list(GATES)}, got {gate!r}")
        rd_channels = rd_channels or channels // reduction
        self.gate, self.gate_slope, self.gate_offset = gate, gate_slope, gate_offset
        self.channels_last, self.fully_connected = data_format == "NHWC", fc_layer is not None
        self.avg_pool = nn.AdaptiveAvgPool2D(1, data_format=data_format)
        if fc_layer is not None:
            self.conv1, self.conv2 = fc_layer(channels, rd_channels), fc_layer(rd_channels, channels)
        else:
            attr = dict(weight_attr=ParamAttr(learning_rate=lr_mult), bias_attr=ParamAttr(learning_rate=lr_mult),
                        data_format=data_format)
            self.conv1 = nn.Conv2D(channels, rd_channels, 1, **attr)
            self.conv2 = nn.Conv2D(rd_channels, channels, 1, **attr)
        self.bn = nn.BatchNorm2D(rd_channels) if norm else nn.Identity()
        self.act = create_act(act)

    def forward(self, x):
        s = self.avg_pool(x)
        if self.fully_connected:
            s = self.conv2(self.act(self.conv1(paddle.flatten(s, start_axis=1))))
            s = s.unsqueeze([1, 2] if self.channels_last else [2, 3])
        else:
            s = self.conv2(self.act(self.bn(self.conv1(s))))
        return paddle.multiply(x, self._gate(s))

    def _gate(self, s):
        if self.gate == "hardsigmoid":
            return F.hardsigmoid(s, slope=self.gate_slope, offset=self.gate_offset)
        return paddle.clip(s, 0.0, 1.0) if self.gate == "clip" else F.sigmoid(s)
