"""Twins (Chu et al., 2021, arXiv:2104.13840). Weight-compatible with PaddleClas's pcpvt_* and alt_gvt_* models.

Twins-PCPVT is PVT with conditional position encodings: after the first block of each stage a 3x3 depthwise conv
(`pos_block`, CPVT's PEG) adds position information, so no position embeddings are learned and tokens are averaged
instead of a class token. Twins-SVT (`alt_gvt_*`) alternates locally-grouped attention within 7 x 7 windows with
PVT's globally sub-sampled (spatial-reduction) attention. The windows must tile every stage's grid, so SVT runs
only at 224 x 224 (and multiples of 224), as in PaddleClas, which does not pad.
"""

from __future__ import annotations

import math

import paddle
import paddle.nn as nn
from paddle.nn.initializer import Constant, Normal
from paddle.regularizer import L2Decay

from ppipe.models.layers import DropPath, Mlp, stochastic_depth_rates
from ppipe.models.layers.attention import Attention
from ppipe.models.layers.patch_embed import PatchEmbed
from ppipe.models.layers.spatial_reduction_attention import SpatialReductionAttention
from ppipe.models.layers.token_head import TokenMeanHead, init_transformer_weights
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

NORM_EPS = 1e-6  # blocks and the final norm; patch embeddings and attention keep paddle's 1e-5


class LocallyGroupedAttention(Attention):
    """Self-attention inside each non-overlapping `window` x `window` group of the H x W token grid."""

    def __init__(self, dim: int, num_heads: int, window: int, **kw):
        super().__init__(dim, num_heads, **kw)
        self.window = window

    def forward(self, x, H, W):
        C, ws = x.shape[2], self.window
        rows, cols = H // ws, W // ws
        windows = x.reshape([-1, rows, ws, cols, ws, C]).transpose([0, 1, 3, 2, 4, 5]).reshape([-1, ws * ws, C])
        out = super().forward(windows).reshape([-1, rows, cols, ws, ws, C])
        return out.transpose([0, 1, 3, 2, 4, 5]).reshape([-1, H * W, C])


class Block(nn.Layer):
    """Pre-norm transformer block; `window` > 1 selects locally-grouped attention, else spatial reduction."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int, window: int, qkv_bias: bool,
                 drop: float, attn_drop: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=NORM_EPS)
        attn = dict(qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.attn = (LocallyGroupedAttention(dim, num_heads, window, **attn) if window > 1 else
                     SpatialReductionAttention(dim, num_heads, sr_ratio=sr_ratio, **attn))
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x, H, W):
        x = x + self.drop_path(self.attn(self.norm1(x), H, W))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PositionEncodingConv(nn.Layer):
    """CPVT's position encoding generator: tokens + 3x3 depthwise conv of their grid (no weight decay)."""

    def __init__(self, dim: int):
        super().__init__()
        no_decay = paddle.ParamAttr(regularizer=L2Decay(0.0))
        self.proj = nn.Sequential(nn.Conv2D(dim, dim, 3, padding=1, groups=dim, weight_attr=no_decay,
                                            bias_attr=paddle.ParamAttr(regularizer=L2Decay(0.0))))

    def forward(self, x, H, W):
        grid = x.transpose([0, 2, 1]).reshape([0, 0, H, W])
        return (self.proj(grid) + grid).flatten(2).transpose([0, 2, 1])


