"""EfficientNet (Tan & Le, 2019, arXiv:1905.11946). Weight-compatible with PaddleClas's EfficientNetB0-B7 and
EfficientNetB0_small.

MBConv blocks (1x1 expand -> kxk depthwise -> SE -> 1x1 project, with drop-connect on the residual), scaled in
width and depth per variant. PaddleClas ports TensorFlow's 'SAME' padding statically: each strided conv pads for
the feature size the variant has at its nominal resolution (`NOMINAL_SIZES`), padding both sides and cropping the
first row and column where TensorFlow would pad asymmetrically; this is reproduced here (as the equivalent
asymmetric padding), so logits match at any input size. B0_small drops SE and pads symmetrically.

PaddleClas's keys (`_ef._blocks.1.._dcn._conv._conv._conv.weight`, `_ef.block.2.._se._conv1._conv.bias`,
`_conv._bn._mean`, `_fc.weight`) are mapped by `remap_checkpoint` onto `blocks.1.depthwise.conv.weight`,
`blocks.2.se.conv1.bias`, `head_conv.bn._mean`, `fc.weight`.
"""

from __future__ import annotations

import math

import paddle
import paddle.nn as nn

from ppipe.models.layers import ConvBNAct, DropPath, PooledClassifierNet, SEModule, classifier_rule, make_divisible
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

def _padding(kernel_size: int, stride: int, nominal_size: int | None) -> int | tuple[int, int, int, int]:
    """A conv's padding: TensorFlow 'SAME' for a `nominal_size` input when given, else the symmetric
    ((stride - 1) + (kernel_size - 1)) // 2. Where 'SAME' is asymmetric, PaddleClas pads `top + stride` on both sides
    and crops the first output row and column, which equals padding (top, top + stride) rows (and columns): that
    4-tuple is returned (Paddle's [top, bottom, left, right])."""
    if nominal_size is None:
        return ((stride - 1) + (kernel_size - 1)) // 2
    total = max(kernel_size - (stride if nominal_size % stride == 0 else nominal_size % stride), 0)
    top, bottom = total // 2, total - total // 2
    return (top, top + stride, top, top + stride) if top != bottom else bottom


def conv_bn(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1, act: str | None = None,
            nominal_size: int | None = None) -> ConvBNAct:
    """EfficientNet's conv unit: padding by `_padding`, TensorFlow's BatchNorm settings (which the weights come
    from), BatchNorm weights decayed as in PaddleClas."""
    return ConvBNAct(in_chs, out_chs, kernel_size, stride=stride, groups=groups, act=act,
                     padding=_padding(kernel_size, stride, nominal_size), bn_eps=1e-3, bn_momentum=0.99,
                     bn_weight_decay=True)


