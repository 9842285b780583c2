"""ESNet, the Enhanced ShuffleNet backbone of PP-PicoDet (Yu et al., 2021, arXiv:2111.00902).
Weight-compatible with PaddleClas's ESNet.

ShuffleNetV2's units with hard-swish, an SE layer in every unit, a depthwise-concatenated transform in the basic
unit and a depthwise + pointwise fusion after the down unit; PP-LCNet's last-conv head.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
from paddle.nn.initializer import KaimingNormal

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, SEModule, make_divisible
from ppipe.models.layers.channel_shuffle import channel_shuffle
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

ACT = "hardswish"


def _conv(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, depthwise: bool = False,
          act: str | None = ACT) -> ConvBNAct:
    return ConvBNAct(in_chs, out_chs, kernel_size, stride=stride, groups=in_chs if depthwise else 1, act=act,
                     weight_init=KaimingNormal())


class ESBlock1(nn.Layer):
    """Keep half the channels; on the other: 1x1 -> 3x3 depthwise, concat the two, SE, 1x1; concat, shuffle."""

    def __init__(self, chs: int):
        super().__init__()
        half = chs // 2
        self.pw_1_1 = _conv(half, half, 1)
        self.dw_1 = _conv(half, half, 3, depthwise=True, act=None)
        self.se = SEModule(chs)
        self.pw_1_2 = _conv(chs, half, 1)

    def forward(self, x):
        kept, x = paddle.chunk(x, 2, axis=1)
        x = self.pw_1_1(x)
        x = self.pw_1_2(self.se(paddle.concat([x, self.dw_1(x)], axis=1)))
        return channel_shuffle(paddle.concat([kept, x], axis=1), 2)


class ESBlock2(nn.Layer):
    """Down unit: two strided branches (3x3 dw -> 1x1; 1x1 -> 3x3 dw -> SE -> 1x1), concat, then a 3x3 depthwise and
    a 1x1 conv fuse them (instead of a shuffle)."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        half = out_chs // 2
        self.dw_1 = _conv(in_chs, in_chs, 3, stride=2, depthwise=True, act=None)
        self.pw_1 = _conv(in_chs, half, 1)
        self.pw_2_1 = _conv(in_chs, half, 1)
        self.dw_2 = _conv(half, half, 3, stride=2, depthwise=True, act=None)
        self.se = SEModule(half)
        self.pw_2_2 = _conv(half, half, 1)
        self.concat_dw = _conv(out_chs, out_chs, 3, depthwise=True)
        self.concat_pw = _conv(out_chs, out_chs, 1)

    def forward(self, x):
        x1 = self.pw_1(self.dw_1(x))
        x2 = self.pw_2_2(self.se(self.dw_2(self.pw_2_1(x))))
        return self.concat_pw(self.concat_dw(paddle.concat([x1, x2], axis=1)))


class ESNet(PooledClassifierNet):
    """`conv1` -> max pool -> `blocks` (three stages, each opened by an `ESBlock2`) -> 1x1 `conv2` (features) ->
    last-conv head. `scale` widens the three stages (rounded to multiples of 8); stem and `conv2` stay fixed."""

    def __init__(self, scale: float = 1.0, num_classes: int = 1000, stem_chs: int = 24, final_chs: int = 1024,
                 class_expand: int = 1280, dropout_prob: float | None = 0.2):
        super().__init__()
        self.conv1 = _conv(3, stem_chs, 3, stride=2)
        self.max_pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        blocks, in_chs = [], stem_chs
        for depth, c in zip(DEPTHS, STAGE_CHS):
            chs = make_divisible(c * scale)
            blocks += [ESBlock2(in_chs, chs)] + [ESBlock1(chs) for _ in range(depth - 1)]
            in_chs = chs
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = _conv(in_chs, final_chs, 1)
        self._init_head(final_chs, num_classes, class_expand=class_expand, act=ACT, dropout_prob=dropout_prob)

    def forward_features(self, x):
        return self.conv2(self.blocks(self.max_pool(self.conv1(x))))


DEPTHS = (3, 7, 3)  # units per stage
STAGE_CHS = (116, 232, 464)  # at width 1.0
_FAMILY = "ESNet"


@register_model(spec(family=_FAMILY, params_m=2.83, flops_g=0.03085, top1=0.6248, input_size=224))
def ESNet_x0_25(**kw):
    return ESNet(scale=0.25, **kw)


@register_model(spec(family=_FAMILY, params_m=3.25, flops_g=0.06731, top1=0.6882, input_size=224))
def ESNet_x0_5(**kw):
    return ESNet(scale=0.5, **kw)


@register_model(spec(family=_FAMILY, params_m=3.87, flops_g=0.12374, top1=0.7224, input_size=224))
def ESNet_x0_75(**kw):
    return ESNet(scale=0.75, **kw)


@register_model(spec(family=_FAMILY, params_m=4.64, flops_g=0.19733, top1=0.7392, input_size=224))
def ESNet_x1_0(**kw):
    return ESNet(scale=1.0, **kw)