def _init_weights(layer: nn.Layer) -> None:
    init_transformer_weights(layer)
    if isinstance(layer, nn.Conv2D):  # He init over the fan-out, as PaddleClas's Twins
        k_h, k_w = layer.weight.shape[2:]
        Normal(0.0, math.sqrt(2.0 / (k_h * k_w * layer.weight.shape[0] // layer._groups)))(layer.weight)
        if layer.bias is not None:
            Constant(0.0)(layer.bias)


class Twins(TokenMeanHead, nn.Layer):
    """Stages of `patch_embeds[i]` -> `blocks[i]` (PEG `pos_block[i]` after the first) -> `norm` (features:
    the last stage's tokens) -> mean -> `head`.

    `window_sizes`: None for PCPVT (spatial-reduction attention everywhere); for SVT, the window of the
    locally-grouped attention of each stage, used by every other block (the others attend globally).
    """

    def __init__(self, embed_dims, num_heads, mlp_ratios, depths, sr_ratios=(8, 4, 2, 1), window_sizes=None,
                 patch_size: int = 4, qkv_bias: bool = True, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        drop_paths = stochastic_depth_rates(drop_path_rate, sum(depths))
        chans = [in_chans, *embed_dims[:-1]]
        self.patch_embeds = nn.LayerList([PatchEmbed(patch_size=patch_size if i == 0 else 2, in_chans=c, embed_dim=d,
                                                     norm=True) for i, (c, d) in enumerate(zip(chans, embed_dims))])
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.LayerList()
        for i, (dim, heads, ratio, depth, sr) in enumerate(zip(embed_dims, num_heads, mlp_ratios, depths, sr_ratios)):
            windows = [window_sizes[i] if window_sizes and j % 2 == 0 else 1 for j in range(depth)]
            start = sum(depths[:i])
            self.blocks.append(nn.LayerList([
                Block(dim, heads, ratio, sr, windows[j], qkv_bias, drop_rate, attn_drop_rate, drop_paths[start + j])
                for j in range(depth)]))
        self.pos_block = nn.LayerList([PositionEncodingConv(d) for d in embed_dims])
        self.norm = nn.LayerNorm(embed_dims[-1], epsilon=NORM_EPS)
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.reset_classifier(num_classes)
        self.apply(_init_weights)

    def forward_features(self, x):
        last = len(self.blocks) - 1
        for i, (embed, blocks, peg) in enumerate(zip(self.patch_embeds, self.blocks, self.pos_block)):
            x, (H, W) = embed.embed_with_grid(x)
            x = self.pos_drop(x)
            for j, block in enumerate(blocks):
                x = block(x, H, W)
                if j == 0:
                    x = peg(x, H, W)
            if i < last:
                x = x.transpose([0, 2, 1]).reshape([0, 0, H, W])
        return self.norm(x)


def _pcpvt(depths, **kw) -> Twins:
    return Twins(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), depths=depths,
                 **kw)


def _svt(embed_dims, num_heads, depths, **kw) -> Twins:
    return Twins(embed_dims=embed_dims, num_heads=num_heads, mlp_ratios=(4, 4, 4, 4), depths=depths,
                 window_sizes=(7, 7, 7, 7), **kw)


_FAMILY = "Twins"


@register_model(spec(family=_FAMILY, params_m=24.06, flops_g=3.67, top1=0.8115, input_size=224))
def pcpvt_small(**kw):
    return _pcpvt((3, 4, 6, 3), **kw)


@register_model(spec(family=_FAMILY, params_m=43.83, flops_g=6.44, top1=0.8268, input_size=224))
def pcpvt_base(**kw):
    return _pcpvt((3, 4, 18, 3), **kw)


@register_model(spec(family=_FAMILY, params_m=60.99, flops_g=9.5, top1=0.8306, input_size=224))
def pcpvt_large(**kw):
    return _pcpvt((3, 8, 27, 3), **kw)


@register_model(spec(family=_FAMILY, params_m=24.06, flops_g=2.81, top1=0.8177, input_size=224, fixed_input=True))
def alt_gvt_small(**kw):
    return _svt((64, 128, 256, 512), (2, 4, 8, 16), (2, 2, 10, 4), **kw)


@register_model(spec(family=_FAMILY, params_m=56.07, flops_g=8.34, top1=0.8315, input_size=224, fixed_input=True))
def alt_gvt_base(**kw):
    return _svt((96, 192, 384, 768), (3, 6, 12, 24), (2, 2, 18, 2), **kw)


@register_model(spec(family=_FAMILY, params_m=99.27, flops_g=14.81, top1=0.8364, input_size=224, fixed_input=True))
def alt_gvt_large(**kw):
    return _svt((128, 256, 512, 1024), (4, 8, 16, 32), (2, 2, 18, 2), **kw)
