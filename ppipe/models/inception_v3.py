"""Inception-v3 (Szegedy et al., 2015, arXiv:1512.00567). Weight-compatible with PaddleClas's InceptionV3.

Stem, then blocks A (x3, 35x35), B (grid reduction), C (x4, factorised 7x7), D (grid reduction), E (x2, expanded
3x3), pooled into a 2048-wide classifier. Keys are PaddleClas's as they are (`inception_stem.conv_1a_3x3.conv.weight`,
`inception_block_list.3.branch3x3.bn._mean`, `fc.weight`).
"""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers import PooledClassifierNet
from ppipe.models.layers.conv_bn_act import COL3, COL7, ROW3, ROW7, conv_bn_relu
from ppipe.models.layers.classifier import uniform_linear
from ppipe.models.layers.concat_branches import ConcatBranches
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


def _avg_pool_3x3(count_padding: bool) -> nn.AvgPool2D:
    """The 3x3 stride-1 average pool of the pooling branches (`exclusive=False` averages over the padding too)."""
    return nn.AvgPool2D(kernel_size=3, stride=1, padding=1, exclusive=not count_padding)


class InceptionStem(nn.Layer):
    def __init__(self):
        super().__init__()
        self.conv_1a_3x3 = conv_bn_relu(3, 32, 3, stride=2)
        self.conv_2a_3x3 = conv_bn_relu(32, 32, 3)
        self.conv_2b_3x3 = conv_bn_relu(32, 64, 3, padding=1)
        self.max_pool = nn.MaxPool2D(kernel_size=3, stride=2)
        self.conv_3b_1x1 = conv_bn_relu(64, 80, 1)
        self.conv_4a_3x3 = conv_bn_relu(80, 192, 3)

    def forward(self, x):
        x = self.max_pool(self.conv_2b_3x3(self.conv_2a_3x3(self.conv_1a_3x3(x))))
        return self.max_pool(self.conv_4a_3x3(self.conv_3b_1x1(x)))


def _inception_a(in_chs: int, pool_chs: int) -> ConcatBranches:
    """1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg-pool -> 1x1 (`pool_chs`); 224 + pool_chs channels out."""
    return ConcatBranches(dict(
        branch1x1=conv_bn_relu(in_chs, 64, 1), branch5x5_1=conv_bn_relu(in_chs, 48, 1),
        branch5x5_2=conv_bn_relu(48, 64, 5, padding=2), branch3x3dbl_1=conv_bn_relu(in_chs, 64, 1),
        branch3x3dbl_2=conv_bn_relu(64, 96, 3, padding=1), branch3x3dbl_3=conv_bn_relu(96, 96, 3, padding=1),
        branch_pool=_avg_pool_3x3(count_padding=True), branch_pool_conv=conv_bn_relu(in_chs, pool_chs, 1),
    ), (("branch1x1",), ("branch5x5_1", "branch5x5_2"), ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"),
        ("branch_pool", "branch_pool_conv")))


