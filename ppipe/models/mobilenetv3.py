"""MobileNetV3 (Howard et al., 2019, arXiv:1905.02244). Weight-compatible with PaddleClas's MobileNetV3.

Large and small at widths 0.35-1.25; the head (`last_conv` of 1280 channels, unscaled, then `fc`) is PaddleClas's.
"""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, SEModule, make_divisible
from ppipe.models.layers.inverted_residual import InvertedResidual
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

SE_GATE_SLOPE = 0.2  # PaddleClas's MobileNetV3 gate: hardsigmoid(0.2 x + 0.5), not paddle's 1/6


class MobileNetV3(PooledClassifierNet):
    """Stem -> inverted residual `blocks` -> `last_second_conv` (features) -> last-conv head.

    `cfg`: rows (kernel, expansion channels, out channels, SE, activation, stride) at width 1.0; `scale` is
    the width multiplier; `squeeze` the channels of `last_second_conv` at width 1.0.
    """

    def __init__(self, cfg, squeeze: int, scale: float = 1.0, num_classes: int = 1000, stem_chs: int = 16,
                 class_expand: int = 1280, dropout_prob: float | None = 0.2):
        super().__init__()
        in_chs = make_divisible(stem_chs * scale)
        self.conv = ConvBNAct(3, in_chs, 3, stride=2, act="hardswish")
        blocks = []
        for k, exp, c, se, act, s in cfg:
            out_chs = make_divisible(c * scale)
            mid = make_divisible(exp * scale)
            se_layer = SEModule(mid, gate_slope=SE_GATE_SLOPE) if se else None
            blocks.append(InvertedResidual(in_chs, mid, out_chs, k, s, act=act, se_layer=se_layer))
            in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.last_second_conv = ConvBNAct(in_chs, make_divisible(squeeze * scale), 1, act="hardswish")
        self._init_head(make_divisible(squeeze * scale), num_classes, class_expand=class_expand,
                        act="hardswish", dropout_prob=dropout_prob)

    def forward_features(self, x):
        return self.last_second_conv(self.blocks(self.conv(x)))


def _create(cls, cfg, squeeze: int, scale: float, **kw) -> MobileNetV3:
    return cls(cfg, squeeze=squeeze, scale=scale, **kw)


# k, exp, c, se, act, s
LARGE = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2),
    (3, 200, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1),
    (3, 480, 112, True, "hardswish", 1),
    (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2),
    (5, 960, 160, True, "hardswish", 1),
    (5, 960, 160, True, "hardswish", 1),
)
SMALL = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2),
    (5, 240, 40, True, "hardswish", 1),
    (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1),
    (5, 144, 48, True, "hardswish", 1),
    (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1),
    (5, 576, 96, True, "hardswish", 1),
)
LARGE_SQUEEZE, SMALL_SQUEEZE = 960, 576
_FAMILY = "MobileNetV3"


@register_model(spec(family=_FAMILY, params_m=2.11, flops_g=0.0409, top1=0.6432, input_size=224))
def MobileNetV3_large_x0_35(**kw):
    return _create(MobileNetV3, LARGE, LARGE_SQUEEZE, scale=0.35, **kw)


@register_model(spec(family=_FAMILY, params_m=2.69, flops_g=0.07183, top1=0.6924, input_size=224))
def MobileNetV3_large_x0_5(**kw):
    return _create(MobileNetV3, LARGE, LARGE_SQUEEZE, scale=0.5, **kw)


@register_model(spec(family=_FAMILY, params_m=3.93, flops_g=0.1517, top1=0.7314, input_size=224))
def MobileNetV3_large_x0_75(**kw):
    return _create(MobileNetV3, LARGE, LARGE_SQUEEZE, scale=0.75, **kw)


@register_model(spec(family=_FAMILY, params_m=5.5, flops_g=0.22966, top1=0.7532, input_size=224,
                     weights=("in1k", "ssld")))
def MobileNetV3_large_x1_0(**kw):
    return _create(MobileNetV3, LARGE, LARGE_SQUEEZE, scale=1.0, **kw)


@register_model(spec(family=_FAMILY, params_m=7.47, flops_g=0.3627, top1=0.7641, input_size=224))
def MobileNetV3_large_x1_25(**kw):
    return _create(MobileNetV3, LARGE, LARGE_SQUEEZE, scale=1.25, **kw)


@register_model(spec(family=_FAMILY, params_m=1.67, flops_g=0.01456, top1=0.5303, input_size=224,
                     weights=("in1k", "ssld")))
def MobileNetV3_small_x0_35(**kw):
    return _create(MobileNetV3, SMALL, SMALL_SQUEEZE, scale=0.35, **kw)


@register_model(spec(family=_FAMILY, params_m=1.91, flops_g=0.0226, top1=0.5921, input_size=224))
def MobileNetV3_small_x0_5(**kw):
    return _create(MobileNetV3, SMALL, SMALL_SQUEEZE, scale=0.5, **kw)


@register_model(spec(family=_FAMILY, params_m=2.38, flops_g=0.04602, top1=0.6602, input_size=224))
def MobileNetV3_small_x0_75(**kw):
    return _create(MobileNetV3, SMALL, SMALL_SQUEEZE, scale=0.75, **kw)


@register_model(spec(family=_FAMILY, params_m=2.95, flops_g=0.06367, top1=0.6824, input_size=224,
                     weights=("in1k", "ssld")))
def MobileNetV3_small_x1_0(**kw):
    return _create(MobileNetV3, SMALL, SMALL_SQUEEZE, scale=1.0, **kw)


@register_model(spec(family=_FAMILY, params_m=3.64, flops_g=0.10007, top1=0.7067, input_size=224))
def MobileNetV3_small_x1_25(**kw):
    return _create(MobileNetV3, SMALL, SMALL_SQUEEZE, scale=1.25, **kw)
