"""GhostNet (Han et al., 2020, arXiv:1911.11907). Weight-compatible with PaddleClas's GhostNet.

Ghost modules make half of their channels with a cheap depthwise conv of the other half; the bottlenecks follow
MobileNetV3-large's layout. PaddleClas names this model's parameters in an older style
(`_ghostbottleneck_3.ghost_module_1.primary_conv._batch_norm`); `remap_checkpoint` maps them onto ours
(`blocks.3.ghost_module_1.primary_conv.bn`).
"""

from __future__ import annotations

import math

import paddle
import paddle.nn as nn
from paddle.nn.initializer import KaimingNormal

from ppipe.models.layers import (PADDLECLAS_CONV_BN, ConvBNAct, PooledClassifierNet, SEModule, classifier_rule,
                                 make_divisible)
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


def _conv(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, depthwise: bool = False,
          act: str | None = None) -> ConvBNAct:
    return ConvBNAct(in_chs, out_chs, kernel_size, stride=stride, groups=in_chs if depthwise else 1, act=act,
                     weight_init=KaimingNormal())


class GhostModule(nn.Layer):
    """A 1x1 `primary_conv` makes ceil(out/2) channels, a 3x3 depthwise `cheap_operation` as many more."""

    def __init__(self, in_chs: int, out_chs: int, relu: bool):
        super().__init__()
        primary_chs = math.ceil(out_chs / 2)
        act = "relu" if relu else None
        self.primary_conv = _conv(in_chs, primary_chs, 1, act=act)
        self.cheap_operation = _conv(primary_chs, primary_chs, 3, depthwise=True, act=act)

    def forward(self, x):
        x = self.primary_conv(x)
        return paddle.concat([x, self.cheap_operation(x)], axis=1)


class GhostBottleneck(nn.Layer):
    """Ghost module -> (stride 2: kxk depthwise) -> optional SE -> linear ghost module, + a shortcut that is the
    identity, or a kxk depthwise and a 1x1 conv where the shape changes."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, kernel_size: int, stride: int, use_se: bool):
        super().__init__()
        self.ghost_module_1 = GhostModule(in_chs, mid_chs, relu=True)
        self.depthwise_conv = (_conv(mid_chs, mid_chs, kernel_size, stride=2, depthwise=True) if stride == 2
                               else nn.Identity())
        self.se_block = (SEModule(mid_chs, gate="clip", fc_layer=nn.Linear) if use_se
                         else nn.Identity())
        self.ghost_module_2 = GhostModule(mid_chs, out_chs, relu=False)
        if stride == 1 and in_chs == out_chs:
            self.shortcut_depthwise, self.shortcut_conv = nn.Identity(), nn.Identity()
        else:
            self.shortcut_depthwise = _conv(in_chs, in_chs, kernel_size, stride=stride, depthwise=True)
            self.shortcut_conv = _conv(in_chs, out_chs, 1)

    def forward(self, x):
        y = self.ghost_module_2(self.se_block(self.depthwise_conv(self.ghost_module_1(x))))
        return paddle.add(y, self.shortcut_conv(self.shortcut_depthwise(x)))


# PaddleClas's blocks `_ghostbottleneck_{i}`, SE `squeeze`/`excitation`, head `fc_0`, classifier `fc_1`.
PADDLECLAS_KEYS = ((r"^_ghostbottleneck_(\d+)\.", r"blocks.\1."), (r"^fc_0\.", "head_conv."), classifier_rule("fc_1"),
                   (r"\.se_block\.squeeze\.", ".se_block.conv1."),
                   (r"\.se_block\.excitation\.", ".se_block.conv2."), *PADDLECLAS_CONV_BN)


class GhostNet(PooledClassifierNet):
    """`conv1` -> ghost bottleneck `blocks` -> 1x1 `conv_last` (features) -> pool -> 1x1 `head_conv` with BN and ReLU
    -> dropout -> `fc`.

    `cfg`: rows (kernel, expansion channels, out channels, SE, stride) at width 1.0; `scale` the width multiplier
    (channels rounded to multiples of 4). The dropout is paddle's default (scaled in training, identity at
    inference), unlike MobileNetV3's head.
    """

    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, cfg=None, scale: float = 1.0, num_classes: int = 1000, stem_chs: int = 16,
                 class_expand: int = 1280, dropout_prob: float = 0.2):
        super().__init__()
        cfg = BLOCKS if cfg is None else cfg
        in_chs = make_divisible(stem_chs * scale, 4)
        self.conv1 = _conv(3, in_chs, 3, stride=2, act="relu")
        blocks = []
        for k, exp, c, se, s in cfg:
            out_chs = make_divisible(c * scale, 4)
            blocks.append(GhostBottleneck(in_chs, make_divisible(exp * scale, 4), out_chs, k, s, se))
            in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.num_features = make_divisible(cfg[-1][1] * scale, 4)
        self.conv_last = _conv(in_chs, self.num_features, 1, act="relu")
        self.head_hidden_size = class_expand
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.head_conv = _conv(self.num_features, class_expand, 1, act="relu")
        self.dropout = nn.Dropout(p=dropout_prob)
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.reset_classifier(num_classes)

    def forward_features(self, x):
        return self.conv_last(self.blocks(self.conv1(x)))

    def forward_head(self, x, pre_logits: bool = False):
        x = self.flatten(self.dropout(self.head_conv(self.avg_pool(x))))
        return x if pre_logits else self.fc(x)


# kernel, expansion channels, out channels, SE, stride (at width 1.0)
BLOCKS = (
    (3, 16, 16, False, 1), (3, 48, 24, False, 2), (3, 72, 24, False, 1), (5, 72, 40, True, 2),
    (5, 120, 40, True, 1), (3, 240, 80, False, 2), (3, 200, 80, False, 1), (3, 184, 80, False, 1),
    (3, 184, 80, False, 1), (3, 480, 112, True, 1), (3, 672, 112, True, 1), (5, 672, 160, True, 2),
    (5, 960, 160, False, 1), (5, 960, 160, True, 1), (5, 960, 160, False, 1), (5, 960, 160, True, 1),
)
_FAMILY = "GhostNet"


@register_model(spec(family=_FAMILY, params_m=2.6, flops_g=0.04615, top1=0.6688, input_size=224))
def GhostNet_x0_5(**kw):
    return GhostNet(BLOCKS, scale=0.5, **kw)


@register_model(spec(family=_FAMILY, params_m=5.21, flops_g=0.14878, top1=0.7402, input_size=224))
def GhostNet_x1_0(**kw):
    return GhostNet(BLOCKS, scale=1.0, **kw)


@register_model(spec(family=_FAMILY, params_m=7.38, flops_g=0.23689, top1=0.7579, input_size=224,
                     weights=("in1k", "ssld")))
def GhostNet_x1_3(**kw):
    return GhostNet(BLOCKS, scale=1.3, **kw)
