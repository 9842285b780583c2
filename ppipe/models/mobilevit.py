"""MobileViT (Mehta & Rastegari, 2022, arXiv:2110.02178). Weight-compatible with PaddleClas's MobileViT.

MobileNetV2 blocks, and three MobileViT blocks that mix local (3x3 conv) and global information: the feature map is
cut into 2x2 patches and a transformer attends across patches, separately for each of the 4 pixel positions, before
the result is folded back and fused with the input. The head pools, drops out and classifies (`linear`).

PaddleClas names its layers by `nn.Sequential` index (`mv2_block_1.conv.3`) and calls conv-BN-SiLU's norm `norm`;
ours use the zoo's `InvertedResidual`/`ConvBNAct`, and `MobileViT.remap_checkpoint` maps PaddleClas's keys onto them.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import KaimingUniform

from ppipe.models.layers import ClassifierHeads, ConvBNAct, DropPath, Mlp
from ppipe.models.layers.attention import Attention
from ppipe.models.layers.inverted_residual import InvertedResidual
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

ACT = "silu"
PATCH = 2  # MobileViT's 2x2 patches


def _conv(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1) -> ConvBNAct:
    return ConvBNAct(in_chs, out_chs, kernel_size, stride=stride, act=ACT, weight_init=KaimingUniform())


class EncoderLayer(nn.Layer):
    """Pre-norm transformer layer: attention and a SiLU MLP, each with dropout 0.1 on its output."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, dropout: float, attn_dropout: float,
                 drop_path: float):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=True, attn_drop=attn_dropout, proj_drop=dropout)
        self.drop_path = DropPath(drop_path)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act=ACT, drop=dropout)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.attn_norm(x)))
        return x + self.drop_path(self.mlp(self.mlp_norm(x)))


