"""PP-LCNet (Cui et al., 2021, arXiv:2109.15099). Weight-compatible with PaddleClas's PPLCNet.

Depthwise-separable stages `blocks2`..`blocks6`, SE in the last stage only, and the last-conv head of 1280 channels.
"""

from __future__ import annotations

from typing import Sequence

import paddle.nn as nn
from paddle.nn.initializer import KaimingNormal

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, SEModule, make_divisible
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class DepthwiseSeparable(nn.Layer):
    """kxk depthwise conv -> optional SE -> 1x1 pointwise conv, both with `act`."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, use_se: bool, act: str,
                 lr_mult: float):
        super().__init__()
        conv = dict(act=act, lr_mult=lr_mult, weight_init=KaimingNormal())
        self.dw_conv = ConvBNAct(in_chs, in_chs, kernel_size, stride=stride, groups=in_chs, **conv)
        self.se = SEModule(in_chs, lr_mult=lr_mult) if use_se else nn.Identity()
        self.pw_conv = ConvBNAct(in_chs, out_chs, 1, **conv)

    def forward(self, x):
        return self.pw_conv(self.se(self.dw_conv(x)))


class PPLCNet(PooledClassifierNet):
    """Stem `conv1` -> `blocks2`..`blocks6` (features) -> last-conv head.

    `stride_list`: strides of the stem and of the first block of stages 3-6; `lr_mult_list`: learning-rate
    multipliers of the stem and stages 2-6 (both as in PaddleClas's PULC configs); `use_last_conv=False` feeds the
    pooled features straight to `fc`.
    """

    def __init__(self, stages=None, scale: float = 1.0, num_classes: int = 1000, stem_chs: int = 16,
                 class_expand: int = 1280, dropout_prob: float = 0.2, act: str = "hardswish",
                 use_last_conv: bool = True, stride_list: Sequence[int] = (2, 2, 2, 2, 2),
                 lr_mult_list: Sequence[float] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)):
        super().__init__()
        stages = STAGES if stages is None else stages
        if len(stride_list) != len(stages) or len(lr_mult_list) != 1 + len(stages):
            raise ValueError(f"stride_list needs {len(stages)} values and lr_mult_list {len(stages) + 1}, got "
                             f"{list(stride_list)} and {list(lr_mult_list)}")
        in_chs = make_divisible(stem_chs * scale)
        self.conv1 = ConvBNAct(3, in_chs, 3, stride=stride_list[0], act=act, lr_mult=lr_mult_list[0],
                               weight_init=KaimingNormal())
        # as in PaddleClas, stride_list[1:] sets the stride of the first block of blocks3..blocks6
        first_strides = (stages[0][0][2], *stride_list[1:])
        self._stage_names = []
        for idx, (stage, first_stride, lr_mult) in enumerate(zip(stages, first_strides, lr_mult_list[1:])):
            blocks = []
            for j, (k, c, s, se) in enumerate(stage):
                out_chs = make_divisible(c * scale)
                blocks.append(DepthwiseSeparable(in_chs, out_chs, k, first_stride if j == 0 else s, se, act, lr_mult))
                in_chs = out_chs
            self._stage_names.append(f"blocks{idx + 2}")
            setattr(self, self._stage_names[-1], nn.Sequential(*blocks))
        self._init_head(in_chs, num_classes, class_expand=class_expand, act=act, dropout_prob=dropout_prob,
                        use_last_conv=use_last_conv)

    def forward_features(self, x):
        x = self.conv1(x)
        for name in self._stage_names:
            x = getattr(self, name)(x)
        return x


def _create(cls, scale: float, **kw) -> PPLCNet:
    return cls(STAGES, scale=scale, **kw)


# one tuple per stage (blocks2..blocks6), rows: kernel, out channels at width 1.0, stride, SE
STAGES = (
    ((3, 32, 1, False),),
    ((3, 64, 2, False), (3, 64, 1, False)),
    ((3, 128, 2, False), (3, 128, 1, False)),
    ((3, 256, 2, False),) + ((5, 256, 1, False),) * 5,
    ((5, 512, 2, True), (5, 512, 1, True)),
)
_FAMILY = "PPLCNet"


@register_model(spec(family=_FAMILY, params_m=1.52, flops_g=0.01825, top1=0.5186, input_size=224))
def PPLCNet_x0_25(**kw):
    return _create(PPLCNet, scale=0.25, **kw)


@register_model(spec(family=_FAMILY, params_m=1.65, flops_g=0.02946, top1=0.5809, input_size=224))
def PPLCNet_x0_35(**kw):
    return _create(PPLCNet, scale=0.35, **kw)


@register_model(spec(family=_FAMILY, params_m=1.89, flops_g=0.04728, top1=0.6314, input_size=224,
                     weights=("in1k", "ssld")))
def PPLCNet_x0_5(**kw):
    return _create(PPLCNet, scale=0.5, **kw)


@register_model(spec(family=_FAMILY, params_m=2.37, flops_g=0.09882, top1=0.6818, input_size=224))
def PPLCNet_x0_75(**kw):
    return _create(PPLCNet, scale=0.75, **kw)


@register_model(spec(family=_FAMILY, params_m=2.96, flops_g=0.16081, top1=0.7132, input_size=224,
                     weights=("in1k", "ssld")))
def PPLCNet_x1_0(**kw):
    return _create(PPLCNet, scale=1.0, **kw)


@register_model(spec(family=_FAMILY, params_m=4.52, flops_g=0.34186, top1=0.7371, input_size=224))
def PPLCNet_x1_5(**kw):
    return _create(PPLCNet, scale=1.5, **kw)


@register_model(spec(family=_FAMILY, params_m=6.54, flops_g=0.59, top1=0.7518, input_size=224))
def PPLCNet_x2_0(**kw):
    return _create(PPLCNet, scale=2.0, **kw)


@register_model(spec(family=_FAMILY, params_m=9.04, flops_g=0.906, top1=0.766, input_size=224,
                     weights=("in1k", "ssld")))
def PPLCNet_x2_5(**kw):
    return _create(PPLCNet, scale=2.5, **kw)
