"""HRNet for classification (Wang et al., 2019, arXiv:1908.07919). Weight-compatible with PaddleClas's HRNet.

Four parallel branches of widths `w, 2w, 4w, 8w` exchange information after every high-resolution module; the
classification head turns each branch into 128-1024 channels with a bottleneck, merges them from the finest branch
down with strided convolutions and ends in a 1x1 conv of 2048 channels (the features) -> pool -> `fc`.
`SE_HRNet_W64_C` is `HRNet_W64_C` with squeeze-and-excitation in every residual block.

Parameter names are PaddleClas's (`st2.stage_func_list.0.basic_block_list.1.0.conv1.conv.weight`, ...).
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.models.layers import ClassifierHeads, ConvBNAct, SEModule
from ppipe.models.layers.classifier import uniform_linear
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

BLOCKS_PER_BRANCH = 4
HEAD_BOTTLENECK_CHS = (32, 64, 128, 256)  # bottleneck widths of the head, per branch (x4 at the output)
HEAD_MERGE_CHS = (256, 512, 1024)  # = 4 * HEAD_BOTTLENECK_CHS[1:]: what each merge step adds into
HEAD_FEATURES = 2048


PADDLECLAS_KEYS = ((r"\.se\.fc_squeeze\.", ".se.conv1."), (r"\.se\.fc_excitation\.", ".se.conv2."))


def _se(channels: int) -> SEModule:
    """HRNet's squeeze-and-excitation: fully connected, reduction 16, sigmoid gate."""
    return SEModule(channels, 16, gate="sigmoid", fc_layer=uniform_linear)


class BasicBlock(nn.Layer):
    """Two 3x3 conv-BN (ReLU between), optional SE, + identity, ReLU. Width-preserving."""

    def __init__(self, channels: int, has_se: bool):
        super().__init__()
        self.conv1 = ConvBNAct(channels, channels, 3, act="relu")
        self.conv2 = ConvBNAct(channels, channels, 3)
        self.se = _se(channels) if has_se else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(x + self.se(self.conv2(self.conv1(x))))


class BottleneckBlock(nn.Layer):
    """1x1 -> 3x3 -> 1x1 (x4 channels), optional SE, + identity or a 1x1 projection `conv_down`, ReLU."""

    def __init__(self, in_chs: int, mid_chs: int, has_se: bool, project: bool):
        super().__init__()
        out_chs = mid_chs * 4
        self.conv1 = ConvBNAct(in_chs, mid_chs, 1, act="relu")
        self.conv2 = ConvBNAct(mid_chs, mid_chs, 3, act="relu")
        self.conv3 = ConvBNAct(mid_chs, out_chs, 1)
        self.conv_down = ConvBNAct(in_chs, out_chs, 1) if project else nn.Identity()
        self.se = _se(out_chs) if has_se else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv_down(x) + self.se(self.conv3(self.conv2(self.conv1(x)))))


class FuseLayers(nn.Layer):
    """Exchange between branches: output i = ReLU(sum over j of branch j brought to branch i's resolution and width).

    Coarser branches (j > i) go through a 1x1 conv-BN and nearest upsampling; finer ones (j < i) through i - j
    strided 3x3 conv-BNs (ReLU between them; the intermediate ones keep branch j's width). All of them live in one
    flat `residual_func_list` in (i, j, step) order: PaddleClas's parameter names.
    """

    def __init__(self, channels):
        super().__init__()
        self.num_branches = len(channels)
        self.relu = nn.ReLU()
        convs = []
        for i, out_chs in enumerate(channels):
            for j, in_chs in enumerate(channels):
                if j > i:
                    convs.append(ConvBNAct(in_chs, out_chs, 1))
                for step in range(i - j):
                    last = step == i - j - 1
                    convs.append(ConvBNAct(in_chs, out_chs if last else in_chs, 3, stride=2,
                                           act=None if last else "relu"))
        self.residual_func_list = nn.LayerList(convs)

    def forward(self, xs):
        convs = iter(self.residual_func_list)
        out = []
        for i, xi in enumerate(xs):
            acc = xi
            for j, xj in enumerate(xs):
                if j > i:
                    # Resizing to the target's size, not by 2**(j - i), is the same for inputs divisible by 32 and
                    # also works when halving rounded up along the way (PaddleClas fails there).
                    acc = acc + F.interpolate(next(convs)(xj), size=paddle.shape(xi)[2:], mode="nearest")
                elif j < i:
                    for _ in range(i - j):
                        xj = next(convs)(xj)
                    acc = acc + xj
            out.append(self.relu(acc))
        return out


class HighResolutionModule(nn.Layer):
    """`BLOCKS_PER_BRANCH` basic blocks on every branch, then the exchange."""

    def __init__(self, channels, has_se: bool):
        super().__init__()
        self.basic_block_list = nn.LayerList(
            [nn.Sequential(*[BasicBlock(c, has_se) for _ in range(BLOCKS_PER_BRANCH)]) for c in channels])
        self.fuse_func = FuseLayers(channels)

    def forward(self, xs):
        return self.fuse_func([blocks(x) for blocks, x in zip(self.basic_block_list, xs)])


class Stage(nn.Layer):
    def __init__(self, num_modules: int, channels, has_se: bool):
        super().__init__()
        self.stage_func_list = nn.LayerList([HighResolutionModule(channels, has_se) for _ in range(num_modules)])

    def forward(self, xs):
        for module in self.stage_func_list:
            xs = module(xs)
        return xs


