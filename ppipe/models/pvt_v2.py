"""PVTv2 (Wang et al., 2022, arXiv:2106.13797). Weight-compatible with PaddleClas's PVT_V2 models.

Four stages, each an overlapping patch embedding (`patch_embed{i}`), transformer blocks with spatial-reduction
attention and a depthwise conv inside the MLP (`block{i}`), and a LayerNorm (`norm{i}`); the classifier averages
the last stage's tokens. The `_Linear` variant pools keys/values to 7 x 7 instead of a strided conv.
"""

from __future__ import annotations

import paddle.nn as nn

from ppipe.models.layers import DropPath, stochastic_depth_rates
from ppipe.models.layers.patch_embed import PatchEmbed
from ppipe.models.layers.token_head import TokenMeanHead, init_transformer_weights
from ppipe.models.layers.spatial_reduction_attention import SpatialReductionAttention
from ppipe.models.registry import register_model
from ppipe.models.spec import spec

NORM_EPS = 1e-6  # the blocks' and stages' LayerNorms; patch embeddings and attention keep paddle's 1e-5


class DepthwiseTokenConv(nn.Layer):
    """3x3 depthwise conv over the token grid: gives the MLP the positional cue PVTv1's embeddings gave."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2D(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x, H, W):
        grid = x.transpose([0, 2, 1]).reshape([0, 0, H, W])
        return self.dwconv(grid).flatten(2).transpose([0, 2, 1])


class ConvMlp(nn.Layer):
    """fc1 -> (ReLU in the linear variant) -> depthwise conv -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0, linear: bool = False):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.relu = nn.ReLU() if linear else nn.Identity()
        self.dwconv = DepthwiseTokenConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x, H, W):
        x = self.drop(self.act(self.dwconv(self.relu(self.fc1(x)), H, W)))
        return self.drop(self.fc2(x))


class Block(nn.Layer):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, sr_ratio: int, linear: bool, qkv_bias: bool,
                 drop: float, attn_drop: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=NORM_EPS)
        self.attn = SpatialReductionAttention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop,
                                              proj_drop=drop, sr_ratio=sr_ratio, linear=linear)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=NORM_EPS)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio), drop=drop, linear=linear)

    def forward(self, x, H, W):
        x = x + self.drop_path(self.attn(self.norm1(x), H, W))
        return x + self.drop_path(self.mlp(self.norm2(x), H, W))


class PyramidVisionTransformerV2(TokenMeanHead, nn.Layer):
    """`patch_embed{i}` -> `block{i}` -> `norm{i}` for i = 1..4 (features: last stage's tokens) -> mean -> `head`."""

    def __init__(self, embed_dims, num_heads, mlp_ratios, depths, sr_ratios=(8, 4, 2, 1), linear: bool = False,
                 qkv_bias: bool = True, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.num_stages = len(depths)
        drop_paths = stochastic_depth_rates(drop_path_rate, sum(depths))
        for i, (dim, heads, ratio, depth, sr) in enumerate(zip(embed_dims, num_heads, mlp_ratios, depths,
                                                               sr_ratios)):
            first = i == 0
            # overlapping patches: kernel 7 stride 4, then kernel 3 stride 2, padded to keep size / stride
            embed = PatchEmbed(patch_size=4 if first else 2, in_chans=in_chans if first else embed_dims[i - 1],
                               embed_dim=dim, norm=True, kernel_size=7 if first else 3, padding=3 if first else 1)
            start = sum(depths[:i])
            blocks = nn.LayerList([Block(dim, heads, ratio, sr, linear, qkv_bias, drop_rate, attn_drop_rate,
                                         drop_paths[start + j]) for j in range(depth)])
            setattr(self, f"patch_embed{i + 1}", embed)
            setattr(self, f"block{i + 1}", blocks)
            setattr(self, f"norm{i + 1}", nn.LayerNorm(dim, epsilon=NORM_EPS))
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.reset_classifier(num_classes)
        self.apply(init_transformer_weights)

    def forward_features(self, x):
        for i in range(1, self.num_stages + 1):
            x, (H, W) = getattr(self, f"patch_embed{i}").embed_with_grid(x)
            for block in getattr(self, f"block{i}"):
                x = block(x, H, W)
            x = getattr(self, f"norm{i}")(x)
            if i < self.num_stages:  # back to a map for the next stage's patch embedding
                x = x.transpose([0, 2, 1]).reshape([0, 0, H, W])
        return x


def _create(depths, embed_dims=(64, 128, 320, 512), mlp_ratios=(8, 8, 4, 4), **kw) -> PyramidVisionTransformerV2:
    return PyramidVisionTransformerV2(embed_dims=embed_dims, num_heads=(1, 2, 5, 8), mlp_ratios=mlp_ratios,
                                      depths=depths, **kw)


_FAMILY = "PVTV2"


@register_model(spec(family=_FAMILY, params_m=3.7, flops_g=0.53, top1=0.7052, input_size=224))
def PVT_V2_B0(**kw):
    return _create((2, 2, 2, 2), embed_dims=(32, 64, 160, 256), **kw)


@register_model(spec(family=_FAMILY, params_m=14, flops_g=2, top1=0.7869, input_size=224))
def PVT_V2_B1(**kw):
    return _create((2, 2, 2, 2), **kw)


@register_model(spec(family=_FAMILY, params_m=25.4, flops_g=3.9, top1=0.8206, input_size=224))
def PVT_V2_B2(**kw):
    return _create((3, 4, 6, 3), **kw)


@register_model(spec(family=_FAMILY, params_m=22.6, flops_g=3.8, top1=0.8205, input_size=224))
def PVT_V2_B2_Linear(**kw):
    return _create((3, 4, 6, 3), linear=True, **kw)


@register_model(spec(family=_FAMILY, params_m=45.2, flops_g=6.7, top1=0.831, input_size=224))
def PVT_V2_B3(**kw):
    return _create((3, 4, 18, 3), **kw)


@register_model(spec(family=_FAMILY, params_m=62.6, flops_g=9.8, top1=0.8361, input_size=224))
def PVT_V2_B4(**kw):
    return _create((3, 8, 27, 3), **kw)


@register_model(spec(family=_FAMILY, params_m=82, flops_g=11.4, top1=0.8374, input_size=224))
def PVT_V2_B5(**kw):
    return _create((3, 6, 40, 3), mlp_ratios=(4, 4, 4, 4), **kw)