class Transformer(nn.Layer):
    def __init__(self, dim: int, depth: int, num_heads: int = 4, mlp_ratio: float = 2.0, dropout: float = 0.1,
                 attn_dropout: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        # PaddleClas gives every layer the same drop_path (its linspace decay is computed but unused)
        self.layers = nn.LayerList([EncoderLayer(dim, num_heads, mlp_ratio, dropout, attn_dropout, drop_path)
                                    for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, epsilon=1e-6)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


class MobileViTBlock(nn.Layer):
    """3x3 conv -> 1x1 conv to `hidden_dim` -> unfold 2x2 patches -> transformer -> fold -> 1x1 conv back to `dim`
    -> concatenated with the input -> 3x3 fusion conv."""

    def __init__(self, dim: int, hidden_dim: int, depth: int, **transformer_kw):
        super().__init__()
        self.conv1 = _conv(dim, dim, 3)
        self.conv2 = nn.Conv2D(dim, hidden_dim, 1, bias_attr=False)
        self.transformer = Transformer(hidden_dim, depth, **transformer_kw)
        self.conv3 = _conv(hidden_dim, dim, 1)
        self.conv4 = _conv(2 * dim, dim, 3)

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        C, H, W = y.shape[1], y.shape[2], y.shape[3]
        rows, cols = (H + PATCH - 1) // PATCH, (W + PATCH - 1) // PATCH
        # Like PaddleClas, a map of odd size is resized (bilinear) to whole patches and back (nearest). Exported
        # with dynamic sizes, H and W are unknown until run time, so the resize is always kept: at sizes already
        # divisible it is the identity.
        resize = not (isinstance(H, int) and isinstance(W, int) and H % PATCH == 0 and W % PATCH == 0)
        if resize:
            y = F.interpolate(y, size=[rows * PATCH, cols * PATCH], mode="bilinear")
        # [B, C, rows*p, cols*p] -> [B*p*p, rows*cols, C]: each pixel position of a patch is one sequence
        tokens = y.reshape([-1, C, rows, PATCH, cols, PATCH]).transpose([0, 3, 5, 2, 4, 1])
        tokens = self.transformer(tokens.reshape([-1, rows * cols, C]))
        y = tokens.reshape([-1, PATCH, PATCH, rows, cols, C]).transpose([0, 5, 3, 1, 4, 2])
        y = y.reshape([-1, C, rows * PATCH, cols * PATCH])
        if resize:
            y = F.interpolate(y, size=[H, W])
        return self.conv4(paddle.concat([x, self.conv3(y)], axis=1))


# PaddleClas key -> ours: its MobileNetV2 block is an nn.Sequential (0: expand, 1: depthwise, 2-3: projection
# conv and BN) and its conv-BN-SiLU calls the BatchNorm `norm`.
PADDLECLAS_KEYS = (
    (r"^(mv2_block_\d+)\.conv\.0\.conv\.", r"\1.expand_conv.conv."),
    (r"^(mv2_block_\d+)\.conv\.0\.norm\.", r"\1.expand_conv.bn."),
    (r"^(mv2_block_\d+)\.conv\.1\.conv\.", r"\1.bottleneck_conv.conv."),
    (r"^(mv2_block_\d+)\.conv\.1\.norm\.", r"\1.bottleneck_conv.bn."),
    (r"^(mv2_block_\d+)\.conv\.2\.", r"\1.linear_conv.conv."),
    (r"^(mv2_block_\d+)\.conv\.3\.", r"\1.linear_conv.bn."),
    (r"^(conv3x3|conv1x1|mvit_block_\d+\.conv[134])\.norm\.", r"\1.bn."),
)


class MobileViT(ClassifierHeads, nn.Layer):
    """`conv3x3` stem -> `mv2_block_1..7` with `mvit_block_1..3` after blocks 5, 6, 7 -> `conv1x1` (features)
    -> pool -> dropout -> `linear`.

    `dims`: channels of the stem, the seven MobileNetV2 blocks and `conv1x1`; `hidden_dims`: transformer widths
    of the three MobileViT blocks (depths 2, 4, 3).
    """

    classifier_name = "linear"
    paddleclas_key_rules = PADDLECLAS_KEYS
    STRIDES = (1, 2, 1, 1, 2, 2, 2)  # of mv2_block_1..7
    MVIT_AFTER = {5: (0, 2), 6: (1, 4), 7: (2, 3)}  # mv2 block -> (MobileViT block index, depth)

    def __init__(self, dims, hidden_dims, mv2_expansion: int = 4, num_classes: int = 1000,
                 dropout_prob: float = 0.1):
        super().__init__()
        self.conv3x3 = _conv(3, dims[0], 3, stride=2)
        self._stages = []
        for i, stride in enumerate(self.STRIDES, start=1):
            c_in, c_out = dims[i - 1], dims[i]
            name = f"mv2_block_{i}"
            setattr(self, name, InvertedResidual(c_in, int(round(c_in * mv2_expansion)), c_out, 3, stride, act=ACT))
            self._stages.append(name)
            if i in self.MVIT_AFTER:
                j, depth = self.MVIT_AFTER[i]
                name = f"mvit_block_{j + 1}"
                setattr(self, name, MobileViTBlock(c_out, hidden_dims[j], depth))
                self._stages.append(name)
        self.conv1x1 = _conv(dims[7], dims[8], 1)
        self.pool = nn.AdaptiveAvgPool2D(1)
        self.dropout = nn.Dropout(dropout_prob)
        self.num_features = self.head_hidden_size = dims[8]
        self.reset_classifier(num_classes)

    def forward_features(self, x):
        x = self.conv3x3(x)
        for name in self._stages:
            x = getattr(self, name)(x)
        return self.conv1x1(x)

    def forward_head(self, x, pre_logits: bool = False):
        x = self.dropout(self.pool(x).flatten(1))
        return x if pre_logits else self.linear(x)



_FAMILY = "MobileViT"


@register_model(spec(family=_FAMILY, params_m=1.28, flops_g=0.33724, top1=0.6867, input_size=256))
def MobileViT_XXS(**kw):
    return MobileViT((16, 16, 24, 24, 24, 48, 64, 80, 320), (64, 80, 96), mv2_expansion=2, **kw)


@register_model(spec(family=_FAMILY, params_m=2.33, flops_g=0.93075, top1=0.7454, input_size=256))
def MobileViT_XS(**kw):
    return MobileViT((16, 32, 48, 48, 48, 64, 80, 96, 384), (96, 120, 144), **kw)


@register_model(spec(family=_FAMILY, params_m=5.59, flops_g=1.84935, top1=0.7814, input_size=256))
def MobileViT_S(**kw):
    return MobileViT((16, 32, 64, 64, 64, 96, 128, 160, 640), (144, 192, 240), **kw)
