"""HarDNet, the harmonic densely connected network (Chao et al., 2019, arXiv:1909.00948). Weight-compatible with
PaddleClas's HarDNet.

Inside a harmonic dense block, layer k reads the outputs of layers k - 2^i for every 2^i dividing k (layer 0 being
the block's input), and layers with more inputs get wider (x `growth_mult` per extra link). Only the odd layers and
the last one form the block's output. The `_ds` variants replace 3x3 convs by 1x1 conv + 3x3 depthwise and max
pooling by strided depthwise convs.

The feature layers sit in one `base` list, PaddleClas's layout (`base.3.layers.0.conv.weight`); PaddleClas also
keeps the classifier there (`base.<last>.3.weight`), which `remap_checkpoint` renames to `fc`.
"""

from __future__ import annotations

from dataclasses import dataclass

import paddle
import paddle.nn as nn

from ppipe.models.layers import ClassifierHeads
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


def conv_layer(in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """conv -> BN -> ReLU6, keys `conv`, `norm`."""
    return nn.Sequential(("conv", nn.Conv2D(in_chs, out_chs, kernel_size, stride=stride, padding=kernel_size // 2,
                                            bias_attr=False)),
                         ("norm", nn.BatchNorm2D(out_chs)), ("relu", nn.ReLU6()))


def dw_conv_layer(chs: int, stride: int = 1) -> nn.Sequential:
    """3x3 depthwise conv -> BN (no activation), keys `dwconv`, `norm`."""
    return nn.Sequential(("dwconv", nn.Conv2D(chs, chs, 3, stride=stride, padding=1, groups=chs, bias_attr=False)),
                         ("norm", nn.BatchNorm2D(chs)))


def comb_conv_layer(in_chs: int, out_chs: int) -> nn.Sequential:
    """The depthwise-separable replacement of a 3x3 conv layer: 1x1 conv layer, then 3x3 depthwise."""
    return nn.Sequential(("layer1", conv_layer(in_chs, out_chs, 1)), ("layer2", dw_conv_layer(out_chs)))


def harmonic_link(layer: int, base_chs: int, growth: int, growth_mult: float) -> tuple[int, int, list[int]]:
    """(output channels, input channels, indices of the layers it reads) of layer `layer` >= 1 of a block whose
    input (layer 0) has `base_chs` channels."""
    if layer == 0:
        return base_chs, 0, []
    links = [layer - 2 ** i for i in range(10) if layer % 2 ** i == 0]
    out_chs = growth
    for _ in links[1:]:  # multiplied step by step, not as a power: the float rounding decides the width
        out_chs *= growth_mult
    out_chs = int(int(out_chs + 1) / 2) * 2  # rounded to even, as PaddleClas (and the paper's code) round
    in_chs = sum(harmonic_link(k, base_chs, growth, growth_mult)[0] for k in links)
    return out_chs, in_chs, links


class HarDBlock(nn.Layer):
    def __init__(self, in_chs: int, growth: int, growth_mult: float, num_layers: int, depthwise: bool):
        super().__init__()
        self.links, layers = [], []
        self.out_channels = 0
        for i in range(1, num_layers + 1):
            out_chs, link_chs, links = harmonic_link(i, in_chs, growth, growth_mult)
            self.links.append(links)
            layers.append(comb_conv_layer(link_chs, out_chs) if depthwise else conv_layer(link_chs, out_chs))
            if i % 2 == 1 or i == num_layers:
                self.out_channels += out_chs
        self.layers = nn.LayerList(layers)

    def forward(self, x):
        outs = [x]
        for layer, links in zip(self.layers, self.links):
            inputs = [outs[k] for k in links]
            outs.append(layer(paddle.concat(inputs, axis=1) if len(inputs) > 1 else inputs[0]))
        last = len(outs) - 1
        return paddle.concat([o for k, o in enumerate(outs) if k % 2 == 1 or k == last], axis=1)


@dataclass(frozen=True)
class HarDNetCfg:
    """`stem_chs`: the two stem convs' widths; `stages`: (growth, layers, transition width, downsample after) per
    harmonic block; `drop_rate`: dropout before `fc` (the `_ds` variants use `DS_DROP_RATE`);
    `drop_before_last_transition`: HarDNet85's extra dropout after its last block."""

    stem_chs: tuple[int, int]
    growth_mult: float
    stages: tuple[tuple[int, int, int, bool], ...]
    drop_rate: float
    drop_before_last_transition: float = 0.0


DS_DROP_RATE = 0.05


class HarDNet(ClassifierHeads, nn.Layer):
    """Stem (3x3 stride 2, then 3x3 or 1x1) -> stride-2 downsampling -> per stage: harmonic block -> 1x1 transition
    conv -> optional stride-2 downsampling (features) -> pool -> dropout -> `fc`.

    Downsampling is max pooling, or a strided 3x3 depthwise conv-BN when `depthwise`.
    """

    def __init__(self, cfg: HarDNetCfg, depthwise: bool = False, num_classes: int = 1000,
                 drop_rate: float | None = None):
        super().__init__()
        first, second = cfg.stem_chs

        def downsample(chs: int, kernel_size: int, padding: int) -> nn.Layer:
            return dw_conv_layer(chs, stride=2) if depthwise else nn.MaxPool2D(kernel_size, 2, padding=padding)

        base = [conv_layer(3, first, 3, stride=2), conv_layer(first, second, 1 if depthwise else 3),
                downsample(second, 3, 1)]
        chs = second
        for idx, (growth, num_layers, out_chs, down) in enumerate(cfg.stages):
            block = HarDBlock(chs, growth, cfg.growth_mult, num_layers, depthwise)
            base.append(block)
            if idx == len(cfg.stages) - 1 and cfg.drop_before_last_transition:
                base.append(nn.Dropout(cfg.drop_before_last_transition))
            base.append(conv_layer(block.out_channels, out_chs, 1))
            if down:
                base.append(downsample(out_chs, 2, 0))
            chs = out_chs
        self.base = nn.LayerList(base)
        self.num_features = self.head_hidden_size = chs
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(drop_rate if drop_rate is not None else DS_DROP_RATE if depthwise
                                  else cfg.drop_rate)
        self.reset_classifier(num_classes)

    @property
    def paddleclas_key_rules(self) -> tuple:
        """PaddleClas's classifier `base.<len(base)>.3.*` (after pool, flatten, dropout) is our `fc.*`."""
        return ((rf"^base\.{len(self.base)}\.3\.", "fc."),)

    def forward_features(self, x):
        for layer in self.base:
            x = layer(x)
        return x

    def forward_head(self, x, pre_logits: bool = False):
        x = self.dropout(self.avg_pool(x).flatten(1))
        return x if pre_logits else self.fc(x)



def _create(cfg: HarDNetCfg, depthwise: bool = False, **kw) -> HarDNet:
    return HarDNet(cfg, depthwise=depthwise, **kw)


HARDNET39 = HarDNetCfg((24, 48), 1.6, ((16, 4, 96, True), (20, 16, 320, True), (64, 8, 640, True),
                                      (160, 4, 1024, False)), drop_rate=0.1)
HARDNET68 = HarDNetCfg((32, 64), 1.7, ((14, 8, 128, True), (16, 16, 256, False), (20, 16, 320, True),
                                      (40, 16, 640, True), (160, 4, 1024, False)), drop_rate=0.1)
HARDNET85 = HarDNetCfg((48, 96), 1.7, ((24, 8, 192, True), (24, 16, 256, False), (28, 16, 320, True),
                                      (36, 16, 480, False), (48, 16, 720, True), (256, 4, 1280, False)),
                       drop_rate=0.2, drop_before_last_transition=0.1)
_FAMILY = "HarDNet"


@register_model(spec(family=_FAMILY, params_m=3.51, flops_g=0.44, top1=0.7133))
def HarDNet39_ds(**kw):
    return _create(HARDNET39, depthwise=True, **kw)


@register_model(spec(family=_FAMILY, params_m=4.2, flops_g=0.79, top1=0.7362))
def HarDNet68_ds(**kw):
    return _create(HARDNET68, depthwise=True, **kw)


@register_model(spec(family=_FAMILY, params_m=17.58, flops_g=4.26, top1=0.7546))
def HarDNet68(**kw):
    return _create(HARDNET68, **kw)


@register_model(spec(family=_FAMILY, params_m=36.69, flops_g=9.09, top1=0.7744))
def HarDNet85(**kw):
    return _create(HARDNET85, **kw)
