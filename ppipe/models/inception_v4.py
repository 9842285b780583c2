"""Inception-v4 (Szegedy et al., 2016, arXiv:1602.07261). Weight-compatible with PaddleClas's InceptionV4.

Stem, inception A x4, reduction A, inception B x7, reduction B, inception C x3, pooled into a 1536-wide
classifier. PaddleClas's keys differ from ours only in a leading underscore on each layer name, `_batch_norm` for
`bn` and `out` for `fc` (`_inceptionB_3._conv4_2._batch_norm._mean` -> `inceptionB_3.conv4_2.bn._mean`);
`remap_checkpoint` does that. Branch layers keep PaddleClas's numbering: `convK_*` is the K-th branch's chain.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from ppipe.models.layers import PooledClassifierNet, classifier_rule
from ppipe.models.layers.conv_bn_act import COL3, COL7, ROW3, ROW7, conv_bn_relu
from ppipe.models.layers.classifier import uniform_linear
from ppipe.models.layers.concat_branches import ConcatBranches
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

def _avg_pool_3x3() -> nn.AvgPool2D:
    # PaddleClas's Inception-v4 averages over the valid pixels only (paddle's default `exclusive=True`)
    return nn.AvgPool2D(kernel_size=3, stride=1, padding=1)


class InceptionStem(nn.Layer):
    """3x3/2 -> 3x3 -> 3x3 -> [max-pool | 3x3/2] -> [1x1 -> 3x3 | 1x1 -> 7x1 -> 1x7 -> 3x3] -> [3x3/2 | max-pool];
    384 channels at 35x35 for a 299 px input."""

    def __init__(self):
        super().__init__()
        self.conv_1 = conv_bn_relu(3, 32, 3, stride=2)
        self.conv_2 = conv_bn_relu(32, 32, 3)
        self.conv_3 = conv_bn_relu(32, 64, 3, padding=1)
        self.pool = nn.MaxPool2D(kernel_size=3, stride=2)
        self.conv2 = conv_bn_relu(64, 96, 3, stride=2)
        self.conv1_1 = conv_bn_relu(160, 64, 1)
        self.conv1_2 = conv_bn_relu(64, 96, 3)
        self.conv2_1 = conv_bn_relu(160, 64, 1)
        self.conv2_2 = conv_bn_relu(64, 64, **COL7)
        self.conv2_3 = conv_bn_relu(64, 64, **ROW7)
        self.conv2_4 = conv_bn_relu(64, 96, 3)
        self.conv3 = conv_bn_relu(192, 192, 3, stride=2)

    def forward(self, x):
        x = self.conv_3(self.conv_2(self.conv_1(x)))
        x = paddle.concat([self.pool(x), self.conv2(x)], axis=1)
        x = paddle.concat([self.conv1_2(self.conv1_1(x)),
                           self.conv2_4(self.conv2_3(self.conv2_2(self.conv2_1(x))))], axis=1)
        return paddle.concat([self.conv3(x), self.pool(x)], axis=1)


def _inception_a() -> ConcatBranches:
    """avg-pool -> 1x1 | 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3; 384 channels in and out."""
    return ConcatBranches(dict(
        pool=_avg_pool_3x3(), conv1=conv_bn_relu(384, 96, 1), conv2=conv_bn_relu(384, 96, 1),
        conv3_1=conv_bn_relu(384, 64, 1), conv3_2=conv_bn_relu(64, 96, 3, padding=1),
        conv4_1=conv_bn_relu(384, 64, 1), conv4_2=conv_bn_relu(64, 96, 3, padding=1),
        conv4_3=conv_bn_relu(96, 96, 3, padding=1),
    ), (("pool", "conv1"), ("conv2",), ("conv3_1", "conv3_2"), ("conv4_1", "conv4_2", "conv4_3")))


def _reduction_a() -> ConcatBranches:
    """35 -> 17: max-pool | 3x3/2 | 1x1 -> 3x3 -> 3x3/2; 1024 channels out."""
    return ConcatBranches(dict(
        pool=nn.MaxPool2D(kernel_size=3, stride=2), conv2=conv_bn_relu(384, 384, 3, stride=2),
        conv3_1=conv_bn_relu(384, 192, 1), conv3_2=conv_bn_relu(192, 224, 3, padding=1),
        conv3_3=conv_bn_relu(224, 256, 3, stride=2),
    ), (("pool",), ("conv2",), ("conv3_1", "conv3_2", "conv3_3")))


def _inception_b() -> ConcatBranches:
    """avg-pool -> 1x1 | 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 1x7 -> 7x1 -> 1x7 -> 7x1; 1024 channels in and out."""
    return ConcatBranches(dict(
        pool=_avg_pool_3x3(), conv1=conv_bn_relu(1024, 128, 1), conv2=conv_bn_relu(1024, 384, 1),
        conv3_1=conv_bn_relu(1024, 192, 1), conv3_2=conv_bn_relu(192, 224, **ROW7),
        conv3_3=conv_bn_relu(224, 256, **COL7), conv4_1=conv_bn_relu(1024, 192, 1),
        conv4_2=conv_bn_relu(192, 192, **ROW7), conv4_3=conv_bn_relu(192, 224, **COL7),
        conv4_4=conv_bn_relu(224, 224, **ROW7), conv4_5=conv_bn_relu(224, 256, **COL7),
    ), (("pool", "conv1"), ("conv2",), ("conv3_1", "conv3_2", "conv3_3"),
        ("conv4_1", "conv4_2", "conv4_3", "conv4_4", "conv4_5")))


def _reduction_b() -> ConcatBranches:
    """17 -> 8: max-pool | 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2; 1536 channels out."""
    return ConcatBranches(dict(
        pool=nn.MaxPool2D(kernel_size=3, stride=2), conv2_1=conv_bn_relu(1024, 192, 1),
        conv2_2=conv_bn_relu(192, 192, 3, stride=2), conv3_1=conv_bn_relu(1024, 256, 1),
        conv3_2=conv_bn_relu(256, 256, **ROW7), conv3_3=conv_bn_relu(256, 320, **COL7),
        conv3_4=conv_bn_relu(320, 320, 3, stride=2),
    ), (("pool",), ("conv2_1", "conv2_2"), ("conv3_1", "conv3_2", "conv3_3", "conv3_4")))


def _inception_c() -> ConcatBranches:
    """avg-pool -> 1x1 | 1x1 | 1x1 -> [1x3 | 3x1] | 1x1 -> 1x3 -> 3x1 -> [1x3 | 3x1]; 1536 channels in and out."""
    return ConcatBranches(dict(
        pool=_avg_pool_3x3(), conv1=conv_bn_relu(1536, 256, 1), conv2=conv_bn_relu(1536, 256, 1),
        conv3_0=conv_bn_relu(1536, 384, 1), conv3_1=conv_bn_relu(384, 256, **ROW3),
        conv3_2=conv_bn_relu(384, 256, **COL3), conv4_0=conv_bn_relu(1536, 384, 1),
        conv4_00=conv_bn_relu(384, 448, **ROW3), conv4_000=conv_bn_relu(448, 512, **COL3),
        conv4_1=conv_bn_relu(512, 256, **ROW3), conv4_2=conv_bn_relu(512, 256, **COL3),
    ), (("pool", "conv1"), ("conv2",), ("conv3_0", "conv3_1"), ("conv3_0", "conv3_2"),
        ("conv4_0", "conv4_00", "conv4_000", "conv4_1"), ("conv4_0", "conv4_00", "conv4_000", "conv4_2")))


class InceptionV4(PooledClassifierNet):
    """`inception_stem` -> inceptionA_1..4 -> reductionA -> inceptionB_1..7 -> reductionB -> inceptionC_1..3
    (features [N, 1536, 8, 8] at 299 px) -> global average pool -> dropout -> `fc`."""

    classifier_layer = staticmethod(uniform_linear)  # PaddleClas's init: uniform in +-1/sqrt(fan_in)
    # PaddleClas's names without their leading underscores (but BN's `_mean`, `_variance`), `batch_norm` -> `bn`
    paddleclas_key_rules = ((r"(^|\.)_(?!mean$|variance$)", r"\1"), (r"(^|\.)batch_norm\.", r"\1bn."),
                            classifier_rule("out"))

    def __init__(self, num_classes: int = 1000, dropout_prob: float = 0.2):
        super().__init__()
        self.inception_stem = InceptionStem()
        self.block_names = []
        for name, n, block in (("inceptionA", 4, _inception_a), ("reductionA", 0, _reduction_a),
                               ("inceptionB", 7, _inception_b), ("reductionB", 0, _reduction_b),
                               ("inceptionC", 3, _inception_c)):
            for full in ([f"{name}_{i}" for i in range(1, n + 1)] if n else [name]):
                self.block_names.append(full)
                setattr(self, full, block())
        self._init_head(1536, num_classes, use_last_conv=False)
        # dropout on the pooled features; "downscale_in_infer" scales by (1 - p) at inference, as PaddleClas does
        self.dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")

    def forward_features(self, x):
        x = self.inception_stem(x)
        for name in self.block_names:
            x = getattr(self, name)(x)
        return x


# 75 px is the smallest input that survives the stem's and the two reductions' unpadded strides.
@register_model(spec(family="Inception", params_m=42.74, flops_g=12.29, top1=0.8077, input_size=299,
                     min_input_size=75, name="InceptionV4"))
def inception_v4(**kw):
    return InceptionV4(**kw)
