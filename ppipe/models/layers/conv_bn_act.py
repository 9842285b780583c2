"""Convolution -> BatchNorm -> activation, the unit of every MobileNet-style network.

State-dict keys are `conv.weight` and `bn.{weight,bias,_mean,_variance}`, PaddleClas's `ConvBNLayer` naming.
"""

from __future__ import annotations

import paddle.nn as nn
from paddle import ParamAttr
from paddle.regularizer import L2Decay

from ppipe.models.layers.activations import create_act


def batch_norm_without_decay(chs: int, lr_mult: float = 1.0, momentum: float = 0.9,
                             data_format: str = "NCHW") -> nn.BatchNorm2D:
    """A BatchNorm2D whose affine parameters have no L2 decay and learn at `lr_mult`: PaddleClas exempts BN's
    affine parameters from weight decay, kept so that its training recipes transfer."""
    return nn.BatchNorm2D(chs, momentum=momentum,
                          weight_attr=ParamAttr(regularizer=L2Decay(0.0), learning_rate=lr_mult),
                          bias_attr=ParamAttr(regularizer=L2Decay(0.0), learning_rate=lr_mult),
                          data_format=data_format)


class ConvBNAct(nn.Layer):
    """A bias-free 'same'-padded convolution, BatchNorm without weight decay, then `act` (by name, or None).

    `data_format` "NHWC" lays activations out channels-last (input and output), which suits float16 tensor-core
    convolutions on GPUs; the parameters and their shapes are the same in both layouts.
    """

    # forward applies `act` to `bn`'s output and to nothing else, so CPU training may compute the two as one
    # operation (ppipe/ops/onednn.py); subclasses must keep that true.
    bn_act_pairs = (("bn", "act"),)

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 act: str | None = None, lr_mult: float = 1.0, weight_init: nn.initializer.Initializer | None = None,
                 data_format: str = "NCHW"):
        super().__init__()
        self.conv = nn.Conv2D(in_chs, out_chs, kernel_size, stride=stride, padding=(kernel_size - 1) // 2,
                              groups=groups, weight_attr=ParamAttr(initializer=weight_init, learning_rate=lr_mult),
                              bias_attr=False, data_format=data_format)
        self.bn = batch_norm_without_decay(out_chs, lr_mult, data_format=data_format)
        self.act = create_act(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))
