"""Xception (Chollet, 2017, arXiv:1610.02357) and DeepLab's Xception (Chen et al., 2018, arXiv:1802.02611).
Weight-compatible with PaddleClas's Xception41/65/71 and Xception41/65_deeplab.

Both: a two-conv stem, an entry flow of downsampling residual blocks, a middle flow of 728-channel residual
blocks, an exit flow, and a pooled classifier. PaddleClas's Xception runs each separable conv pointwise-first;
its DeepLab variant depthwise-first, with BatchNorm eps 1e-3, a dilated last block and dropout before the pool.
`remap_checkpoint` maps PaddleClas's keys (underscored names; DeepLab's `xception_65/entry_flow/block1` layer
names) onto `entry_flow.{conv1,conv2,blocks.<i>}`, `middle_flow.<i>`, `exit_flow.*` and `fc`.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.models.layers import ConvBNAct, PooledClassifierNet
from ppipe.models.layers.separable_conv import SeparableConvBN
from ppipe.models.layers.classifier import uniform_linear
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


def _sep(in_chs: int, out_chs: int) -> SeparableConvBN:
    return SeparableConvBN(in_chs, out_chs, pointwise_first=True)


class DownBlock(nn.Layer):
    """[ReLU ->] sep conv -> ReLU -> sep conv -> 3x3 max-pool (`stride`), plus a strided 1x1 `shortcut`."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, stride: int, relu_first: bool = True):
        super().__init__()
        self.relu_first = relu_first
        self.shortcut = nn.Conv2D(in_chs, out_chs, 1, stride=stride, bias_attr=False)
        self.sep_conv1 = _sep(in_chs, mid_chs)
        self.sep_conv2 = _sep(mid_chs, out_chs)
        self.pool = nn.MaxPool2D(kernel_size=3, stride=stride, padding=1)

    def forward(self, x):
        y = F.relu(x) if self.relu_first else x
        y = self.pool(self.sep_conv2(F.relu(self.sep_conv1(y))))
        return paddle.add(self.shortcut(x), y)


class MiddleBlock(nn.Layer):
    """x + 3 x (ReLU -> sep conv), 728 channels."""

    def __init__(self, chs: int = 728):
        super().__init__()
        self.sep_conv1, self.sep_conv2, self.sep_conv3 = _sep(chs, chs), _sep(chs, chs), _sep(chs, chs)

    def forward(self, x):
        y = self.sep_conv3(F.relu(self.sep_conv2(F.relu(self.sep_conv1(F.relu(x))))))
        return paddle.add(x, y)


class EntryFlow(nn.Layer):
    def __init__(self, blocks: tuple[tuple[int, int], ...]):
        super().__init__()
        self.conv1 = ConvBNAct(3, 32, 3, stride=2, act="relu")
        self.conv2 = ConvBNAct(32, 64, 3, act="relu")
        layers, in_chs = [], 64
        for i, (out_chs, stride) in enumerate(blocks):
            layers.append(DownBlock(in_chs, out_chs, out_chs, stride, relu_first=i > 0))
            in_chs = out_chs
        self.blocks = nn.Sequential(*layers)

    def forward(self, x):
        return self.blocks(self.conv2(self.conv1(x)))


class ExitFlow(nn.Layer):
    """Down block (728 -> 1024, stride 2) -> sep conv 1536 -> ReLU -> sep conv 2048 -> ReLU."""

    def __init__(self):
        super().__init__()
        self.block = DownBlock(728, 728, 1024, stride=2)
        self.sep_conv1 = _sep(1024, 1536)
        self.sep_conv2 = _sep(1536, 2048)

    def forward(self, x):
        return F.relu(self.sep_conv2(F.relu(self.sep_conv1(self.block(x)))))


