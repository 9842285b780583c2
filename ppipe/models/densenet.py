"""DenseNet (Huang et al., 2017, arXiv:1608.06993). Weight-compatible with PaddleClas's DenseNet.

PaddleClas's layer names (`db_conv_2.conv2_1.bn_ac_func1._batch_norm`) map onto ppipe's
(`blocks.0.0.conv1.bn`) in `DenseNet.remap_checkpoint`.
"""

from __future__ import annotations


import paddle
import paddle.nn as nn

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, PADDLECLAS_CONV_BN, classifier_rule
from ppipe.models.layers.densenet_bn_act_conv import BNActConv
from ppipe.models.layers.classifier import uniform_linear
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class DenseLayer(nn.Layer):
    """BN-ReLU-1x1 conv (`bn_size` x `growth_rate` channels) -> BN-ReLU-3x3 conv (`growth_rate`), appended to the
    input's channels."""

    def __init__(self, in_chs: int, growth_rate: int, bn_size: int, dropout: float):
        super().__init__()
        self.conv1 = BNActConv(in_chs, bn_size * growth_rate, 1)
        self.conv2 = BNActConv(bn_size * growth_rate, growth_rate, 3)
        # "downscale_in_infer" as in PaddleClas, whose weights expect the (1 - p) scaling at inference
        self.dropout = nn.Dropout(p=dropout, mode="downscale_in_infer") if dropout else nn.Identity()

    def forward(self, x):
        return paddle.concat([x, self.dropout(self.conv2(self.conv1(x)))], axis=1)


class Transition(BNActConv):
    """BN-ReLU-1x1 conv, then a 2x2 average pool halving the resolution."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__(in_chs, out_chs, 1)
        self.pool = nn.AvgPool2D(2, stride=2)

    def forward(self, x):
        return self.pool(super().forward(x))


# PaddleClas -> ppipe names: stem `conv1_func`, dense layers `db_conv_{b}.conv{b}_{j}.bn_ac_func{1,2}` (b from 2,
# j from 1), transitions `tr_conv{b}_blk.conv_ac_func`, final BN `batch_norm`, parts `_conv` / `_batch_norm`,
# classifier `out`.
PADDLECLAS_KEYS = ((r"^db_conv_(\d+)\.conv\d+_(\d+)\.bn_ac_func([12])\.",
                    lambda m: f"blocks.{int(m[1]) - 2}.{int(m[2]) - 1}.conv{m[3]}."),
                   (r"^tr_conv(\d+)_blk\.conv_ac_func\.", lambda m: f"transitions.{int(m[1]) - 2}."),
                   (r"^conv1_func\.", "stem."), (r"^batch_norm\.", "final_bn."), *PADDLECLAS_CONV_BN,
                   classifier_rule("out"))


class DenseNet(PooledClassifierNet):
    """7x7 stem -> max-pool -> dense blocks, a channel-halving transition between two -> BN-ReLU (features) ->
    global pool -> `fc`.

    `dropout` (PaddleClas's name) drops each dense layer's new channels in training.
    """

    classifier_layer = staticmethod(uniform_linear)
    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, stem_chs: int, growth_rate: int, block_depths, bn_size: int = 4, dropout: float = 0.0,
                 num_classes: int = 1000):
        super().__init__()
        self.stem = ConvBNAct(3, stem_chs, 7, stride=2, act="relu")
        self.stem_pool = nn.MaxPool2D(3, stride=2, padding=1)
        chs, blocks, transitions = stem_chs, [], []
        for idx, depth in enumerate(block_depths):
            blocks.append(nn.Sequential(*[
                DenseLayer(chs + j * growth_rate, growth_rate, bn_size, dropout) for j in range(depth)]))
            chs += depth * growth_rate
            if idx < len(block_depths) - 1:
                transitions.append(Transition(chs, chs // 2))
                chs //= 2
        self.blocks, self.transitions = nn.LayerList(blocks), nn.LayerList(transitions)
        self.final_bn = nn.BatchNorm2D(chs)
        self.final_act = nn.ReLU()
        self._init_head(chs, num_classes, use_last_conv=False)

    def forward_features(self, x):
        x = self.stem_pool(self.stem(x))
        for idx, block in enumerate(self.blocks):
            x = block(x)
            if idx < len(self.transitions):
                x = self.transitions[idx](x)
        return self.final_act(self.final_bn(x))


# stem channels, growth rate, layers per dense block
CONFIGS = {
    121: (64, 32, (6, 12, 24, 16)),
    161: (96, 48, (6, 12, 36, 24)),
    169: (64, 32, (6, 12, 32, 32)),
    201: (64, 32, (6, 12, 48, 32)),
    264: (64, 32, (6, 12, 64, 48)),
}


def _create(layers: int, **kw) -> DenseNet:
    stem_chs, growth_rate, block_depths = CONFIGS[layers]
    return DenseNet(stem_chs, growth_rate, block_depths, **kw)


_FAMILY = "DenseNet"


@register_model(spec(family=_FAMILY, params_m=8.06, flops_g=2.87, top1=0.7566))
def DenseNet121(**kw):
    return _create(121, **kw)


@register_model(spec(family=_FAMILY, params_m=28.9, flops_g=7.79, top1=0.7857))
def DenseNet161(**kw):
    return _create(161, **kw)


@register_model(spec(family=_FAMILY, params_m=14.31, flops_g=3.4, top1=0.7681))
def DenseNet169(**kw):
    return _create(169, **kw)


@register_model(spec(family=_FAMILY, params_m=20.24, flops_g=4.34, top1=0.7763))
def DenseNet201(**kw):
    return _create(201, **kw)


@register_model(spec(family=_FAMILY, params_m=33.74, flops_g=5.82, top1=0.7796))
def DenseNet264(**kw):
    return _create(264, **kw)
