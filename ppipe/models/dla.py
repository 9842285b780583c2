"""Deep Layer Aggregation (Yu et al., 2018, arXiv:1707.06484). Weight-compatible with PaddleClas's DLA.

Stages 2-5 are aggregation trees: a tree of depth `levels` runs its two subtrees one after the other and a 1x1
"root" conv merges the outputs of its leaves' blocks with the inputs the tree was handed (its downsampled input at
a `level_root`, and the outputs of earlier sibling subtrees). Blocks are ResNet basic blocks (DLA34) or bottlenecks
of expansion 2, grouped for the `x` variants (32 or 64 groups of width 4). The classifier is a 1x1 conv `fc`.
"""

from __future__ import annotations

import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import Normal

from ppipe.models.layers import ClassifierHeads
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class BasicBlock(nn.Layer):
    """Two 3x3 conv-BN (ReLU between) + `residual` (the block's input unless the tree hands one), ReLU."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, cardinality: int = 1, base_width: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2D(in_chs, out_chs, 3, stride=stride, padding=1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(out_chs)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(out_chs, out_chs, 3, padding=1, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(out_chs)

    def forward(self, x, residual=None):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if residual is None else residual))


class Bottleneck(nn.Layer):
    """1x1 -> grouped 3x3 (stride) -> 1x1 conv-BN, expansion 2, + `residual`, ReLU."""

    expansion = 2

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, cardinality: int = 1, base_width: int = 64):
        super().__init__()
        mid = int(math.floor(out_chs * base_width / 64) * cardinality) // self.expansion
        self.conv1 = nn.Conv2D(in_chs, mid, 1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(mid)
        self.conv2 = nn.Conv2D(mid, mid, 3, stride=stride, padding=1, groups=cardinality, bias_attr=False)
        self.bn2 = nn.BatchNorm2D(mid)
        self.conv3 = nn.Conv2D(mid, out_chs, 1, bias_attr=False)
        self.bn3 = nn.BatchNorm2D(out_chs)
        self.relu = nn.ReLU()

    def forward(self, x, residual=None):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if residual is None else residual))


class Root(nn.Layer):
    """Concatenate the children, 1x1 conv-BN, + the first child when `residual`, ReLU."""

    def __init__(self, in_chs: int, out_chs: int, residual: bool):
        super().__init__()
        self.conv = nn.Conv2D(in_chs, out_chs, 1, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_chs)
        self.relu = nn.ReLU()
        self.residual = residual

    def forward(self, *children):
        x = self.bn(self.conv(paddle.concat(children, axis=1)))
        return self.relu(x + children[0] if self.residual else x)


class Tree(nn.Layer):
    """An aggregation tree of depth `levels`; a leaf (levels == 1) holds two blocks and the root.

    `root_chs`: channels the root concatenates (its two blocks' outputs plus whatever the ancestors hand down);
    0 means just the two blocks. A `level_root` tree also hands its downsampled input to the root.
    """

    def __init__(self, levels: int, block, in_chs: int, out_chs: int, stride: int = 1, level_root: bool = False,
                 root_chs: int = 0, root_residual: bool = False, **block_args):
        super().__init__()
        root_chs = (root_chs or 2 * out_chs) + (in_chs if level_root else 0)
        self.levels, self.level_root = levels, level_root
        # ceil_mode keeps the pooled shortcut the size of the strided conv's output on odd inputs (PaddleClas
        # floors and fails there); on even inputs the two agree.
        self.downsample = nn.MaxPool2D(stride, stride=stride, ceil_mode=True) if stride > 1 else nn.Identity()
        if levels == 1:
            self.tree1 = block(in_chs, out_chs, stride, **block_args)
            self.tree2 = block(out_chs, out_chs, 1, **block_args)
            self.project = (nn.Sequential(nn.Conv2D(in_chs, out_chs, 1, bias_attr=False), nn.BatchNorm2D(out_chs))
                            if in_chs != out_chs else nn.Identity())
            self.root = Root(root_chs, out_chs, root_residual)
        else:
            subtree = dict(root_residual=root_residual, **block_args)
            self.tree1 = Tree(levels - 1, block, in_chs, out_chs, stride, **subtree)
            self.tree2 = Tree(levels - 1, block, out_chs, out_chs, root_chs=root_chs + out_chs, **subtree)

    def forward(self, x, children=()):
        if self.level_root:
            children = (*children, self.downsample(x))
        if self.levels == 1:
            x1 = self.tree1(x, self.project(self.downsample(x)))
            x2 = self.tree2(x1)
            return self.root(x2, x1, *children)
        x1 = self.tree1(x)
        return self.tree2(x1, children=(*children, x1))


def _conv_bn_relu_stack(in_chs: int, out_chs: int, num_convs: int, stride: int = 1) -> nn.Sequential:
    layers = []
    for i in range(num_convs):
        layers += [nn.Conv2D(in_chs if i == 0 else out_chs, out_chs, 3, stride=stride if i == 0 else 1, padding=1,
                             bias_attr=False), nn.BatchNorm2D(out_chs), nn.ReLU()]
    return nn.Sequential(*layers)


def _init_conv(conv: nn.Conv2D) -> None:
    # He initialisation over fan-out, as DLA's authors (and PaddleClas) initialise every conv
    fan_out = conv._kernel_size[0] * conv._kernel_size[1] * conv._out_channels
    Normal(0.0, math.sqrt(2.0 / fan_out))(conv.weight)


def _conv_classifier(in_chs: int, num_classes: int) -> nn.Conv2D:
    conv = nn.Conv2D(in_chs, num_classes, 1)
    _init_conv(conv)
    return conv


class DLA(ClassifierHeads, nn.Layer):
    """7x7 stem `base_layer` -> `level0`, `level1` (plain 3x3 convs, the second at stride 2) -> trees `level2` ..
    `level5`, each at stride 2 (features) -> pool -> dropout `drop_rate` -> 1x1 conv `fc`.

    `levels`: number of convs of level0/1 and depths of the trees; `channels`: widths of level0..5.
    """

    classifier_layer = staticmethod(_conv_classifier)

    def __init__(self, levels, channels, block=Bottleneck, cardinality: int = 1, base_width: int = 64,
                 residual_root: bool = False, drop_rate: float = 0.0, num_classes: int = 1000):
        super().__init__()
        self.base_layer = nn.Sequential(nn.Conv2D(3, channels[0], 7, padding=3, bias_attr=False),
                                        nn.BatchNorm2D(channels[0]), nn.ReLU())
        self.level0 = _conv_bn_relu_stack(channels[0], channels[0], levels[0])
        self.level1 = _conv_bn_relu_stack(channels[0], channels[1], levels[1], stride=2)
        tree = dict(cardinality=cardinality, base_width=base_width, root_residual=residual_root)
        self.level2 = Tree(levels[2], block, channels[1], channels[2], 2, level_root=False, **tree)
        self.level3 = Tree(levels[3], block, channels[2], channels[3], 2, level_root=True, **tree)
        self.level4 = Tree(levels[4], block, channels[3], channels[4], 2, level_root=True, **tree)
        self.level5 = Tree(levels[5], block, channels[4], channels[5], 2, level_root=True, **tree)
        self.num_features = self.head_hidden_size = channels[-1]
        self.drop_rate = drop_rate
        self.global_pool = nn.AdaptiveAvgPool2D(1)
        for layer in self.sublayers():
            if isinstance(layer, nn.Conv2D):
                _init_conv(layer)
        self.reset_classifier(num_classes)

    def forward_features(self, x):
        x = self.level1(self.level0(self.base_layer(x)))
        return self.level5(self.level4(self.level3(self.level2(x))))

    def forward_head(self, x, pre_logits: bool = False):
        x = self.global_pool(x)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x.flatten(1) if pre_logits else self.fc(x).flatten(1)



def _create(levels, channels, block=Bottleneck, **kw) -> DLA:
    return DLA(levels, channels, block=block, **kw)


SMALL_CHS = (16, 32, 64, 64, 128, 256)  # the "_c" (compact) variants
WIDE_CHS = (16, 32, 128, 256, 512, 1024)
RESNEXT = dict(cardinality=32, base_width=4)
_FAMILY = "DLA"


@register_model(spec(family=_FAMILY, params_m=15.76, flops_g=3.07, top1=0.7603))
def DLA34(**kw):
    return _create((1, 1, 1, 2, 2, 1), (16, 32, 64, 128, 256, 512), block=BasicBlock, **kw)


@register_model(spec(family=_FAMILY, params_m=1.31, flops_g=0.54, top1=0.6321))
def DLA46_c(**kw):
    return _create((1, 1, 1, 2, 2, 1), SMALL_CHS, **kw)


@register_model(spec(family=_FAMILY, params_m=22.08, flops_g=4.26, top1=0.761))
def DLA60(**kw):
    return _create((1, 1, 1, 2, 3, 1), WIDE_CHS, **kw)


@register_model(spec(family=_FAMILY, params_m=17.41, flops_g=3.54, top1=0.7753))
def DLA60x(**kw):
    return _create((1, 1, 1, 2, 3, 1), WIDE_CHS, **RESNEXT, **kw)


@register_model(spec(family=_FAMILY, params_m=1.33, flops_g=0.59, top1=0.6645))
def DLA60x_c(**kw):
    return _create((1, 1, 1, 2, 3, 1), SMALL_CHS, **RESNEXT, **kw)


@register_model(spec(family=_FAMILY, params_m=33.34, flops_g=7.19, top1=0.7893))
def DLA102(**kw):
    return _create((1, 1, 1, 3, 4, 1), WIDE_CHS, residual_root=True, **kw)


@register_model(spec(family=_FAMILY, params_m=26.4, flops_g=5.89, top1=0.781))
def DLA102x(**kw):
    return _create((1, 1, 1, 3, 4, 1), WIDE_CHS, residual_root=True, **RESNEXT, **kw)


@register_model(spec(family=_FAMILY, params_m=41.42, flops_g=9.34, top1=0.7885))
def DLA102x2(**kw):
    return _create((1, 1, 1, 3, 4, 1), WIDE_CHS, residual_root=True, cardinality=64, base_width=4, **kw)


@register_model(spec(family=_FAMILY, params_m=53.5, flops_g=11.59, top1=0.7809))
def DLA169(**kw):
    return _create((1, 1, 2, 3, 5, 1), WIDE_CHS, residual_root=True, **kw)
