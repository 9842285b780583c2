"""RegNetX (Radosavovic et al., 2020, arXiv:2003.13678). Weight-compatible with PaddleClas's RegNet.

Stage widths and depths come from RegNet's quantized linear width rule (`w_a`, `w_0`, `w_m`, depth), as in
PaddleClas. Its layer names (`s1_b1.conv0._conv`) map onto ppipe's (`stages.0.0.conv1.conv`) in
`RegNet.remap_checkpoint`.
"""

from __future__ import annotations

import itertools

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, PADDLECLAS_CONV_BN, classifier_rule
from ppipe.models.layers.classifier import uniform_linear
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

STEM_CHS = 32


def regnet_stages(w_a: float, w_0: int, w_m: float, depth: int, group_w: int, q: int = 8) -> list[tuple]:
    """(blocks, width, group width) per stage for RegNet parameters (bottleneck multiplier 1).

    Block j's width w_0 + w_a * j is snapped to w_0 times a whole power of w_m and rounded to a multiple of `q`;
    runs of equal widths form the stages, whose width is then rounded to a multiple of its group width.
    """
    linear = np.arange(depth) * w_a + w_0
    powers = np.round(np.log(linear / w_0) / np.log(w_m))
    widths = (np.round(w_0 * np.power(w_m, powers) / q) * q).astype(int).tolist()
    stages = []
    for width, run in itertools.groupby(widths):
        gw = min(group_w, width)
        stages.append((len(list(run)), int(round(width / gw) * gw), gw))
    return stages


# PaddleClas -> ppipe names: stem `conv`, blocks `s{stage}_b{block}` (from 1) holding `conv0`, `conv1`, `conv2` and
# `short`, ConvBN parts `_conv` / `_batch_norm`, classifier `out`.
_BLOCK_PART = {"conv0": "conv1", "conv1": "conv2", "conv2": "conv3", "short": "shortcut"}
PADDLECLAS_KEYS = ((r"^s(\d+)_b(\d+)\.(conv[012]|short)\.",
                    lambda m: f"stages.{int(m[1]) - 1}.{int(m[2]) - 1}.{_BLOCK_PART[m[3]]}."),
                   (r"^conv\._", "stem._"), *PADDLECLAS_CONV_BN, classifier_rule("out"))


class RegNetBottleneck(nn.Layer):
    """1x1 -> grouped 3x3 (stride) -> 1x1, + identity or 1x1 projection, ReLU; one width throughout."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, group_w: int):
        super().__init__()
        self.conv1 = ConvBNAct(in_chs, out_chs, 1, act="relu")
        self.conv2 = ConvBNAct(out_chs, out_chs, 3, stride=stride, groups=out_chs // group_w, act="relu")
        self.conv3 = ConvBNAct(out_chs, out_chs, 1, act=None)
        self.has_projection = stride > 1 or in_chs != out_chs
        if self.has_projection:
            self.shortcut = ConvBNAct(in_chs, out_chs, 1, stride=stride, act=None)

    def forward(self, x):
        y = self.conv3(self.conv2(self.conv1(x)))
        return F.relu(paddle.add(self.shortcut(x) if self.has_projection else x, y))


class RegNet(PooledClassifierNet):
    """3x3 stem (stride 2, 32 channels) -> stages of bottlenecks, each starting with stride 2 (features) ->
    global pool -> `fc`."""

    classifier_layer = staticmethod(uniform_linear)
    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, w_a: float, w_0: int, w_m: float, depth: int, group_w: int, q: int = 8,
                 num_classes: int = 1000):
        super().__init__()
        self.stem = ConvBNAct(3, STEM_CHS, 3, stride=2, act="relu")
        in_chs, stages = STEM_CHS, []
        for blocks, width, gw in regnet_stages(w_a, w_0, w_m, depth, group_w, q):
            stages.append(nn.Sequential(*[
                RegNetBottleneck(in_chs if i == 0 else width, width, 2 if i == 0 else 1, gw) for i in range(blocks)]))
            in_chs = width
        self.stages = nn.Sequential(*stages)
        self._init_head(in_chs, num_classes, use_last_conv=False)

    def forward_features(self, x):
        return self.stages(self.stem(x))


@register_model(spec(family="RegNet", params_m=22.23, flops_g=4.0, top1=0.785))
def RegNetX_4GF(**kw):
    return RegNet(w_a=38.65, w_0=96, w_m=2.43, depth=23, group_w=40, **kw)
