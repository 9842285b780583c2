"""Res2Net (Gao et al., 2019, arXiv:1904.01169), plain and ResNet-D ("vd"). Weight-compatible with PaddleClas's
Res2Net and Res2Net_vd.

PaddleClas names these models' layers after their old global parameter names (`bb_0_0.res2a_branch2b_1._conv`);
ppipe keeps a clean structure (`stages.0.0.scale_convs.0.conv`) and `Res2Net.remap_checkpoint` maps the keys.
"""

from __future__ import annotations


import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, PADDLECLAS_CONV_BN, classifier_rule
from ppipe.models.layers.resnet_blocks import STEM_7X7, STEM_DEEP, make_stem, projection_shortcut
from ppipe.models.layers.classifier import uniform_linear
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

STAGE_IN = (64, 256, 512, 1024)
STAGE_OUT = (256, 512, 1024, 2048)
DEPTHS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 200: (3, 12, 48, 3)}


class Res2NetBottleneck(nn.Layer):
    """1x1 reduce -> hierarchical 3x3 convs over `scales` channel groups -> 1x1 expand, + shortcut, ReLU.

    Group s (s >= 1) is convolved after adding the previous group's output, except in a strided block, where every
    group is convolved on its own and the untouched last group is average-pooled to the new resolution.
    `vd`: a strided projection shortcut average-pools first and then convolves with stride 1 (ResNet-D).
    """

    def __init__(self, in_chs: int, out_chs: int, width: int, scales: int, stride: int, vd: bool):
        super().__init__()
        self.scales, self.stride = scales, stride
        group_chs = width // scales
        self.conv1 = ConvBNAct(in_chs, width, 1, act="relu")
        self.scale_convs = nn.LayerList(
            [ConvBNAct(group_chs, group_chs, 3, stride=stride, act="relu") for _ in range(scales - 1)])
        self.last_group_pool = nn.AvgPool2D(3, stride=stride, padding=1) if stride > 1 else nn.Identity()
        self.conv3 = ConvBNAct(width, out_chs, 1, act=None)
        project = stride > 1 or in_chs != out_chs
        self.shortcut = (projection_shortcut(in_chs, out_chs, stride, avg_down=vd and stride > 1) if project
                         else nn.Identity())

    def forward(self, x):
        groups = paddle.split(self.conv1(x), self.scales, axis=1)
        outs = []
        for s, conv in enumerate(self.scale_convs):
            outs.append(conv(groups[s] if s == 0 or self.stride > 1 else paddle.add(groups[s], outs[-1])))
        outs.append(self.last_group_pool(groups[-1]))
        y = self.conv3(paddle.concat(outs, axis=1))
        return F.relu(paddle.add(self.shortcut(x), y))


# PaddleClas -> ppipe names: stems `conv1` / `conv1_{1,2,3}`, blocks `bb_{stage}_{index}` holding `conv0`,
# `res{...}_branch2b_{n}` (n from 1), `conv2` and `short`, ConvBN parts `_conv` / `_batch_norm`, classifier `out`.
_BLOCK_PART = {"conv0": "conv1", "conv2": "conv3", "short": "shortcut"}
PADDLECLAS_KEYS = (*PADDLECLAS_CONV_BN, (r"^conv1(?:_(\d))?\.", lambda m: f"stem.{int(m[1] or 1) - 1}."),
                   (r"^bb_(\d+)_(\d+)\.(conv0|conv2|short|res\w+?_branch2b_(\d+))\.",
                    lambda m: f"stages.{m[1]}.{m[2]}." + (f"scale_convs.{int(m[4]) - 1}." if m[4]
                                                          else f"{_BLOCK_PART[m[3]]}.")),
                   classifier_rule("out"))


class Res2Net(PooledClassifierNet):
    """Stem (one 7x7 conv, or three 3x3 convs when `vd`) -> max-pool -> four stages of Res2Net bottlenecks
    (features, 2048 channels) -> global pool -> `fc`.

    `width`: channels of one scale group in the first stage (doubling per stage); `scales`: groups per block.
    """

    classifier_layer = staticmethod(uniform_linear)
    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, layers: int = 50, scales: int = 4, width: int = 26, vd: bool = False,
                 num_classes: int = 1000):
        super().__init__()
        if layers not in DEPTHS:
            raise ValueError(f"Res2Net depth {layers} is not one of {sorted(DEPTHS)}")
        self.stem = make_stem(STEM_DEEP if vd else STEM_7X7)
        self.stem_pool = nn.MaxPool2D(3, stride=2, padding=1)
        stages = []
        for idx, (depth, in_chs, out_chs) in enumerate(zip(DEPTHS[layers], STAGE_IN, STAGE_OUT)):
            stage_width = width * scales * 2 ** idx
            stages.append(nn.Sequential(*[
                Res2NetBottleneck(in_chs if i == 0 else out_chs, out_chs, stage_width, scales,
                                  stride=2 if i == 0 and idx > 0 else 1, vd=vd) for i in range(depth)]))
        self.stages = nn.Sequential(*stages)
        self._init_head(STAGE_OUT[-1], num_classes, use_last_conv=False)

    def forward_features(self, x):
        return self.stages(self.stem_pool(self.stem(x)))


def _create(layers: int, scales: int, width: int, vd: bool, **kw) -> Res2Net:
    return Res2Net(layers=layers, scales=scales, width=width, vd=vd, **kw)


_FAMILY = "Res2Net"


@register_model(spec(family=_FAMILY, params_m=25.76, flops_g=4.28, top1=0.7933))
def Res2Net50_26w_4s(**kw):
    return _create(50, scales=4, width=26, vd=False, **kw)


@register_model(spec(family=_FAMILY, params_m=25.12, flops_g=4.2, top1=0.7946))
def Res2Net50_14w_8s(**kw):
    return _create(50, scales=8, width=14, vd=False, **kw)


@register_model(spec(family=_FAMILY, params_m=25.78, flops_g=4.52, top1=0.7975, weights=("in1k", "ssld")))
def Res2Net50_vd_26w_4s(**kw):
    return _create(50, scales=4, width=26, vd=True, **kw)


@register_model(spec(family=_FAMILY, params_m=45.35, flops_g=8.35, top1=0.8064, weights=("in1k", "ssld")))
def Res2Net101_vd_26w_4s(**kw):
    return _create(101, scales=4, width=26, vd=True, **kw)


@register_model(spec(family=_FAMILY, params_m=76.44, flops_g=15.77, top1=0.8121, weights=("in1k", "ssld")))
def Res2Net200_vd_26w_4s(**kw):
    return _create(200, scales=4, width=26, vd=True, **kw)
