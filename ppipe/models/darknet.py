"""DarkNet-53 (Redmon & Farhadi, 2018, arXiv:1804.02767), the YOLOv3 backbone as an ImageNet classifier.
Weight-compatible with PaddleClas's DarkNet53.

A 3x3 stem, then five stages, each a stride-2 3x3 conv followed by residual blocks (1x1 halving the channels,
3x3 restoring them). PaddleClas's activation is ReLU (not the paper's leaky ReLU), and it names its layers
`_conv1`, `_conv2`, `_downsample_<i>`, `_basic_block_<i><j>`, `_out`; `remap_checkpoint` maps those keys onto
`stem`, `stages.<i>.<j>` (j = 0: the downsampling conv) and `fc`.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from ppipe.models.layers import PADDLECLAS_CONV_BN, ConvBNAct, PooledClassifierNet, classifier_rule
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class ResidualBlock(nn.Layer):
    """x + 3x3(1x1(x)), the 1x1 halving the channels; both ConvBN-ReLU."""

    def __init__(self, chs: int):
        super().__init__()
        self.conv1 = ConvBNAct(chs, chs // 2, 1, act="relu")
        self.conv2 = ConvBNAct(chs // 2, chs, 3, act="relu")

    def forward(self, x):
        return paddle.add(x, self.conv2(self.conv1(x)))


class DarkNet(PooledClassifierNet):
    """`stem` -> `stages` (stride-2 conv + `depths[i]` residual blocks, 64-1024 channels) -> features
    [N, 1024, h, w] -> global average pool -> `fc`."""

    # PaddleClas's `_downsample_1._bn._mean`, `_basic_block_28._conv1._conv.weight`, `_out.bias` -> our
    # `stages.2.0.bn._mean`, `stages.2.8.conv1.conv.weight`, `fc.bias`
    paddleclas_key_rules = ((r"^_conv1\.", "stem."), (r"^_conv2\.", "stages.0.0."),
                            (r"^_downsample_(\d)\.", lambda m: f"stages.{int(m[1]) + 1}.0."),
                            (r"^_basic_block_(\d)(\d)\.", r"stages.\1.\2."), classifier_rule("_out"),
                            (r"\._conv([12])\.", r".conv\1."), *PADDLECLAS_CONV_BN)

    def __init__(self, depths: tuple[int, ...] = (1, 2, 8, 8, 4), stem_chs: int = 32, num_classes: int = 1000):
        super().__init__()
        self.stem = ConvBNAct(3, stem_chs, 3, act="relu")
        stages, in_chs = [], stem_chs
        for i, depth in enumerate(depths):
            out_chs = stem_chs * 2 ** (i + 1)
            stages.append(nn.Sequential(ConvBNAct(in_chs, out_chs, 3, stride=2, act="relu"),
                                        *[ResidualBlock(out_chs) for _ in range(depth)]))
            in_chs = out_chs
        self.stages = nn.Sequential(*stages)
        self._init_head(in_chs, num_classes, use_last_conv=False)

    def forward_features(self, x):
        return self.stages(self.stem(x))


@register_model(spec(family="DarkNet", params_m=41.65, flops_g=9.31, top1=0.78, input_size=256))
def DarkNet53(**kw):
    return DarkNet(**kw)