# PaddleClas keys (`_entry_flow._conv_1._conv2._depthwise_conv._batch_norm._mean`,
# `_middle_flow._conv_7._conv_0._pointwise_conv._conv.weight`, `_exit_flow._out.bias`) -> ours
# (`entry_flow.blocks.1.sep_conv2.depthwise.bn._mean`, `middle_flow.7.sep_conv1.pointwise.conv.weight`,
# `fc.bias`).
PADDLECLAS_KEYS = ((r"\._batch_norm\.", ".bn."), (r"\._conv\.", ".conv."), (r"\._pointwise_conv\.", ".pointwise."),
                   (r"\._depthwise_conv\.", ".depthwise."), (r"\._short\.", ".shortcut."),
                   (r"^_entry_flow\._conv([12])\.", r"entry_flow.conv\1."),
                   (r"^_entry_flow\._conv_(\d)\._conv([12])\.", r"entry_flow.blocks.\1.sep_conv\2."),
                   (r"^_entry_flow\._conv_(\d)\.", r"entry_flow.blocks.\1."),
                   (r"^_middle_flow\._conv_(\d+)\._conv_(\d)\.",
                   lambda m: f"middle_flow.{m[1]}.sep_conv{int(m[2]) + 1}."),
                   (r"^_exit_flow\._conv_0\._conv_([12])\.", r"exit_flow.block.sep_conv\1."),
                   (r"^_exit_flow\._conv_0\.", "exit_flow.block."),
                   (r"^_exit_flow\._conv_([12])\.", r"exit_flow.sep_conv\1."),
                   (r"^_exit_flow\._out\.", "fc."))


class Xception(PooledClassifierNet):
    """`entry_flow` -> `middle_flow` (`middle_depth` blocks) -> `exit_flow` (features, 2048 channels) -> global
    average pool -> `fc`."""

    classifier_layer = staticmethod(uniform_linear)  # PaddleClas's init: uniform in +-1/sqrt(fan_in)
    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, entry_blocks: tuple[tuple[int, int], ...], middle_depth: int, num_classes: int = 1000):
        super().__init__()
        self.entry_flow = EntryFlow(entry_blocks)
        self.middle_flow = nn.Sequential(*[MiddleBlock() for _ in range(middle_depth)])
        self.exit_flow = ExitFlow()
        self._init_head(2048, num_classes, use_last_conv=False)

    def forward_features(self, x):
        return self.exit_flow(self.middle_flow(self.entry_flow(x)))


# DeepLab's Xception: every BatchNorm has eps 1e-3 (TensorFlow's default, where its weights come from)
_DEEPLAB_BN = dict(bn_eps=1e-3, bn_momentum=0.99)


class DeepLabBlock(nn.Layer):
    """Three depthwise-first separable convs (the last one strided), plus a skip: a 1x1 ConvBN `shortcut`, the
    identity (`shortcut=False`) or none (`skip=False`). With `act_inside` each separable conv ends in ReLU;
    otherwise ReLU precedes each."""

    def __init__(self, in_chs: int, out_chs: tuple[int, int, int], stride: int = 1, dilation: int = 1,
                 shortcut: bool = True, skip: bool = True, act_inside: bool = False):
        super().__init__()
        self.act_inside, self.skip = act_inside, skip
        chs = (in_chs, *out_chs)
        for i in range(3):
            setattr(self, f"sep_conv{i + 1}", SeparableConvBN(
                chs[i], chs[i + 1], stride=stride if i == 2 else 1, dilation=dilation,
                act="relu" if act_inside else None, **_DEEPLAB_BN))
        self.shortcut = (ConvBNAct(in_chs, out_chs[-1], 1, stride=stride, bn_weight_decay=True, **_DEEPLAB_BN)
                         if skip and shortcut
                         else nn.Identity())

    def forward(self, x):
        y = x
        for conv in (self.sep_conv1, self.sep_conv2, self.sep_conv3):
            y = conv(y) if self.act_inside else conv(F.relu(y))
        return paddle.add(y, self.shortcut(x)) if self.skip else y


