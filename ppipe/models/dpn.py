"""Dual Path Networks (Chen et al., 2017, arXiv:1707.01629). Weight-compatible with PaddleClas's DPN.

Each block feeds a residual path (summed, fixed width) and a densely connected path (concatenated, growing) from
one grouped bottleneck of pre-activation convolutions. PaddleClas's layer names (`dpn3.c3x3_b_func._batch_norm`)
map onto ppipe's (`blocks.2.conv2.bn`) in `DPN.remap_checkpoint`.
"""

from __future__ import annotations


import paddle
import paddle.nn as nn
from paddle import ParamAttr
from paddle.nn.initializer import Uniform

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, PADDLECLAS_CONV_BN, classifier_rule
from ppipe.models.layers.densenet_bn_act_conv import BNActConv
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


CLASSIFIER_INIT = 0.01


class DualPathBlock(nn.Layer):
    """Pre-activation 1x1 -> grouped 3x3 -> 1x1 bottleneck whose output splits into `residual_chs` channels added to
    the residual path and `growth` channels appended to the dense path.

    The first block of a stage (`project`) starts both paths from a 1x1 projection of its whole input (strided
    with `stride`); the others take a (residual, dense) pair.
    """

    def __init__(self, in_chs: int, mid_chs: int, residual_chs: int, growth: int, groups: int, project: bool,
                 stride: int = 1):
        super().__init__()
        self.residual_chs, self.growth, self.project = residual_chs, growth, project
        if project:
            self.proj = BNActConv(in_chs, residual_chs + 2 * growth, 1, stride=stride)
        self.conv1 = BNActConv(in_chs, mid_chs, 1)
        self.conv2 = BNActConv(mid_chs, mid_chs, 3, stride=stride, groups=groups)
        self.conv3 = BNActConv(mid_chs, residual_chs + growth, 1)

    def forward(self, x):
        x_in = paddle.concat(list(x), axis=1) if isinstance(x, (list, tuple)) else x
        if self.project:
            residual, dense = paddle.split(self.proj(x_in), [self.residual_chs, 2 * self.growth], axis=1)
        else:
            residual, dense = x
        new_residual, new_dense = paddle.split(self.conv3(self.conv2(self.conv1(x_in))),
                                               [self.residual_chs, self.growth], axis=1)
        return paddle.add(residual, new_residual), paddle.concat([dense, new_dense], axis=1)


# PaddleClas -> ppipe names: stem `conv1_x_1_func`, blocks `dpn{n}` (numbered from 1 through all stages) holding
# `c1x1_w_func` (projection), `c1x1_a_func`, `c3x3_b_func`, `c1x1_c_func`, final BN `conv5_x_x_bn`, parts
# `_conv` / `_batch_norm`, classifier `out`.
_BLOCK_PART = {"c1x1_w": "proj", "c1x1_a": "conv1", "c3x3_b": "conv2", "c1x1_c": "conv3"}
PADDLECLAS_KEYS = ((r"^dpn(\d+)\.(c1x1_w|c1x1_a|c3x3_b|c1x1_c)_func\.",
                    lambda m: f"blocks.{int(m[1]) - 1}.{_BLOCK_PART[m[2]]}."),
                   (r"^conv1_x_1_func\.", "stem."), (r"^conv5_x_x_bn\.", "final_bn."), *PADDLECLAS_CONV_BN,
                   classifier_rule("out"))


def _dpn_classifier(in_features: int, num_classes: int) -> nn.Linear:
    """PaddleClas initialises DPN's classifier U(-0.01, 0.01)."""
    return nn.Linear(in_features, num_classes,
                     weight_attr=ParamAttr(initializer=Uniform(-CLASSIFIER_INIT, CLASSIFIER_INIT)))


class DPN(PooledClassifierNet):
    """Stem conv -> max-pool -> four stages of dual path blocks (stride 2 from the second) -> concatenated paths,
    BN-ReLU (features) -> global pool -> `fc`.

    Stage s has residual width `residual_chs * 2**s`, bottleneck width `mid_chs * 2**s` in `groups` groups, and
    its dense path grows by `growths[s]` per block (starting at 2 x that).
    """

    classifier_layer = staticmethod(_dpn_classifier)
    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, stem_chs: int, stem_kernel: int, mid_chs: int, residual_chs: int, groups: int, depths,
                 growths, num_classes: int = 1000):
        super().__init__()
        self.stem = ConvBNAct(3, stem_chs, stem_kernel, stride=2, act="relu")
        self.stem_pool = nn.MaxPool2D(3, stride=2, padding=1)
        in_chs, blocks = stem_chs, []
        for idx, (depth, growth) in enumerate(zip(depths, growths)):
            res_chs, stage_mid = residual_chs * 2 ** idx, mid_chs * 2 ** idx
            for i in range(depth):
                blocks.append(DualPathBlock(in_chs, stage_mid, res_chs, growth, groups, project=i == 0,
                                            stride=2 if i == 0 and idx > 0 else 1))
                in_chs = res_chs + (3 + i) * growth  # the projection starts the dense path at 2 x growth
        self.blocks = nn.Sequential(*blocks)
        self.final_bn = nn.BatchNorm2D(in_chs)
        self.final_act = nn.ReLU()
        self._init_head(in_chs, num_classes, use_last_conv=False)

    def forward_features(self, x):
        residual, dense = self.blocks(self.stem_pool(self.stem(x)))
        return self.final_act(self.final_bn(paddle.concat([residual, dense], axis=1)))


# stem channels and kernel, bottleneck and residual widths of the first stage, groups, blocks and dense growth
# per stage
CONFIGS = {
    68: dict(stem_chs=10, stem_kernel=3, mid_chs=128, residual_chs=64, groups=32, depths=(3, 4, 12, 3),
             growths=(16, 32, 32, 64)),
    92: dict(stem_chs=64, stem_kernel=7, mid_chs=96, residual_chs=256, groups=32, depths=(3, 4, 20, 3),
             growths=(16, 32, 24, 128)),
    98: dict(stem_chs=96, stem_kernel=7, mid_chs=160, residual_chs=256, groups=40, depths=(3, 6, 20, 3),
             growths=(16, 32, 32, 128)),
    107: dict(stem_chs=128, stem_kernel=7, mid_chs=200, residual_chs=256, groups=50, depths=(4, 8, 20, 3),
              growths=(20, 64, 64, 128)),
    131: dict(stem_chs=128, stem_kernel=7, mid_chs=160, residual_chs=256, groups=40, depths=(4, 8, 28, 3),
              growths=(16, 32, 32, 128)),
}
_FAMILY = "DPN"


@register_model(spec(family=_FAMILY, params_m=12.68, flops_g=2.35, top1=0.7678))
def DPN68(**kw):
    return DPN(**CONFIGS[68], **kw)


@register_model(spec(family=_FAMILY, params_m=37.79, flops_g=6.54, top1=0.7985))
def DPN92(**kw):
    return DPN(**CONFIGS[92], **kw)


@register_model(spec(family=_FAMILY, params_m=61.74, flops_g=11.728, top1=0.8059))
def DPN98(**kw):
    return DPN(**CONFIGS[98], **kw)


@register_model(spec(family=_FAMILY, params_m=87.13, flops_g=18.38, top1=0.8089))
def DPN107(**kw):
    return DPN(**CONFIGS[107], **kw)


@register_model(spec(family=_FAMILY, params_m=79.48, flops_g=16.09, top1=0.807))
def DPN131(**kw):
    return DPN(**CONFIGS[131], **kw)
