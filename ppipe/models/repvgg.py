"""RepVGG (Ding et al., 2021, arXiv:2101.03697). Weight-compatible with PaddleClas's RepVGG.

Trained as a multi-branch network (3x3 conv-BN + 1x1 conv-BN + identity BN, summed, then ReLU) and deployed as a
plain VGG: `reparameterize()` fuses each block's branches into a single biased 3x3 conv (`rbr_reparam`), after
which the state dict holds only the deploy form. Published parameter counts are those of the deploy form.
Block names (`stage0`..`stage4`, `rbr_dense`, `rbr_1x1`, `rbr_identity`) are the paper's and PaddleClas's; only
its classifier `linear` is renamed to the zoo's `fc` by `remap_checkpoint`.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from ppipe.models.layers import ConvBNAct, PooledClassifierNet, classifier_rule
from ppipe.models.layers.reparameterize import fuse_conv_bn, identity_kernel, pad_kernel
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class RepVGGBlock(nn.Layer):
    """ReLU(3x3 conv-BN + 1x1 conv-BN [+ BN of the input when shapes allow]); `reparameterize()` fuses the sum
    into one 3x3 conv with bias."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.in_chs, self.out_chs, self.stride, self.groups = in_chs, out_chs, stride, groups
        self.is_reparameterized = False
        self.rbr_identity = nn.BatchNorm2D(in_chs) if in_chs == out_chs and stride == 1 else None
        self.rbr_dense = ConvBNAct(in_chs, out_chs, 3, stride=stride, groups=groups)
        self.rbr_1x1 = ConvBNAct(in_chs, out_chs, 1, stride=stride, groups=groups)
        self.nonlinearity = nn.ReLU()

    def forward(self, x):
        if self.is_reparameterized:
            return self.nonlinearity(self.rbr_reparam(x))
        y = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            y = y + self.rbr_identity(x)
        return self.nonlinearity(y)

    @paddle.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by `rbr_reparam`, the single 3x3 conv computing the same function in eval mode."""
        if self.is_reparameterized:
            return
        kernel, bias = fuse_conv_bn(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        k1x1, b1x1 = fuse_conv_bn(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)
        kernel, bias = kernel + pad_kernel(k1x1, 3), bias + b1x1
        if self.rbr_identity is not None:
            # the identity as a grouped 3x3 kernel: channel i reads its own input, at the centre tap
            identity = pad_kernel(identity_kernel(self.in_chs, self.groups, kernel.dtype), 3)
            k_id, b_id = fuse_conv_bn(identity, self.rbr_identity)
            kernel, bias = kernel + k_id, bias + b_id
        self.rbr_reparam = nn.Conv2D(self.in_chs, self.out_chs, 3, stride=self.stride, padding=1, groups=self.groups)
        self.rbr_reparam.weight.set_value(kernel)
        self.rbr_reparam.bias.set_value(bias)
        del self.rbr_dense, self.rbr_1x1
        self.rbr_identity = None
        self.is_reparameterized = True


class RepVGG(PooledClassifierNet):
    """`stage0` (one stride-2 block) -> `stage1`..`stage4` (first block stride 2) -> features -> global average
    pool -> `fc`.

    `depths`: blocks of stages 1-4; `widths`: width multipliers of 64-128-256-512 channels; `groups`: groups of
    the blocks numbered 1, 2, ... across stages 1-4 (absent: 1), as in the paper's g2/g4 variants.
    """

    paddleclas_key_rules = (classifier_rule("linear"),)  # PaddleClas's classifier is `linear`

    def __init__(self, depths: tuple[int, ...], widths: tuple[float, ...], groups: dict[int, int] | None = None,
                 num_classes: int = 1000):
        super().__init__()
        groups = groups or {}
        in_chs = min(64, int(64 * widths[0]))
        self.stage0 = RepVGGBlock(3, in_chs, stride=2)
        layer_idx = 1
        for stage, (depth, width, base) in enumerate(zip(depths, widths, (64, 128, 256, 512)), start=1):
            out_chs, blocks = int(base * width), []
            for i in range(depth):
                blocks.append(RepVGGBlock(in_chs, out_chs, stride=2 if i == 0 else 1, groups=groups.get(layer_idx, 1)))
                in_chs, layer_idx = out_chs, layer_idx + 1
            setattr(self, f"stage{stage}", nn.Sequential(*blocks))
        self._init_head(in_chs, num_classes, use_last_conv=False)

    def reparameterize(self) -> None:
        """Fuse every block into its deploy form (a single 3x3 conv); the model must then be used in eval mode."""
        for layer in self.sublayers():
            if isinstance(layer, RepVGGBlock):
                layer.reparameterize()

    def forward_features(self, x):
        x = self.stage0(x)
        return self.stage4(self.stage3(self.stage2(self.stage1(x))))


# groups of the paper's g2/g4 variants: every even-numbered block of stages 1-4
GROUPED_LAYERS = tuple(range(2, 27, 2))
G2 = {i: 2 for i in GROUPED_LAYERS}
G4 = {i: 4 for i in GROUPED_LAYERS}
A_DEPTHS, B_DEPTHS = (2, 4, 14, 1), (4, 6, 16, 1)
_FAMILY = "RepVGG"


@register_model(spec(family=_FAMILY, params_m=8.31, flops_g=1.36, top1=0.7131, input_size=224))
def RepVGG_A0(**kw):
    return RepVGG(A_DEPTHS, (0.75, 0.75, 0.75, 2.5), **kw)


@register_model(spec(family=_FAMILY, params_m=12.79, flops_g=2.37, top1=0.738, input_size=224))
def RepVGG_A1(**kw):
    return RepVGG(A_DEPTHS, (1, 1, 1, 2.5), **kw)


@register_model(spec(family=_FAMILY, params_m=25.5, flops_g=5.12, top1=0.7571, input_size=224))
def RepVGG_A2(**kw):
    return RepVGG(A_DEPTHS, (1.5, 1.5, 1.5, 2.75), **kw)


@register_model(spec(family=_FAMILY, params_m=14.34, flops_g=3.06, top1=0.745, input_size=224))
def RepVGG_B0(**kw):
    return RepVGG(B_DEPTHS, (1, 1, 1, 2.5), **kw)


@register_model(spec(family=_FAMILY, params_m=51.83, flops_g=11.82, top1=0.7773, input_size=224))
def RepVGG_B1(**kw):
    return RepVGG(B_DEPTHS, (2, 2, 2, 4), **kw)


@register_model(spec(family=_FAMILY, params_m=41.36, flops_g=8.82, top1=0.7732, input_size=224))
def RepVGG_B1g2(**kw):
    return RepVGG(B_DEPTHS, (2, 2, 2, 4), groups=G2, **kw)


@register_model(spec(family=_FAMILY, params_m=36.13, flops_g=7.31, top1=0.7675, input_size=224))
def RepVGG_B1g4(**kw):
    return RepVGG(B_DEPTHS, (2, 2, 2, 4), groups=G4, **kw)


@register_model(spec(family=_FAMILY, params_m=80.32, flops_g=18.38, top1=0.7813, input_size=224))
def RepVGG_B2(**kw):
    return RepVGG(B_DEPTHS, (2.5, 2.5, 2.5, 5), **kw)


@register_model(spec(family=_FAMILY, params_m=55.78, flops_g=11.34, top1=0.7881, input_size=224))
def RepVGG_B2g4(**kw):
    return RepVGG(B_DEPTHS, (2.5, 2.5, 2.5, 5), groups=G4, **kw)


@register_model(spec(family=_FAMILY, params_m=75.63, flops_g=16.07, top1=0.7965, input_size=224))
def RepVGG_B3g4(**kw):
    return RepVGG(B_DEPTHS, (3, 3, 3, 5), groups=G4, **kw)
