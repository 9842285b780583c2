"""MixNet (Tan & Le, 2019, arXiv:1907.09595). Weight-compatible with PaddleClas's MixNet.

Inverted residuals whose depthwise convs mix kernel sizes (3, 5, 7, 9, 11) over channel groups, and whose 1x1 convs
may be split into groups too. Stage 1 uses ReLU, the rest swish. PaddleClas pools with a fixed 7x7 window, which
equals global pooling at its 224 px input and fails at most other sizes; ours pools globally.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from ppipe.models.layers import (ConvBNAct, PooledClassifierNet, SEModule, classifier_rule, create_act,
                                  make_divisible)
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


def _split(chs: int, parts: int) -> list[int]:
    """Equal channel groups, the remainder going to the first (PaddleClas's split)."""
    sizes = [chs // parts] * parts
    sizes[0] += chs - sum(sizes)
    return sizes


class MixConv(nn.LayerList):
    """Convs over channel groups, group i with kernel `kernel_sizes[i]` ('same' padding), outputs concatenated.

    `depthwise`: every group is a depthwise conv; else each is a full conv from its input group to its output group.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_sizes: list[int], stride: int = 1, depthwise: bool = False):
        self.in_splits = _split(in_chs, len(kernel_sizes))
        super().__init__([nn.Conv2D(i, o, k, stride=stride, padding=(k - 1) // 2, groups=o if depthwise else 1,
                                    bias_attr=False)
                          for i, o, k in zip(self.in_splits, _split(out_chs, len(kernel_sizes)), kernel_sizes)])

    def forward(self, x):
        xs = paddle.split(x, self.in_splits, axis=1)
        return paddle.concat([conv(xi) for conv, xi in zip(self, xs)], axis=1)


class MixConvBNAct(nn.Layer):
    """`MixConv` -> BatchNorm -> `act`; keys `conv.{i}.weight` and `bn.*` like `ConvBNAct`'s."""

    bn_act_pairs = (("bn", "act"),)  # `act` applies to `bn`'s output only: fusable in CPU training

    def __init__(self, in_chs: int, out_chs: int, kernel_sizes: list[int], stride: int = 1, depthwise: bool = False,
                 act: str | None = None):
        super().__init__()
        self.conv = MixConv(in_chs, out_chs, kernel_sizes, stride=stride, depthwise=depthwise)
        self.bn = nn.BatchNorm2D(out_chs)
        self.act = create_act(act)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def _pointwise(in_chs: int, out_chs: int, groups: int, act: str | None) -> nn.Layer:
    return (ConvBNAct(in_chs, out_chs, 1, act=act) if groups == 1
            else MixConvBNAct(in_chs, out_chs, [1] * groups, act=act))


def _depthwise(chs: int, groups: int, stride: int, act: str) -> nn.Layer:
    return (ConvBNAct(chs, chs, 3, stride=stride, groups=chs, act=act) if groups == 1
            else MixConvBNAct(chs, chs, [3 + 2 * i for i in range(groups)], stride=stride, depthwise=True, act=act))


class MixUnit(nn.Layer):
    """(expand 1x1, grouped into `exp_groups`) -> mixed depthwise (`dw_groups` kernel sizes) -> optional SE ->
    linear 1x1 (grouped into `proj_groups`), + identity when shapes allow. Row fields as in `STAGES`."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, exp_groups: int, dw_groups: int, proj_groups: int,
                 exp_factor: int, se_factor: int, act: str):
        super().__init__()
        self.has_shortcut = in_chs == out_chs and stride == 1
        mid_chs = in_chs * exp_factor
        self.exp_conv = _pointwise(in_chs, mid_chs, exp_groups, act) if exp_factor > 1 else nn.Identity()
        self.conv1 = _depthwise(mid_chs, dw_groups, stride, act)
        self.se = (SEModule(mid_chs, rd_channels=mid_chs // (exp_factor * se_factor), act=act, gate="sigmoid")
                   if se_factor > 0 else nn.Identity())
        self.conv2 = _pointwise(mid_chs, out_chs, proj_groups, None)

    def forward(self, x):
        y = self.conv2(self.se(self.conv1(self.exp_conv(x))))
        return x + y if self.has_shortcut else y


class MixNet(PooledClassifierNet):
    """`features`: `init_block` (3x3 stem + a plain unit), `stage1`..`stage4`, 1x1 `final_block` -> pool -> `fc`.

    `stages`: per stage, rows (out channels, exp groups, dw groups, proj groups, expansion, SE factor);
    `scale` widens every unit but the final block. The first unit of stages 1-3 and the middle unit of stage 4
    have stride 2.
    """

    paddleclas_key_rules = (classifier_rule("output"),)  # PaddleClas's classifier is `output`

    def __init__(self, stages, stem_chs: int, scale: float = 1.0, num_classes: int = 1000, final_chs: int = 1536):
        super().__init__()
        in_chs = make_divisible(stem_chs * scale)
        init_block = nn.Sequential(("conv1", ConvBNAct(3, in_chs, 3, stride=2, act="relu")),
                                   ("conv2", MixUnit(in_chs, in_chs, 1, 1, 1, 1, 1, 0, "relu")))
        features = [("init_block", init_block)]
        for i, rows in enumerate(stages):
            units = []
            for j, (c, exp_g, dw_g, proj_g, exp, se) in enumerate(rows):
                strided = j == len(rows) // 2 if i == len(stages) - 1 else j == 0
                out_chs = make_divisible(c * scale)
                units.append((f"unit{j + 1}", MixUnit(in_chs, out_chs, 2 if strided else 1, exp_g, dw_g, proj_g, exp,
                                                      se, "relu" if i == 0 else "swish")))
                in_chs = out_chs
            features.append((f"stage{i + 1}", nn.Sequential(*units)))
        features.append(("final_block", ConvBNAct(in_chs, final_chs, 1, act="relu")))
        self.features = nn.Sequential(*features)
        self._init_head(final_chs, num_classes, use_last_conv=False)

    def forward_features(self, x):
        return self.features(x)


# out channels, exp groups, dw groups (kernels 3, 5, ...), proj groups, expansion, SE factor
SMALL = (
    ((24, 2, 1, 2, 6, 0), (24, 2, 1, 2, 3, 0)),
    ((40, 1, 3, 1, 6, 2), (40, 2, 2, 2, 6, 2), (40, 2, 2, 2, 6, 2), (40, 2, 2, 2, 6, 2)),
    ((80, 1, 3, 2, 6, 4), (80, 1, 2, 2, 6, 4), (80, 1, 2, 2, 6, 4)),
    ((120, 2, 3, 2, 6, 2), (120, 2, 4, 2, 3, 2), (120, 2, 4, 2, 3, 2),
     (200, 1, 5, 1, 6, 2), (200, 1, 4, 2, 6, 2), (200, 1, 4, 2, 6, 2)),
)
MEDIUM = (
    ((32, 2, 3, 2, 6, 0), (32, 2, 1, 2, 3, 0)),
    ((40, 1, 4, 1, 6, 2), (40, 2, 2, 2, 6, 2), (40, 2, 2, 2, 6, 2), (40, 2, 2, 2, 6, 2)),
    ((80, 1, 3, 1, 6, 4), (80, 2, 4, 2, 6, 4), (80, 2, 4, 2, 6, 4), (80, 2, 4, 2, 6, 4)),
    ((120, 1, 1, 1, 6, 2), (120, 2, 4, 2, 3, 2), (120, 2, 4, 2, 3, 2), (120, 2, 4, 2, 3, 2),
     (200, 1, 4, 1, 6, 2), (200, 1, 4, 2, 6, 2), (200, 1, 4, 2, 6, 2), (200, 1, 4, 2, 6, 2)),
)
_FAMILY = "MixNet"


@register_model(spec(family=_FAMILY, params_m=4.167, flops_g=0.25298, top1=0.7628, input_size=224))
def MixNet_S(**kw):
    return MixNet(SMALL, stem_chs=16, **kw)


@register_model(spec(family=_FAMILY, params_m=5.065, flops_g=0.35712, top1=0.7767, input_size=224))
def MixNet_M(**kw):
    return MixNet(MEDIUM, stem_chs=24, **kw)


@register_model(spec(family=_FAMILY, params_m=7.384, flops_g=0.57902, top1=0.786, input_size=224))
def MixNet_L(**kw):
    return MixNet(MEDIUM, stem_chs=24, scale=1.3, **kw)