# PaddleClas keys (`xception_65/entry_flow/block1._conv2._bn1._mean`, `_exit_flow_2._conv3._conv2.weight`,
# `_conv1._bn.bias`, `_fc.weight`) -> ours (`entry_flow.blocks.0.sep_conv2.depthwise.bn._mean`,
# `exit_flow.1.sep_conv3.pointwise.conv.weight`, `entry_flow.conv1.bn.bias`, `fc.weight`).
PADDLECLAS_DEEPLAB_KEYS = ((r"^xception_\d+/entry_flow/block(\d+)\.",
                            lambda m: f"entry_flow.blocks.{int(m[1]) - 1}."),
                           (r"^xception_\d+/middle_flow/block(\d+)\.",
                            lambda m: f"middle_flow.{int(m[1]) - 1}."),
                           (r"^_exit_flow_([12])\.", lambda m: f"exit_flow.{int(m[1]) - 1}."),
                           (r"^_conv([12])\.", r"entry_flow.conv\1."), (r"^_fc\.", "fc."),
                           (r"\._conv(\d)\._conv1\.", r".sep_conv\1.depthwise.conv."),
                           (r"\._conv(\d)\._bn1\.", r".sep_conv\1.depthwise.bn."),
                           (r"\._conv(\d)\._conv2\.", r".sep_conv\1.pointwise.conv."),
                           (r"\._conv(\d)\._bn2\.", r".sep_conv\1.pointwise.bn."),
                           (r"\._short\.", ".shortcut."), (r"\._conv\.", ".conv."), (r"\._bn\.", ".bn."))


class XceptionDeepLab(PooledClassifierNet):
    """`entry_flow` (stem + three stride-2 blocks) -> `middle_flow` -> `exit_flow` (a stride-2 block, then a
    dilated block without skip; features [N, 2048, h, w] at output stride 32) -> dropout -> pool -> `fc`."""

    paddleclas_key_rules = PADDLECLAS_DEEPLAB_KEYS

    def __init__(self, middle_depth: int, num_classes: int = 1000, dropout_prob: float = 0.5):
        super().__init__()
        self.entry_flow = nn.Layer()
        self.entry_flow.conv1 = ConvBNAct(3, 32, 3, stride=2, act="relu", bn_weight_decay=True, **_DEEPLAB_BN)
        self.entry_flow.conv2 = ConvBNAct(32, 64, 3, act="relu", bn_weight_decay=True, **_DEEPLAB_BN)
        self.entry_flow.blocks = nn.Sequential(*[DeepLabBlock(i, (o,) * 3, stride=2) for i, o in
                                                 ((64, 128), (128, 256), (256, 728))])
        self.middle_flow = nn.Sequential(*[DeepLabBlock(728, (728,) * 3, shortcut=False)
                                           for _ in range(middle_depth)])
        self.exit_flow = nn.Sequential(
            DeepLabBlock(728, (728, 1024, 1024), stride=2),
            DeepLabBlock(1024, (1536, 1536, 2048), dilation=2, skip=False, act_inside=True))
        self._init_head(2048, num_classes, use_last_conv=False)
        # "downscale_in_infer" scales by (1 - p) at inference, as PaddleClas does: its weights expect it
        self.feature_dropout = nn.Dropout(p=dropout_prob, mode="downscale_in_infer")

    def forward_features(self, x):
        x = self.entry_flow.blocks(self.entry_flow.conv2(self.entry_flow.conv1(x)))
        return self.exit_flow(self.middle_flow(x))

    def forward_head(self, x, pre_logits: bool = False):
        return super().forward_head(self.feature_dropout(x), pre_logits=pre_logits)


_FAMILY = "Xception"
ENTRY_41 = ((128, 2), (256, 2), (728, 2))
ENTRY_71 = ((128, 2), (256, 1), (256, 2), (728, 1), (728, 2))


@register_model(spec(family=_FAMILY, params_m=23.02, flops_g=8.57, top1=0.793, input_size=299))
def Xception41(**kw):
    return Xception(ENTRY_41, middle_depth=8, **kw)


@register_model(spec(family=_FAMILY, params_m=36.04, flops_g=13.25, top1=0.81, input_size=299))
def Xception65(**kw):
    return Xception(ENTRY_41, middle_depth=16, **kw)


@register_model(spec(family=_FAMILY, params_m=37.86, flops_g=16.21, top1=0.8111, input_size=299))
def Xception71(**kw):
    return Xception(ENTRY_71, middle_depth=16, **kw)


@register_model(spec(family=_FAMILY, params_m=27.08, flops_g=9.28, top1=0.7955, input_size=299))
def Xception41_deeplab(**kw):
    return XceptionDeepLab(middle_depth=8, **kw)


@register_model(spec(family=_FAMILY, params_m=40.1, flops_g=13.96, top1=0.8032, input_size=299))
def Xception65_deeplab(**kw):
    return XceptionDeepLab(middle_depth=16, **kw)
