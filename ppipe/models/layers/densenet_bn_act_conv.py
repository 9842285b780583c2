"""Pre-activation convolution (BatchNorm -> activation -> conv), the unit of DenseNet and DPN.

Keys `bn.{weight,bias,_mean,_variance}` and `conv.weight`; the families' `remap_checkpoint` maps PaddleClas's
`_batch_norm` / `_conv` onto them.
"""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers.activations import create_act


class BNActConv(nn.Layer):
    """BatchNorm over the `in_chs` inputs, `act` (by name, or None), then a bias-free 'same'-padded convolution."""

    bn_act_pairs = (("bn", "act"),)  # `act` applies to `bn`'s output only: fusable in CPU training

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 act: str | None = "relu"):
        super().__init__()
        self.bn = nn.BatchNorm2D(in_chs)
        self.act = create_act(act)
        self.conv = nn.Conv2D(in_chs, out_chs, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                              groups=groups, bias_attr=False)

    def forward(self, x):
        return self.conv(self.act(self.bn(x)))
