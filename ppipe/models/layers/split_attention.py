"""Split attention, the 3x3 convolution of ResNeSt (Zhang et al., 2020, arXiv:2004.08955).

Keys `radix_conv.{conv,bn}`, `attn_reduce.{conv,bn}`, `attn_expand.{weight,bias}`; ResNeSt's `remap_checkpoint`
maps PaddleClas's `conv1`/`conv2`/`conv3` onto them.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import KaimingNormal

from ppipe.models.layers.conv_bn_act import ConvBNAct


class SplitAttn(nn.Layer):
    """A grouped kxk conv producing `radix` splits of `out_chs` channels, recombined by attention weights.

    The splits are summed, pooled and squeezed (`attn_reduce`, at least `min_attn_chs` channels) and expanded
    back to one weight per split and channel (`attn_expand`); the weights are a softmax across the splits within
    each of the `groups` cardinal groups (a sigmoid gate when `radix` is 1).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 radix: int = 2, reduction_factor: int = 4, min_attn_chs: int = 32):
        super().__init__()
        if radix < 1:
            raise ValueError(f"radix must be at least 1, got {radix}")
        self.radix, self.groups = radix, groups
        attn_chs = max(in_chs * radix // reduction_factor, min_attn_chs)
        self.radix_conv = ConvBNAct(in_chs, out_chs * radix, kernel_size, stride=stride, groups=groups * radix,
                                    act="relu")
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.attn_reduce = ConvBNAct(out_chs, attn_chs, 1, groups=groups, act="relu")
        self.attn_expand = nn.Conv2D(attn_chs, out_chs * radix, 1, groups=groups,
                                     weight_attr=ParamAttr(initializer=KaimingNormal()))

    def _attention_logits(self, x):
        return self.attn_expand(self.attn_reduce(self.pool(x)))

    def forward(self, x):
        x = self.radix_conv(x)
        if self.radix == 1:
            return paddle.multiply(x, F.sigmoid(self._attention_logits(x)))
        splits = paddle.split(x, self.radix, axis=1)
        logits = self._attention_logits(paddle.add_n(splits))
        # the expand conv's channels run (group, split, channel): softmax across the splits within each group,
        # then lay the weights out split-major like the radix conv's output
        w = paddle.transpose(paddle.reshape(logits, [0, self.groups, self.radix, -1]), [0, 2, 1, 3])
        weights = paddle.split(paddle.reshape(F.softmax(w, axis=1), [0, -1, 1, 1]), self.radix, axis=1)
        return paddle.add_n([paddle.multiply(split, weight) for split, weight in zip(splits, weights)])
