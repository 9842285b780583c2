"""Residual blocks of the ResNet lineage (He et al., 2016, arXiv:1512.03385), as data-driven layers.

One basic block and one bottleneck serve ResNet, ResNeXt (grouped 3x3, Xie et al., 2017, arXiv:1611.05431),
SE-ResNet(X)/SENet (squeeze-and-excitation, Hu et al., 2018, arXiv:1709.01507) and the "bag of tricks" variants
(He et al., 2019, arXiv:1812.01187): the deep 3x3 stem of ResNet-C/D and the average-pool shortcut of ResNet-D.

State-dict keys follow PaddleClas's `legendary_models/resnet.py`: `conv0`/`conv1`/`conv2` (each `conv` + `bn`),
the projection `short`, and `se.conv1`/`se.conv2` (fully connected) where a block has SE.

Two options of PaddleClas's ResNet run through every block: `conv_layer`, the unit of the residual branch's convs
(ConvBNAct, or a training-time multi-branch unit such as `DiverseBranchBlock` with the same arguments), and
`data_format` ("NHWC": channels-last activations for float16 GPU convolutions; parameters are the same).
"""

from __future__ import annotations

from typing import Callable, Sequence

import paddle
import paddle.nn as nn

from ppipe.models.layers.classifier import uniform_linear
from ppipe.models.layers.conv_bn_act import ConvBNAct
from ppipe.models.layers.squeeze_excite import SEModule


class AvgPoolConvBN(ConvBNAct):
    """ResNet-D's projection shortcut: a 2x2 average pool takes the stride, so the 1x1 conv sees every pixel.

    The pool is 'SAME'-padded, ceil-mode and excludes padding, so an odd map averages its last row/column alone;
    PaddleClas's older files (padding 0, ceil mode) compute the same windows.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, lr_mult: float = 1.0, data_format: str = "NCHW"):
        super().__init__(in_chs, out_chs, 1, lr_mult=lr_mult, data_format=data_format)
        self.pool = nn.AvgPool2D(kernel_size=2, stride=stride, padding="SAME", ceil_mode=True,
                                 data_format=data_format)

    def forward(self, x):
        return super().forward(self.pool(x))


def projection_shortcut(in_chs: int, out_chs: int, stride: int, avg_down: bool, lr_mult: float = 1.0,
                        data_format: str = "NCHW") -> nn.Layer:
    """The `short` branch of a stage's first block: a strided 1x1 conv + BN, or ResNet-D's pool then 1x1 conv."""
    if avg_down:
        return AvgPoolConvBN(in_chs, out_chs, stride, lr_mult=lr_mult, data_format=data_format)
    return ConvBNAct(in_chs, out_chs, 1, stride=stride, lr_mult=lr_mult, data_format=data_format)


def _bound(conv_layer: Callable[..., nn.Layer], data_format: str) -> Callable[..., nn.Layer]:
    """`conv_layer` laying out its activations in `data_format` (the NCHW default needs no argument, so a unit
    without a `data_format` parameter serves NCHW networks)."""
    if data_format == "NCHW":
        return conv_layer
    return lambda *args, **kw: conv_layer(*args, data_format=data_format, **kw)


class _ResidualBlock(nn.Layer):
    """Shared tail of both blocks: optional SE on the residual branch, the shortcut, sum, ReLU."""

    def _init_tail(self, in_chs: int, out_chs: int, stride: int, project: bool, avg_down: bool,
                   se_reduction: int | None, lr_mult: float, data_format: str) -> None:
        self.se = (SEModule(out_chs, se_reduction, gate="sigmoid", fc_layer=uniform_linear, data_format=data_format)
                   if se_reduction else nn.Identity())
        self.short = (projection_shortcut(in_chs, out_chs, stride, avg_down, lr_mult, data_format) if project
                      else nn.Identity())
        self.relu = nn.ReLU()

    def _residual(self, x):
        raise NotImplementedError

    def forward(self, x):
        return self.relu(paddle.add(self.se(self._residual(x)), self.short(x)))


class BasicBlock(_ResidualBlock):
    """3x3 conv (stride) -> 3x3 conv, + shortcut (ResNet-18/34). `width` must equal `out_chs`; no grouping."""

    def __init__(self, in_chs: int, width: int, out_chs: int, stride: int = 1, groups: int = 1,
                 project: bool = False, avg_down: bool = False, se_reduction: int | None = None,
                 lr_mult: float = 1.0, conv_layer: Callable[..., nn.Layer] = ConvBNAct, data_format: str = "NCHW"):
        super().__init__()
        conv = _bound(conv_layer, data_format)
        if width != out_chs or groups != 1:
            raise ValueError(f"a basic block has out_chs == width and no groups, got width={width}, "
                             f"out_chs={out_chs}, groups={groups}")
        self.conv0 = conv(in_chs, width, 3, stride=stride, act="relu", lr_mult=lr_mult)
        self.conv1 = conv(width, out_chs, 3, lr_mult=lr_mult)
        self._init_tail(in_chs, out_chs, stride, project, avg_down, se_reduction, lr_mult, data_format)

    def _residual(self, x):
        return self.conv1(self.conv0(x))


class Bottleneck(_ResidualBlock):
    """1x1 conv (to `width`) -> 3x3 conv (stride, `groups`) -> 1x1 conv (to `out_chs`), + shortcut.

    ResNet: width = out_chs / 4, groups 1; ResNeXt CxWd: `groups` = C, width = C * W per stage.
    """

    def __init__(self, in_chs: int, width: int, out_chs: int, stride: int = 1, groups: int = 1,
                 project: bool = False, avg_down: bool = False, se_reduction: int | None = None,
                 lr_mult: float = 1.0, conv_layer: Callable[..., nn.Layer] = ConvBNAct, data_format: str = "NCHW"):
        super().__init__()
        conv = _bound(conv_layer, data_format)
        self.conv0 = conv(in_chs, width, 1, act="relu", lr_mult=lr_mult)
        self.conv1 = conv(width, width, 3, stride=stride, groups=groups, act="relu", lr_mult=lr_mult)
        self.conv2 = conv(width, out_chs, 1, lr_mult=lr_mult)
        self._init_tail(in_chs, out_chs, stride, project, avg_down, se_reduction, lr_mult, data_format)

    def _residual(self, x):
        return self.conv2(self.conv1(self.conv0(x)))


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}

# Stems as rows of (out channels, kernel, stride), each a conv + BN + ReLU.
STEM_7X7 = ((64, 7, 2),)  # the original single 7x7 conv
STEM_DEEP = ((32, 3, 2), (32, 3, 1), (64, 3, 1))  # ResNet-C/D: three 3x3 convs, same receptive field, cheaper
STEM_DEEP_WIDE = ((64, 3, 2), (64, 3, 1), (128, 3, 1))  # SE-ResNeXt-vd and SENet154's doubled deep stem


def make_stem(rows: Sequence[tuple[int, int, int]], in_chs: int = 3, first_stride: int | None = None,
              lr_mult: float = 1.0, data_format: str = "NCHW") -> nn.Sequential:
    """The stem convs from `rows` on an `in_chs`-channel image; `first_stride` overrides the first conv's
    stride."""
    layers = []
    for i, (out_chs, k, s) in enumerate(rows):
        stride = first_stride if i == 0 and first_stride is not None else s
        layers.append(ConvBNAct(in_chs, out_chs, k, stride=stride, act="relu", lr_mult=lr_mult,
                                data_format=data_format))
        in_chs = out_chs
    return nn.Sequential(*layers)