class LastClsOut(nn.Layer):
    """One projecting bottleneck per branch: branch k -> 4 * HEAD_BOTTLENECK_CHS[k] channels."""

    def __init__(self, channels, has_se: bool):
        super().__init__()
        self.func_list = nn.LayerList([BottleneckBlock(c, mid, has_se, project=True)
                                       for c, mid in zip(channels, HEAD_BOTTLENECK_CHS)])

    def forward(self, xs):
        return [block(x) for block, x in zip(self.func_list, xs)]


class HRNet(ClassifierHeads, nn.Layer):
    """Stem (two stride-2 3x3 convs, 64 ch) -> `layer1` (4 bottlenecks, 256 ch) -> stages 2-4 with 2, 3 and 4
    branches (1, 4 and 3 modules); a new, half-resolution branch is split off the coarsest one before each stage.
    Then the classification head described in the module docstring. `width` is the finest branch's width."""

    classifier_layer = staticmethod(uniform_linear)
    paddleclas_key_rules = PADDLECLAS_KEYS  # its SE layers `fc_squeeze`, `fc_excitation` are our `conv1`, `conv2`

    def __init__(self, width: int = 18, has_se: bool = False, num_classes: int = 1000):
        super().__init__()
        widths = [width * 2 ** k for k in range(4)]
        self.conv_layer1_1 = ConvBNAct(3, 64, 3, stride=2, act="relu")
        self.conv_layer1_2 = ConvBNAct(64, 64, 3, stride=2, act="relu")
        self.layer1 = nn.Sequential(*[BottleneckBlock(64 if i == 0 else 256, 64, has_se, project=i == 0)
                                      for i in range(4)])
        self.conv_tr1_1 = ConvBNAct(256, widths[0], 3, act="relu")
        self.conv_tr1_2 = ConvBNAct(256, widths[1], 3, stride=2, act="relu")
        self.st2 = Stage(1, widths[:2], has_se)
        self.conv_tr2 = ConvBNAct(widths[1], widths[2], 3, stride=2, act="relu")
        self.st3 = Stage(4, widths[:3], has_se)
        self.conv_tr3 = ConvBNAct(widths[2], widths[3], 3, stride=2, act="relu")
        self.st4 = Stage(3, widths, has_se)

        self.last_cls = LastClsOut(widths, has_se)
        self.cls_head_conv_list = nn.LayerList([ConvBNAct(4 * c, m, 3, stride=2, act="relu") for c, m in
                                                zip(HEAD_BOTTLENECK_CHS, HEAD_MERGE_CHS)])
        self.conv_last = ConvBNAct(HEAD_MERGE_CHS[-1], HEAD_FEATURES, 1, act="relu")
        self.num_features = self.head_hidden_size = HEAD_FEATURES
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.reset_classifier(num_classes)

    def forward_features(self, x):
        x = self.layer1(self.conv_layer1_2(self.conv_layer1_1(x)))
        xs = self.st2([self.conv_tr1_1(x), self.conv_tr1_2(x)])
        xs = self.st3([*xs, self.conv_tr2(xs[-1])])
        xs = self.st4([*xs, self.conv_tr3(xs[-1])])
        xs = self.last_cls(xs)
        y = xs[0]
        for merge, x_coarser in zip(self.cls_head_conv_list, xs[1:]):
            y = x_coarser + merge(y)
        return self.conv_last(y)

    def forward_head(self, x, pre_logits: bool = False):
        x = self.flatten(self.avg_pool(x))
        return x if pre_logits else self.fc(x)



def _create(width: int, has_se: bool = False, **kw) -> HRNet:
    return HRNet(width=width, has_se=has_se, **kw)


_FAMILY = "HRNet"


@register_model(spec(family=_FAMILY, params_m=21.35, flops_g=4.32, top1=0.7692, weights=("in1k", "ssld")))
def HRNet_W18_C(**kw):
    return _create(18, **kw)


@register_model(spec(family=_FAMILY, params_m=37.78, flops_g=8.15, top1=0.7804))
def HRNet_W30_C(**kw):
    return _create(30, **kw)


@register_model(spec(family=_FAMILY, params_m=41.3, flops_g=8.97, top1=0.7828))
def HRNet_W32_C(**kw):
    return _create(32, **kw)


@register_model(spec(family=_FAMILY, params_m=57.64, flops_g=12.74, top1=0.7877))
def HRNet_W40_C(**kw):
    return _create(40, **kw)


@register_model(spec(family=_FAMILY, params_m=67.16, flops_g=14.94, top1=0.79))
def HRNet_W44_C(**kw):
    return _create(44, **kw)


@register_model(spec(family=_FAMILY, params_m=77.57, flops_g=17.34, top1=0.7895, weights=("in1k", "ssld")))
def HRNet_W48_C(**kw):
    return _create(48, **kw)


@register_model(spec(family=_FAMILY, params_m=128.18, flops_g=28.97, top1=0.793))
def HRNet_W64_C(**kw):
    return _create(64, **kw)


@register_model(spec(family=_FAMILY, params_m=129.12, flops_g=29.0, top1=0.8475, weights=("ssld",)))
def SE_HRNet_W64_C(**kw):
    return _create(64, has_se=True, **kw)
