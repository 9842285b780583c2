"""Depthwise-separable convolution with BatchNorm after each half (Chollet, 2017, arXiv:1610.02357).

PaddleClas's Xception runs the 1x1 pointwise conv first and the depthwise 3x3 second; its DeepLab Xception runs
them the other way round, with a dilation and an activation after each BatchNorm. Keys: `depthwise.conv.weight`,
`depthwise.bn.*`, `pointwise.conv.weight`, `pointwise.bn.*`.
"""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers.activations import create_act


class ConvBN(nn.Layer):
    """Bias-free conv ('same' padding for odd kernels, with `dilation`) -> BatchNorm (`bn_eps`) -> `act`."""

    bn_act_pairs = (("bn", "act"),)  # `act` applies to `bn`'s output only: fusable in CPU training

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, dilation: int = 1,
                 groups: int = 1, act: str | None = None, bn_eps: float = 1e-5, bn_momentum: float = 0.9):
        super().__init__()
        self.conv = nn.Conv2D(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2 * dilation,
                              dilation=dilation, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_chs, epsilon=bn_eps, momentum=bn_momentum)
        self.act = create_act(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SeparableConvBN(nn.Layer):
    """kxk depthwise ConvBN (`stride`, `dilation`) and 1x1 pointwise ConvBN, each followed by `act`.

    `pointwise_first`: the 1x1 runs first and the depthwise conv acts on `out_chs` channels (PaddleClas's
    Xception); otherwise depthwise on `in_chs`, then 1x1 (DeepLab's Xception).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                 act: str | None = None, pointwise_first: bool = False, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.9):
        super().__init__()
        bn = dict(act=act, bn_eps=bn_eps, bn_momentum=bn_momentum)
        dw_chs = out_chs if pointwise_first else in_chs
        self.pointwise_first = pointwise_first
        self.depthwise = ConvBN(dw_chs, dw_chs, kernel_size, stride=stride, dilation=dilation, groups=dw_chs, **bn)
        self.pointwise = ConvBN(in_chs, out_chs, 1, **bn)

    def forward(self, x):
        if self.pointwise_first:
            return self.depthwise(self.pointwise(x))
        return self.pointwise(self.depthwise(x))