class MBConv(nn.Layer):
    """[1x1 `expand` -> swish] -> kxk `depthwise` -> swish -> [`se`] -> 1x1 `project`, + identity (with
    drop-connect) when stride 1 and the channels match."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, expand_ratio: int,
                 se_chs: int | None, drop_connect: float, nominal_size: int | None):
        super().__init__()
        mid_chs = in_chs * expand_ratio
        self.expand = conv_bn(in_chs, mid_chs, 1, act="swish") if expand_ratio != 1 else nn.Identity()
        self.depthwise = conv_bn(mid_chs, mid_chs, kernel_size, stride=stride, groups=mid_chs, act="swish",
                                nominal_size=nominal_size)
        self.se = SEModule(mid_chs, rd_channels=se_chs, act="swish", gate="sigmoid") if se_chs else nn.Identity()
        self.project = conv_bn(mid_chs, out_chs, 1)
        self.has_skip = stride == 1 and in_chs == out_chs
        self.drop_path = DropPath(drop_connect) if self.has_skip else nn.Identity()

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return paddle.add(self.drop_path(y), x) if self.has_skip else y


_BLOCK_PARTS = {"ecn": "expand", "dcn": "depthwise", "pcn": "project"}
# see the module docstring
PADDLECLAS_KEYS = ((r"^_ef\._conv_stem\._conv\.", "stem."), (r"^_ef\.(?:_blocks|block)\.(\d+)\.\.", r"blocks.\1."),
                   (r"^_conv\.", "head_conv."), classifier_rule("_fc"),
                   (r"\._(ecn|dcn|pcn)\._conv\.", lambda m: f".{_BLOCK_PARTS[m[1]]}."),
                   (r"\._se\._conv([12])\._conv\.", r".se.conv\1."), (r"\._conv\._conv\.", ".conv."),
                   (r"\._bn\.", ".bn."))


class EfficientNet(PooledClassifierNet):
    """`stem` (3x3/2, swish) -> MBConv `blocks` -> 1x1 `head_conv` (swish; features) -> global average pool ->
    dropout -> `fc`.

    `width`, `depth`: the variant's channel and repeat multipliers; `nominal_sizes`: its feature sizes at the
    nominal resolution for the stem and stages 1-7 (None: symmetric padding); `use_se`: squeeze-excitation in
    every block.
    """

    paddleclas_key_rules = PADDLECLAS_KEYS

    def __init__(self, width: float, depth: float, dropout_prob: float, nominal_sizes: tuple[int, ...] | None,
                 use_se: bool = True, drop_connect_rate: float = 0.2, num_classes: int = 1000):
        super().__init__()
        sizes = nominal_sizes or (None,) * 8
        stem_chs = make_divisible(32 * width)
        self.stem = conv_bn(3, stem_chs, 3, stride=2, act="swish", nominal_size=sizes[0])
        stages = [(k, math.ceil(depth * r), s, e, make_divisible(c * width)) for k, r, s, e, c in STAGES]
        total, blocks, in_chs = sum(s[1] for s in stages), [], stem_chs
        for stage, (k, repeats, stride, expand, out_chs) in enumerate(stages, start=1):
            for i in range(repeats):
                # SE squeezes to a quarter of the block's input channels (not of its expanded width)
                se_chs = max(1, int(in_chs * SE_RATIO)) if use_se else None
                blocks.append(MBConv(in_chs, out_chs, k, stride if i == 0 else 1, expand, se_chs,
                                     drop_connect_rate * len(blocks) / total, sizes[stage]))
                in_chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        head_chs = make_divisible(1280 * width)
        self.head_conv = conv_bn(in_chs, head_chs, 1, act="swish")
        self._init_head(head_chs, num_classes, use_last_conv=False)
        # PaddleClas's dropout here is "upscale_in_train": the identity at inference
        self.dropout = nn.Dropout(p=dropout_prob) if dropout_prob else nn.Identity()

    def forward_features(self, x):
        return self.head_conv(self.blocks(self.stem(x)))


# per stage: kernel, repeats (at depth 1.0), stride, expansion, output channels (at width 1.0)
STAGES = ((3, 1, 1, 1, 16), (3, 2, 2, 6, 24), (5, 2, 2, 6, 40), (3, 3, 2, 6, 80), (5, 3, 1, 6, 112),
          (5, 4, 2, 6, 192), (3, 1, 1, 6, 320))
SE_RATIO = 0.25
# feature sizes at the nominal resolution: input, then the input of stages 1-7 (PaddleClas's `inp_shape`)
NOMINAL_SIZES = {
    "b0": (224, 112, 112, 56, 28, 14, 14, 7),
    "b1": (240, 120, 120, 60, 30, 15, 15, 8),
    "b2": (260, 130, 130, 65, 33, 17, 17, 9),
    "b3": (300, 150, 150, 75, 38, 19, 19, 10),
    "b4": (380, 190, 190, 95, 48, 24, 24, 12),
    "b5": (456, 228, 228, 114, 57, 29, 29, 15),
    "b6": (528, 264, 264, 132, 66, 33, 33, 17),
    "b7": (600, 300, 300, 150, 75, 38, 38, 19),
}
_FAMILY = "EfficientNet"


def _create(variant: str, width: float, depth: float, dropout: float, **kw) -> EfficientNet:
    return EfficientNet(width, depth, kw.pop("dropout_prob", dropout), NOMINAL_SIZES[variant], **kw)


@register_model(spec(family=_FAMILY, params_m=5.33, flops_g=0.4, top1=0.7738, input_size=224))
def EfficientNetB0(**kw):
    return _create("b0", 1.0, 1.0, 0.2, **kw)


@register_model(spec(family=_FAMILY, params_m=4.69, flops_g=0.4, top1=0.758, input_size=224))
def EfficientNetB0_small(**kw):
    return EfficientNet(1.0, 1.0, kw.pop("dropout_prob", 0.2), nominal_sizes=None, use_se=False, **kw)


@register_model(spec(family=_FAMILY, params_m=7.86, flops_g=0.71, top1=0.7915, input_size=240))
def EfficientNetB1(**kw):
    return _create("b1", 1.0, 1.1, 0.2, **kw)


@register_model(spec(family=_FAMILY, params_m=9.18, flops_g=1.02, top1=0.7985, input_size=260))
def EfficientNetB2(**kw):
    return _create("b2", 1.1, 1.2, 0.3, **kw)


@register_model(spec(family=_FAMILY, params_m=12.324, flops_g=1.88, top1=0.8115, input_size=300))
def EfficientNetB3(**kw):
    return _create("b3", 1.2, 1.4, 0.3, **kw)


@register_model(spec(family=_FAMILY, params_m=19.47, flops_g=4.51, top1=0.8285, input_size=380))
def EfficientNetB4(**kw):
    return _create("b4", 1.4, 1.8, 0.4, **kw)


@register_model(spec(family=_FAMILY, params_m=30.56, flops_g=10.51, top1=0.8362, input_size=456))
def EfficientNetB5(**kw):
    return _create("b5", 1.6, 2.2, 0.4, **kw)


@register_model(spec(family=_FAMILY, params_m=43.27, flops_g=19.47, top1=0.84, input_size=528))
def EfficientNetB6(**kw):
    return _create("b6", 1.8, 2.6, 0.5, **kw)


@register_model(spec(family=_FAMILY, params_m=66.66, flops_g=38.45, top1=0.843, input_size=600))
def EfficientNetB7(**kw):
    return _create("b7", 2.0, 3.1, 0.5, **kw)
