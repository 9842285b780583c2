"""The inverted residual block of MobileNetV2 (Sandler et al., 2018, arXiv:1801.04381).

Keys `expand_conv`, `bottleneck_conv`, `mid_se`, `linear_conv` follow PaddleClas's MobileNetV3 `ResidualUnit`, which
is this block with an SE layer; MobileNetV2's checkpoints are mapped onto the same names.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from ppipe.models.layers.conv_bn_act import ConvBNAct


class InvertedResidual(nn.Layer):
    """1x1 expand -> kxk depthwise -> optional `se_layer` -> 1x1 linear projection, + identity when shapes allow.

    The expansion conv is kept even when `mid_chs == in_chs` (MobileNetV2's first block), as PaddleClas does.
    """

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1,
                 act: str = "relu6", se_layer: nn.Layer | None = None):
        super().__init__()
        self.has_shortcut = stride == 1 and in_chs == out_chs
        self.expand_conv = ConvBNAct(in_chs, mid_chs, 1, act=act)
        self.bottleneck_conv = ConvBNAct(mid_chs, mid_chs, kernel_size, stride=stride, groups=mid_chs, act=act)
        self.mid_se = se_layer if se_layer is not None else nn.Identity()
        self.linear_conv = ConvBNAct(mid_chs, out_chs, 1, act=None)

    def forward(self, x):
        y = self.linear_conv(self.mid_se(self.bottleneck_conv(self.expand_conv(x))))
        return paddle.add(x, y) if self.has_shortcut else y