def _inception_b(in_chs: int) -> ConcatBranches:
    """Grid reduction 35 -> 17: stride-2 3x3 | 1x1 -> 3x3 -> stride-2 3x3 | max-pool."""
    return ConcatBranches(dict(
        branch3x3=conv_bn_relu(in_chs, 384, 3, stride=2), branch3x3dbl_1=conv_bn_relu(in_chs, 64, 1),
        branch3x3dbl_2=conv_bn_relu(64, 96, 3, padding=1), branch3x3dbl_3=conv_bn_relu(96, 96, 3, stride=2),
        branch_pool=nn.MaxPool2D(kernel_size=3, stride=2),
    ), (("branch3x3",), ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"), ("branch_pool",)))


def _inception_c(in_chs: int, mid_chs: int) -> ConcatBranches:
    """7x7 convolutions factorised into 1x7 and 7x1 (`mid_chs` wide); 768 channels out."""
    return ConcatBranches(dict(
        branch1x1=conv_bn_relu(in_chs, 192, 1), branch7x7_1=conv_bn_relu(in_chs, mid_chs, 1),
        branch7x7_2=conv_bn_relu(mid_chs, mid_chs, **ROW7), branch7x7_3=conv_bn_relu(mid_chs, 192, **COL7),
        branch7x7dbl_1=conv_bn_relu(in_chs, mid_chs, 1), branch7x7dbl_2=conv_bn_relu(mid_chs, mid_chs, **COL7),
        branch7x7dbl_3=conv_bn_relu(mid_chs, mid_chs, **ROW7), branch7x7dbl_4=conv_bn_relu(mid_chs, mid_chs, **COL7),
        branch7x7dbl_5=conv_bn_relu(mid_chs, 192, **ROW7),
        branch_pool=_avg_pool_3x3(count_padding=True), branch_pool_conv=conv_bn_relu(in_chs, 192, 1),
    ), (("branch1x1",), ("branch7x7_1", "branch7x7_2", "branch7x7_3"),
        tuple(f"branch7x7dbl_{i}" for i in range(1, 6)), ("branch_pool", "branch_pool_conv")))


def _inception_d(in_chs: int) -> ConcatBranches:
    """Grid reduction 17 -> 8: 1x1 -> stride-2 3x3 | 1x1 -> 1x7 -> 7x1 -> stride-2 3x3 | max-pool."""
    return ConcatBranches(dict(
        branch3x3_1=conv_bn_relu(in_chs, 192, 1), branch3x3_2=conv_bn_relu(192, 320, 3, stride=2),
        branch7x7x3_1=conv_bn_relu(in_chs, 192, 1), branch7x7x3_2=conv_bn_relu(192, 192, **ROW7),
        branch7x7x3_3=conv_bn_relu(192, 192, **COL7), branch7x7x3_4=conv_bn_relu(192, 192, 3, stride=2),
        branch_pool=nn.MaxPool2D(kernel_size=3, stride=2),
    ), (("branch3x3_1", "branch3x3_2"), tuple(f"branch7x7x3_{i}" for i in range(1, 5)), ("branch_pool",)))


def _inception_e(in_chs: int) -> ConcatBranches:
    """Expanded filter bank: the 3x3 branches split into parallel 1x3 and 3x1; 2048 channels out."""
    return ConcatBranches(dict(
        branch1x1=conv_bn_relu(in_chs, 320, 1), branch3x3_1=conv_bn_relu(in_chs, 384, 1),
        branch3x3_2a=conv_bn_relu(384, 384, **ROW3), branch3x3_2b=conv_bn_relu(384, 384, **COL3),
        branch3x3dbl_1=conv_bn_relu(in_chs, 448, 1), branch3x3dbl_2=conv_bn_relu(448, 384, 3, padding=1),
        branch3x3dbl_3a=conv_bn_relu(384, 384, **ROW3), branch3x3dbl_3b=conv_bn_relu(384, 384, **COL3),
        branch_pool=_avg_pool_3x3(count_padding=True), branch_pool_conv=conv_bn_relu(in_chs, 192, 1),
    ), (("branch1x1",), ("branch3x3_1", "branch3x3_2a"), ("branch3x3_1", "branch3x3_2b"),
        ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3a"),
        ("branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3b"), ("branch_pool", "branch_pool_conv")))


class InceptionV3(PooledClassifierNet):
    """`inception_stem` -> `inception_block_list` (A x3, B, C x4, D, E x2) -> features [N, 2048, 8, 8] at 299 px
    -> global average pool -> dropout -> `fc`."""

    classifier_layer = staticmethod(uniform_linear)  # PaddleClas's init: uniform in +-1/sqrt(fan_in)

    def __init__(self, num_classes: int = 1000, dropout_prob: float = 0.2):
        super().__init__()
        self.inception_stem = InceptionStem()
        blocks = [_inception_a(c, p) for c, p in ((192, 32), (256, 64), (288, 64))]
        blocks.append(_inception_b(288))
        blocks += [_inception_c(768, mid) for mid in (128, 160, 160, 192)]
        blocks.append(_inception_d(768))
        blocks += [_inception_e(c) for c in (1280, 2048)]
        self.inception_block_list = nn.LayerList(blocks)
        self._init_head(2048, num_classes, use_last_conv=False)
        # dropout on the pooled features; "downscale_in_infer" scales by (1 - p) at inference, as PaddleClas does
        self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")

    def forward_features(self, x):
        x = self.inception_stem(x)
        for block in self.inception_block_list:
            x = block(x)
        return x


# 75 px is the smallest input that survives the stem's and the two grid reductions' unpadded strides.
@register_model(spec(family="Inception", params_m=23.87, flops_g=5.73, top1=0.7914, input_size=299,
                     min_input_size=75, name="InceptionV3"))
def inception_v3(**kw):
    return InceptionV3(**kw)
