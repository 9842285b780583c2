"""ResNeSt (Zhang et al., 2020, arXiv:2004.08955). Weight-compatible with PaddleClas's ResNeSt.

A ResNet-D (deep stem, average-pooled shortcuts) whose 3x3 convolutions are split attention
(`ppipe.models.layers.split_attention`). PaddleClas's layer names (`layer2.layer2_bottleneck_0.conv2.conv1._conv`)
map onto ppipe's clean ones (`stages.1.0.conv2.radix_conv.conv`) in `ResNeSt.remap_checkpoint`.
"""

from __future__ import annotations


import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, PADDLECLAS_CONV_BN, classifier_rule
from ppipe.models.layers.resnet_blocks import make_stem, projection_shortcut
from ppipe.models.layers.classifier import uniform_linear
from ppipe.models.layers.split_attention import SplitAttn
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

EXPANSION = 4


class ResNeStBottleneck(nn.Layer):
    """1x1 reduce -> split-attention 3x3 -> 1x1 expand, + shortcut, ReLU.

    A strided block downsamples with a 3x3 average pool ("avd") instead of a strided conv: before the split
    attention when `avd_first`, else after it. Its projection shortcut average-pools before a stride-1 1x1 conv,
    in ceil mode as the original ResNeSt does: PaddleClas floors, which gives the same maps at input sizes that are
    multiples of 32 and a map that does not fit the residual's elsewhere (an error, or a silent broadcast).
    """

    def __init__(self, in_chs: int, planes: int, stride: int, radix: int, cardinality: int, bottleneck_width: int,
                 avd_first: bool):
        super().__init__()
        group_width = int(planes * bottleneck_width / 64) * cardinality
        out_chs = planes * EXPANSION
        self.avd_first = avd_first
        self.conv1 = ConvBNAct(in_chs, group_width, 1, act="relu")
        self.avd_pool = nn.AvgPool2D(3, stride=stride, padding=1) if stride > 1 else nn.Identity()
        self.conv2 = SplitAttn(group_width, group_width, 3, groups=cardinality, radix=radix)
        self.conv3 = ConvBNAct(group_width, out_chs, 1, act=None)
        project = stride > 1 or in_chs != out_chs
        self.shortcut = (projection_shortcut(in_chs, out_chs, stride, avg_down=stride > 1) if project
                         else nn.Identity())

    def forward(self, x):
        y = self.conv1(x)
        y = self.conv2(self.avd_pool(y)) if self.avd_first else self.avd_pool(self.conv2(y))
        y = self.conv3(y)
        return F.relu(paddle.add(self.shortcut(x), y))


# PaddleClas -> ppipe names: stem `stem.conv{1,2,3}`, blocks `layer{s}.layer{s}_bottleneck_{i}` (s from 1), split
# attention `conv2.conv{1,2,3}`, shortcut conv `conv4` and its BN the block's own `_batch_norm`, classifier `out`.
_BLOCK_PART = {"conv2.conv1.": "conv2.radix_conv.", "conv2.conv2.": "conv2.attn_reduce.",
               "conv2.conv3.": "conv2.attn_expand.", "conv4.": "shortcut.conv.", "_batch_norm.": "shortcut.bn."}
PADDLECLAS_KEYS = ((r"^stem\.conv(\d)\.", lambda m: f"stem.{int(m[1]) - 1}."),
                   (r"^layer(\d)\.layer\d_bottleneck_(\d+)\.(conv2\.conv[123]\.|conv4\.|_batch_norm\.)?",
                    lambda m: f"stages.{int(m[1]) - 1}.{m[2]}." + _BLOCK_PART.get(m[3] or "", "")),
                   *PADDLECLAS_CONV_BN, classifier_rule("out"))


class ResNeSt(PooledClassifierNet):
    """Deep stem (three 3x3 convs, `stem_width` -> 2 x `stem_width`) -> max-pool -> four stages of split-attention
    bottlenecks (features, 2048 channels) -> global pool -> `fc`."""

    classifier_layer = staticmethod(uniform_linear)
    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, depths=(3, 4, 6, 3), radix: int = 2, cardinality: int = 1, bottleneck_width: int = 64,
                 stem_width: int = 32, avd_first: bool = False, num_classes: int = 1000):
        super().__init__()
        self.stem = make_stem(((stem_width, 3, 2), (stem_width, 3, 1), (stem_width * 2, 3, 1)))
        self.stem_pool = nn.MaxPool2D(3, stride=2, padding=1)
        in_chs, stages = stem_width * 2, []
        for idx, depth in enumerate(depths):
            planes = 64 * 2 ** idx
            blocks = []
            for i in range(depth):
                blocks.append(ResNeStBottleneck(in_chs, planes, stride=2 if i == 0 and idx > 0 else 1, radix=radix,
                                                cardinality=cardinality, bottleneck_width=bottleneck_width,
                                                avd_first=avd_first))
                in_chs = planes * EXPANSION
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self._init_head(in_chs, num_classes, use_last_conv=False)

    def forward_features(self, x):
        return self.stages(self.stem_pool(self.stem(x)))


_FAMILY = "ResNeSt"


@register_model(spec(family=_FAMILY, params_m=26.27, flops_g=4.36, top1=0.8035))
def ResNeSt50_fast_1s1x64d(**kw):
    return ResNeSt(depths=(3, 4, 6, 3), radix=1, avd_first=True, **kw)


@register_model(spec(family=_FAMILY, params_m=27.54, flops_g=5.4, top1=0.8083))
def ResNeSt50(**kw):
    return ResNeSt(depths=(3, 4, 6, 3), radix=2, avd_first=False, **kw)
