"""ReXNet (Han et al., 2021, arXiv:2007.00992). Weight-compatible with PaddleClas's ReXNet (ReXNetV1).

MobileNetV2-style linear bottlenecks whose widths grow linearly with depth, swish after the expansion convs, SE with
BatchNorm, and ReLU6 before the projection. Parameter keys are positional (`features.5.out.3.weight`) as in
PaddleClas, so the blocks are flat `Sequential`s; only the 1x1-conv classifier (`output.1`) is mapped onto our
linear `fc` by `remap_checkpoint`.
"""

from __future__ import annotations

from math import ceil

import numpy as np
import paddle
import paddle.nn as nn

from ppipe.models.layers import PooledClassifierNet, SEModule, rename_keys
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


def _conv_bn(in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, groups: int = 1) -> list[nn.Layer]:
    return [nn.Conv2D(in_chs, out_chs, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias_attr=False),
            nn.BatchNorm2D(out_chs)]


PADDLECLAS_SE_KEYS = ((r"\.fc\.0\.", ".conv1."), (r"\.fc\.1\.", ".bn."), (r"\.fc\.3\.", ".conv2."))


class LinearBottleneck(nn.Layer):
    """(1x1 expand, swish, when `t` > 1) -> 3x3 depthwise -> optional SE -> ReLU6 -> 1x1 linear projection.

    The shortcut adds the input to the first `in_chs` output channels (the block may widen), when stride is 1.
    """

    def __init__(self, in_chs: int, out_chs: int, t: int, stride: int, use_se: bool, se_ratio: int = 12):
        super().__init__()
        self.in_chs, self.out_chs = in_chs, out_chs
        self.use_shortcut = stride == 1 and in_chs <= out_chs
        mid_chs = in_chs * t
        layers = [*_conv_bn(in_chs, mid_chs), nn.Swish()] if t != 1 else []
        layers += _conv_bn(mid_chs, mid_chs, 3, stride, groups=mid_chs)
        layers += [SEModule(mid_chs, se_ratio, gate="sigmoid", norm=True)] if use_se else []
        layers += [nn.ReLU6(), *_conv_bn(mid_chs, out_chs)]
        self.out = nn.Sequential(*layers)

    def forward(self, x):
        y = self.out(x)
        if not self.use_shortcut:
            return y
        if self.in_chs == self.out_chs:
            return y + x
        return paddle.concat([y[:, :self.in_chs] + x, y[:, self.in_chs:]], axis=1)


class ReXNet(PooledClassifierNet):
    """`features`: 3x3 stem, 16 linear bottlenecks, 1x1 conv (all swish-activated convs) -> pool -> dropout -> `fc`.

    Stage depths (1, 2, 2, 3, 3, 5) scale with `depth_mult`; block widths grow from `input_ch` by `final_ch` spread
    evenly over the blocks, times `width_mult`.
    """

    def __init__(self, width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000, input_ch: int = 16,
                 final_ch: int = 180, use_se: bool = True, se_ratio: int = 12, dropout_prob: float = 0.2):
        super().__init__()
        depths = [ceil(d * depth_mult) for d in STAGE_DEPTHS]
        strides = [s if i == 0 else 1 for d, s in zip(depths, STAGE_STRIDES) for i in range(d)]
        ses = [use_se and se for d, se in zip(depths, STAGE_SE) for _ in range(d)]
        ts = [1] * depths[0] + [6] * sum(depths[1:])
        # PaddleClas widens narrow (< 1.0) models' first widths so they do not shrink below 32 / `input_ch`
        stem_chs = 32 / width_mult if width_mult < 1.0 else 32
        planes = input_ch / width_mult if width_mult < 1.0 else input_ch
        in_chs = int(round(stem_chs * width_mult))
        features = [*_conv_bn(3, in_chs, 3, stride=2), nn.Swish()]
        for i, (t, s, se) in enumerate(zip(ts, strides, ses)):
            if i > 0:
                planes += final_ch / len(ts)
            out_chs = int(round(planes * width_mult))
            features.append(LinearBottleneck(in_chs, out_chs, t, s, se, se_ratio))
            in_chs = out_chs
        pen_chs = int(1280 * width_mult)
        features += [*_conv_bn(in_chs, pen_chs), nn.Swish()]
        self.features = nn.Sequential(*features)
        self._init_head(pen_chs, num_classes, use_last_conv=False)
        # paddle's default dropout (identity at inference), before the classifier, as PaddleClas has it
        self.dropout = nn.Dropout(dropout_prob)

    def forward_features(self, x):
        return self.features(x)

    @staticmethod
    def remap_checkpoint(state: dict) -> dict:
        """PaddleClas classifies with a 1x1 conv `output.1` ([classes, C, 1, 1]); ours is the equivalent `fc`.
        Its SE is a Sequential `fc` (conv, BN, ReLU, conv, sigmoid); ours an `SEModule`."""
        out = {k: v for k, v in rename_keys(state, PADDLECLAS_SE_KEYS).items() if not k.startswith("output.1.")}
        if "output.1.weight" in state:
            w = np.asarray(state["output.1.weight"])
            out["fc.weight"] = np.ascontiguousarray(w.reshape(w.shape[0], -1).T)
        if "output.1.bias" in state:
            out["fc.bias"] = state["output.1.bias"]
        return out


STAGE_DEPTHS = (1, 2, 2, 3, 3, 5)
STAGE_STRIDES = (1, 2, 2, 2, 1, 2)
STAGE_SE = (False, False, True, True, True, True)
_FAMILY = "ReXNet"


@register_model(spec(family=_FAMILY, params_m=4.84, flops_g=0.415, top1=0.7746, input_size=224))
def ReXNet_1_0(**kw):
    return ReXNet(width_mult=1.0, **kw)


@register_model(spec(family=_FAMILY, params_m=7.61, flops_g=0.68, top1=0.7913, input_size=224))
def ReXNet_1_3(**kw):
    return ReXNet(width_mult=1.3, **kw)


@register_model(spec(family=_FAMILY, params_m=9.79, flops_g=0.9, top1=0.8006, input_size=224))
def ReXNet_1_5(**kw):
    return ReXNet(width_mult=1.5, **kw)


@register_model(spec(family=_FAMILY, params_m=16.45, flops_g=1.56, top1=0.8122, input_size=224))
def ReXNet_2_0(**kw):
    return ReXNet(width_mult=2.0, **kw)


@register_model(spec(family=_FAMILY, params_m=34.83, flops_g=3.44, top1=0.8209, input_size=224))
def ReXNet_3_0(**kw):
    return ReXNet(width_mult=3.0, **kw)
