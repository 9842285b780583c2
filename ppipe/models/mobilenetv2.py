"""MobileNetV2 (Sandler et al., 2018, arXiv:1801.04381). Weight-compatible with PaddleClas's MobileNetV2.

Stem -> seven stages of inverted residuals (ReLU6) -> 1x1 `final_conv` -> pool -> `fc`, at widths 0.25-2.0.
PaddleClas names this model's parameters in an older style (`conv3.conv3_2._expand_conv._batch_norm`); ours follow
its MobileNetV3 (`stages.1.1.expand_conv.bn`) and `remap_checkpoint` translates its checkpoints.
"""

from __future__ import annotations


import paddle.nn as nn

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, PADDLECLAS_CONV_BN, classifier_rule
from ppipe.models.layers.inverted_residual import InvertedResidual
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


# PaddleClas's MobileNetV2 keys: `conv{k}` is stage k-2, its first block `_first_block`, block j `conv{k}_{j}`.
PADDLECLAS_KEYS = ((r"^conv(\d)\._first_block\.", lambda m: f"stages.{int(m[1]) - 2}.0."),
                   (r"^conv(\d)\.conv\d_(\d+)\.", lambda m: f"stages.{int(m[1]) - 2}.{int(m[2]) - 1}."),
                   (r"^conv1\.", "stem."), (r"^conv9\.", "final_conv."), classifier_rule("out"),
                   (r"(^|\.)_(expand|bottleneck|linear)_conv\.", r"\1\2_conv."), *PADDLECLAS_CONV_BN)


class MobileNetV2Net(PooledClassifierNet):
    """Stem `stem` -> `stages` -> `final_conv` (features) -> pool -> `fc`.

    `cfg`: rows (expansion t, out channels at width 1.0, blocks n, stride of the first block); `scale` the width
    multiplier. Widths are truncated (`int(c * scale)`) as in PaddleClas; the final conv keeps 1280 channels
    unless `scale > 1`.
    """

    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, cfg=None, scale: float = 1.0, num_classes: int = 1000, stem_chs: int = 32,
                 final_chs: int = 1280):
        super().__init__()
        cfg = STAGES if cfg is None else cfg
        in_chs = int(stem_chs * scale)
        self.stem = ConvBNAct(3, in_chs, 3, stride=2, act="relu6")
        stages = []
        for t, c, n, s in cfg:
            out_chs = int(c * scale)
            blocks = []
            for i in range(n):
                blocks.append(InvertedResidual(in_chs, int(round(in_chs * t)), out_chs, 3, s if i == 0 else 1))
                in_chs = out_chs
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        final_chs = int(final_chs * scale) if scale > 1.0 else final_chs
        self.final_conv = ConvBNAct(in_chs, final_chs, 1, act="relu6")
        self._init_head(final_chs, num_classes, use_last_conv=False)

    def forward_features(self, x):
        return self.final_conv(self.stages(self.stem(x)))


# expansion t, out channels at width 1.0, blocks n, first stride s
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_FAMILY = "MobileNetV2"


def _create(scale: float, **kw) -> MobileNetV2Net:
    return MobileNetV2Net(STAGES, scale=scale, **kw)


@register_model(spec(family=_FAMILY, params_m=1.53, flops_g=0.03418, top1=0.5321, input_size=224))
def MobileNetV2_x0_25(**kw):
    return _create(0.25, **kw)


@register_model(spec(family=_FAMILY, params_m=1.98, flops_g=0.09948, top1=0.6503, input_size=224))
def MobileNetV2_x0_5(**kw):
    return _create(0.5, **kw)


@register_model(spec(family=_FAMILY, params_m=2.65, flops_g=0.19737, top1=0.6983, input_size=224))
def MobileNetV2_x0_75(**kw):
    return _create(0.75, **kw)


@register_model(spec(family=_FAMILY, params_m=3.54, flops_g=0.32784, top1=0.7215, input_size=224,
                     weights=("in1k", "ssld")))
def MobileNetV2(**kw):
    return _create(1.0, **kw)


@register_model(spec(family=_FAMILY, params_m=6.9, flops_g=0.70235, top1=0.7412, input_size=224))
def MobileNetV2_x1_5(**kw):
    return _create(1.5, **kw)


@register_model(spec(family=_FAMILY, params_m=11.33, flops_g=1.21725, top1=0.7523, input_size=224))
def MobileNetV2_x2_0(**kw):
    return _create(2.0, **kw)
