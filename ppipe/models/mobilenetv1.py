"""MobileNetV1 (Howard et al., 2017, arXiv:1704.04861). Weight-compatible with PaddleClas's MobileNetV1.

A 3x3 stem and 13 depthwise-separable blocks, then global pooling straight into `fc` (no last conv, no dropout).
Widths are truncated (`int(c * scale)`), not rounded to multiples of 8, as in PaddleClas.
"""

from __future__ import annotations

import paddle.nn as nn
from paddle.nn.initializer import KaimingNormal

from ppipe.models.layers import ConvBNAct, PooledClassifierNet
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class DepthwiseSeparable(nn.Layer):
    """3x3 depthwise conv -> 1x1 pointwise conv, both with BN and ReLU."""

    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        self.depthwise_conv = ConvBNAct(in_chs, in_chs, 3, stride=stride, groups=in_chs, act="relu",
                                        weight_init=KaimingNormal())
        self.pointwise_conv = ConvBNAct(in_chs, out_chs, 1, act="relu", weight_init=KaimingNormal())

    def forward(self, x):
        return self.pointwise_conv(self.depthwise_conv(x))


class MobileNetV1Net(PooledClassifierNet):
    """Stem `conv` -> depthwise-separable `blocks` (features) -> pool -> `fc`.

    `cfg`: rows (out channels, stride) of the blocks at width 1.0 (default `BLOCKS`); `scale` the width multiplier.
    """

    def __init__(self, cfg=None, scale: float = 1.0, num_classes: int = 1000,
                 stem_chs: int = 32):
        super().__init__()
        cfg = BLOCKS if cfg is None else cfg
        in_chs = int(stem_chs * scale)
        self.conv = ConvBNAct(3, in_chs, 3, stride=2, act="relu", weight_init=KaimingNormal())
        blocks = []
        for c, s in cfg:
            blocks.append(DepthwiseSeparable(in_chs, int(c * scale), s))
            in_chs = int(c * scale)
        self.blocks = nn.Sequential(*blocks)
        self._init_head(in_chs, num_classes, use_last_conv=False)

    def forward_features(self, x):
        return self.blocks(self.conv(x))


# out channels at width 1.0, stride
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), *((512, 1),) * 5, (1024, 2), (1024, 1))
_FAMILY = "MobileNetV1"


def _create(scale: float, **kw) -> MobileNetV1Net:
    return MobileNetV1Net(BLOCKS, scale=scale, **kw)


@register_model(spec(family=_FAMILY, params_m=0.48, flops_g=0.04356, top1=0.5143, input_size=224))
def MobileNetV1_x0_25(**kw):
    return _create(0.25, **kw)


@register_model(spec(family=_FAMILY, params_m=1.34, flops_g=0.15457, top1=0.6352, input_size=224))
def MobileNetV1_x0_5(**kw):
    return _create(0.5, **kw)


@register_model(spec(family=_FAMILY, params_m=2.6, flops_g=0.333, top1=0.6881, input_size=224))
def MobileNetV1_x0_75(**kw):
    return _create(0.75, **kw)


@register_model(spec(family=_FAMILY, params_m=4.25, flops_g=0.57888, top1=0.7099, input_size=224,
                     weights=("in1k", "ssld")))
def MobileNetV1(**kw):
    return _create(1.0, **kw)
