"""ShuffleNetV2 (Ma et al., 2018, arXiv:1807.11164). Weight-compatible with PaddleClas's ShuffleNetV2.

Widths 0.25-2.0 and a swish variant. PaddleClas names this model's parameters in an older style
(`3_2._conv_pw._batch_norm`); ours follow its ESNet, the same design's successor (`blocks.5.pw_1_1.bn`), and
`remap_checkpoint` translates its checkpoints.
"""

from __future__ import annotations


import paddle
import paddle.nn as nn
from paddle.nn.initializer import KaimingNormal

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, PADDLECLAS_CONV_BN, classifier_rule
from ppipe.models.layers.channel_shuffle import channel_shuffle
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


def _pw(in_chs: int, out_chs: int, act: str) -> ConvBNAct:
    return ConvBNAct(in_chs, out_chs, 1, act=act, weight_init=KaimingNormal())


def _dw(chs: int, stride: int = 1) -> ConvBNAct:
    # no activation after the depthwise convs, as in the paper
    return ConvBNAct(chs, chs, 3, stride=stride, groups=chs, weight_init=KaimingNormal())


class ShuffleUnit(nn.Layer):
    """Keep one half of the channels, transform the other (1x1 -> 3x3 depthwise -> 1x1), concat, shuffle."""

    def __init__(self, chs: int, act: str):
        super().__init__()
        half = chs // 2
        self.pw_1_1 = _pw(half, half, act)
        self.dw_1 = _dw(half)
        self.pw_1_2 = _pw(half, half, act)

    def forward(self, x):
        kept, x = paddle.chunk(x, 2, axis=1)
        return channel_shuffle(paddle.concat([kept, self.pw_1_2(self.dw_1(self.pw_1_1(x)))], axis=1), 2)


class ShuffleDownUnit(nn.Layer):
    """Two strided branches on the full input (3x3 dw -> 1x1; 1x1 -> 3x3 dw -> 1x1), concat, shuffle."""

    def __init__(self, in_chs: int, out_chs: int, act: str):
        super().__init__()
        half = out_chs // 2
        self.dw_1 = _dw(in_chs, stride=2)
        self.pw_1 = _pw(in_chs, half, act)
        self.pw_2_1 = _pw(in_chs, half, act)
        self.dw_2 = _dw(half, stride=2)
        self.pw_2_2 = _pw(half, half, act)

    def forward(self, x):
        x1 = self.pw_1(self.dw_1(x))
        x2 = self.pw_2_2(self.dw_2(self.pw_2_1(x)))
        return channel_shuffle(paddle.concat([x1, x2], axis=1), 2)


# PaddleClas's ShuffleNetV2 keys: its unit `{s}_{i}` is block i-1 of stage s-2.
DEPTHS = (4, 8, 4)  # units per stage
_STAGE_STARTS = [sum(DEPTHS[:s]) for s in range(len(DEPTHS))]
PADDLECLAS_KEYS = ((r"^(\d)_(\d+)\.", lambda m: f"blocks.{_STAGE_STARTS[int(m[1]) - 2] + int(m[2]) - 1}."),
                   (r"^_conv1\.", "conv1."), (r"^_last_conv\.", "conv2."), classifier_rule("_fc"),
                   (r"\._conv_dw_1\.", ".dw_1."), (r"\._conv_linear_1\.", ".pw_1."), (r"\._conv_pw_2\.", ".pw_2_1."),
                   (r"\._conv_dw_2\.", ".dw_2."), (r"\._conv_linear_2\.", ".pw_2_2."), (r"\._conv_pw\.", ".pw_1_1."),
                   (r"\._conv_dw\.", ".dw_1."), (r"\._conv_linear\.", ".pw_1_2."), *PADDLECLAS_CONV_BN)


class ShuffleNetV2(PooledClassifierNet):
    """`conv1` -> max pool -> `blocks` (three stages, each opened by a down unit) -> 1x1 `conv2` (features) ->
    pool -> `fc`. `widths`: stem, three stages and `conv2` channels; `act`: "relu", or "swish"."""

    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, widths, act: str = "relu", num_classes: int = 1000):
        super().__init__()
        stem_chs, *stage_chs, final_chs = widths
        self.conv1 = ConvBNAct(3, stem_chs, 3, stride=2, act=act, weight_init=KaimingNormal())
        self.max_pool = nn.MaxPool2D(kernel_size=3, stride=2, padding=1)
        blocks, in_chs = [], stem_chs
        for depth, chs in zip(DEPTHS, stage_chs):
            blocks += [ShuffleDownUnit(in_chs, chs, act)] + [ShuffleUnit(chs, act) for _ in range(depth - 1)]
            in_chs = chs
        self.blocks = nn.Sequential(*blocks)
        self.conv2 = _pw(in_chs, final_chs, act)
        self._init_head(final_chs, num_classes, use_last_conv=False)

    def forward_features(self, x):
        return self.conv2(self.blocks(self.max_pool(self.conv1(x))))




# stem, stage 2-4 and final conv channels per width
WIDTHS = {0.25: (24, 24, 48, 96, 512), 0.33: (24, 32, 64, 128, 512), 0.5: (24, 48, 96, 192, 1024),
          1.0: (24, 116, 232, 464, 1024), 1.5: (24, 176, 352, 704, 1024), 2.0: (24, 244, 488, 976, 2048)}
_FAMILY = "ShuffleNet"


def _create(scale: float, act: str = "relu", **kw) -> ShuffleNetV2:
    return ShuffleNetV2(WIDTHS[scale], act=act, **kw)


@register_model(spec(family=_FAMILY, params_m=0.61, flops_g=0.01895, top1=0.499, input_size=224))
def ShuffleNetV2_x0_25(**kw):
    return _create(0.25, **kw)


@register_model(spec(family=_FAMILY, params_m=0.65, flops_g=0.02404, top1=0.5373, input_size=224))
def ShuffleNetV2_x0_33(**kw):
    return _create(0.33, **kw)


@register_model(spec(family=_FAMILY, params_m=1.37, flops_g=0.04258, top1=0.6032, input_size=224))
def ShuffleNetV2_x0_5(**kw):
    return _create(0.5, **kw)


@register_model(spec(family=_FAMILY, params_m=2.29, flops_g=0.14886, top1=0.688, input_size=224))
def ShuffleNetV2_x1_0(**kw):
    return _create(1.0, **kw)


@register_model(spec(family=_FAMILY, params_m=3.53, flops_g=0.30135, top1=0.7163, input_size=224))
def ShuffleNetV2_x1_5(**kw):
    return _create(1.5, **kw)


@register_model(spec(family=_FAMILY, params_m=7.4, flops_g=0.5717, top1=0.7315, input_size=224))
def ShuffleNetV2_x2_0(**kw):
    return _create(2.0, **kw)


@register_model(spec(family=_FAMILY, params_m=2.29, flops_g=0.14886, top1=0.7003, input_size=224))
def ShuffleNetV2_swish(**kw):
    return _create(1.0, act="swish", **kw)
