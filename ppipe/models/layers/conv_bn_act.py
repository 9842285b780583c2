"""Convolution -> BatchNorm -> activation, the unit of every convolutional family in the zoo.

State-dict keys are `conv.weight` and `bn.{weight,bias,_mean,_variance}`, PaddleClas's `ConvBNLayer` naming.
"""

from __future__ import annotations

import paddle.nn as nn
from paddle import ParamAttr
from paddle.regularizer import L2Decay

from ppipe.models.layers.activations import create_act


def batch_norm_without_decay(chs: int, lr_mult: float = 1.0, momentum: float = 0.9, epsilon: float = 1e-5,
                             data_format: str = "NCHW") -> nn.BatchNorm2D:
    """A BatchNorm2D whose affine parameters have no L2 decay and learn at `lr_mult`: PaddleClas exempts BN's
    affine parameters from weight decay, kept so that its training recipes transfer."""
    return nn.BatchNorm2D(chs, momentum=momentum, epsilon=epsilon,
                          weight_attr=ParamAttr(regularizer=L2Decay(0.0), learning_rate=lr_mult),
                          bias_attr=ParamAttr(regularizer=L2Decay(0.0), learning_rate=lr_mult),
                          data_format=data_format)


class ConvBNAct(nn.Layer):
    """A bias-free convolution, BatchNorm, then `act` (by name, or None): the one conv + norm + act unit of the zoo,
    parameterised as timm's `ConvNormAct` is.

    `padding` defaults to 'same' for odd kernels ((k - 1) // 2 * dilation per side); a tuple `kernel_size` with an
    explicit `padding` gives Inception's asymmetric 1x7 / 7x1 convs, a 4-tuple (top, bottom, left, right) pads
    unevenly (EfficientNet's TensorFlow 'SAME'). The BatchNorm's affine parameters are exempt
    from weight decay (PaddleClas's `ConvBNLayer`) unless `bn_weight_decay`, as in PaddleClas's older families
    whose recipes decay them. `data_format` "NHWC" lays activations out channels-last (input and output), which
    suits float16 tensor-core convolutions on GPUs; the parameters and their shapes are the same in both layouts.
    """

    # forward applies `act` to `bn`'s output and to nothing else, so CPU training may compute the two as one
    # operation (ppipe/ops/onednn.py); subclasses must keep that true.
    bn_act_pairs = (("bn", "act"),)

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 groups: int = 1, act: str | None = None, lr_mult: float = 1.0,
                 weight_init: nn.initializer.Initializer | None = None, data_format: str = "NCHW", *,
                 padding: int | tuple[int, ...] | None = None, dilation: int = 1, bn_eps: float = 1e-5,
                 bn_momentum: float = 0.9, bn_weight_decay: bool = False):
        super().__init__()
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        self.conv = nn.Conv2D(in_chs, out_chs, kernel_size, stride=stride, padding=padding, dilation=dilation,
                              groups=groups, weight_attr=ParamAttr(initializer=weight_init, learning_rate=lr_mult),
                              bias_attr=False, data_format=data_format)
        self.bn = (nn.BatchNorm2D(out_chs, momentum=bn_momentum, epsilon=bn_eps, data_format=data_format)
                   if bn_weight_decay else
                   batch_norm_without_decay(out_chs, lr_mult, momentum=bn_momentum, epsilon=bn_eps,
                                            data_format=data_format))
        self.act = create_act(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


# Inception's factorised kernels: 1x7 and 7x1 (1x3 and 3x1) convs padded to keep the map's size
ROW7, COL7 = dict(kernel_size=(1, 7), padding=(0, 3)), dict(kernel_size=(7, 1), padding=(3, 0))
ROW3, COL3 = dict(kernel_size=(1, 3), padding=(0, 1)), dict(kernel_size=(3, 1), padding=(1, 0))


def conv_bn_relu(in_chs: int, out_chs: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> ConvBNAct:
    """Inception's unit: a conv, unpadded unless `padding` says otherwise (its grid reductions rely on it), BatchNorm
    with weight decay, ReLU (PaddleClas's Inception-v3 and -v4 `ConvBNLayer`)."""
    return ConvBNAct(in_chs, out_chs, kernel_size, stride=stride, act="relu", padding=padding, bn_weight_decay=True)
