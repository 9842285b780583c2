"""Depthwise-separable convolution with BatchNorm after each half (Chollet, 2017, arXiv:1610.02357).

PaddleClas's Xception runs the 1x1 pointwise conv first and the depthwise 3x3 second; its DeepLab Xception runs
them the other way round, with a dilation and an activation after each BatchNorm. Keys: `depthwise.conv.weight`,
`depthwise.bn.*`, `pointwise.conv.weight`, `pointwise.bn.*`.
"""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers.conv_bn_act import ConvBNAct


class SeparableConvBN(nn.Layer):
    """kxk depthwise ConvBN (`stride`, `dilation`) and 1x1 pointwise ConvBN, each followed by `act`.

    `pointwise_first`: the 1x1 runs first and the depthwise conv acts on `out_chs` channels (PaddleClas's
    Xception); otherwise depthwise on `in_chs`, then 1x1 (DeepLab's Xception).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, dilation: int = 1,
                 act: str | None = None, pointwise_first: bool = False, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.9):
        super().__init__()
        bn = dict(act=act, bn_eps=bn_eps, bn_momentum=bn_momentum, bn_weight_decay=True)
        dw_chs = out_chs if pointwise_first else in_chs
        self.pointwise_first = pointwise_first
        self.depthwise = ConvBNAct(dw_chs, dw_chs, kernel_size, stride=stride, groups=dw_chs, dilation=dilation,
                                   **bn)
        self.pointwise = ConvBNAct(in_chs, out_chs, 1, **bn)

    def forward(self, x):
        if self.pointwise_first:
            return self.depthwise(self.pointwise(x))
        return self.pointwise(self.depthwise(x))
