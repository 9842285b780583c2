"""CSWin Transformer (Dong et al., 2021, arXiv:2107.00652). Weight-compatible with PaddleClas's CSWinTransformer.

Cross-shaped window attention: in each block of the first three stages, half the heads attend within vertical
stripes and half within horizontal stripes `split_size` tokens wide; the last stage attends over the whole map.
Positions enter through LePE, a depthwise 3x3 convolution of the values inside each stripe. A strided 7x7
convolution embeds the image, 3x3 stride-2 convolutions join the stages. The stripes are fixed by the input size,
so each model runs at its own `img_size` only.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.models.layers import DropPath, Mlp, stochastic_depth_rates
from ppipe.models.registry import register_model
from ppipe.models.spec import spec
from ppipe.models.layers.token_head import TokenMeanHead, init_transformer_weights
from ppipe.models.layers.windows import window_partition, window_reverse


def tokens_to_map(x: paddle.Tensor, resolution: int) -> paddle.Tensor:
    """[B, H*W, C] tokens -> [B, C, H, W] map."""
    return x.transpose([0, 2, 1]).reshape([-1, x.shape[-1], resolution, resolution])


class PatchEmbedding(nn.Layer):
    """Overlapping 7x7 stride-4 convolution `patch_embed`, then LayerNorm over the [B, H*W, C] tokens."""

    def __init__(self, patch_stride: int = 4, in_chans: int = 3, embed_dim: int = 96):
        super().__init__()
        self.patch_embed = nn.Conv2D(in_chans, embed_dim, 7, stride=patch_stride, padding=2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        return self.norm(self.patch_embed(x).flatten(2).transpose([0, 2, 1]))


class LePEAttention(nn.Layer):
    """Attention within `stripe_h` x `stripe_w` stripes of a square map, plus the locally-enhanced positional
    encoding `get_v` (a depthwise 3x3 convolution of each stripe's values). Takes q, k, v tokens [B, H*W, dim]."""

    def __init__(self, dim: int, resolution: int, stripe_h: int, stripe_w: int, num_heads: int,
                 attn_drop: float = 0.0, qk_scale: float | None = None):
        super().__init__()
        self.resolution, self.stripe = resolution, (stripe_h, stripe_w)
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.get_v = nn.Conv2D(dim, dim, 3, padding=1, groups=dim)
        self.attn_drop = nn.Dropout(attn_drop)

    def _stripes(self, x):
        """[B, H*W, C] -> [B * stripes, stripe tokens, C]."""
        r = self.resolution
        return window_partition(x.reshape([-1, r, r, x.shape[-1]]), *self.stripe)

    def _heads(self, x):
        """[B', n, C] -> [B', heads, n, head_dim]."""
        return x.reshape([-1, x.shape[1], self.num_heads, self.head_dim]).transpose([0, 2, 1, 3])

    def forward(self, q, k, v):
        q, k, v = (self._stripes(t) for t in (q, k, v))
        n, c = v.shape[1], v.shape[2]
        # LePE: the convolution sees each stripe as its own little image (zero-padded at the stripe's border)
        lepe = self.get_v(v.transpose([0, 2, 1]).reshape([-1, c, *self.stripe]))
        lepe = lepe.reshape([-1, self.num_heads, self.head_dim, n]).transpose([0, 1, 3, 2])
        attn = paddle.matmul(self._heads(q) * self.scale, self._heads(k), transpose_y=True)
        attn = self.attn_drop(F.softmax(attn, axis=-1))
        z = (paddle.matmul(attn, self._heads(v)) + lepe).transpose([0, 2, 1, 3]).reshape([-1, n, c])
        r = self.resolution
        return window_reverse(z, r, r, *self.stripe).reshape([-1, r * r, c])


class CSwinBlock(nn.Layer):
    """x + proj(cross-shaped attention(norm1(x))), then x + mlp(norm2(x)). With `split_heads` (stages 1-3) the
    channels and heads are halved between vertical (`attns.0`) and horizontal (`attns.1`) stripes of width
    `split_size`; without (last stage) one attention covers the whole map."""

    def __init__(self, dim: int, resolution: int, num_heads: int, split_size: int = 7, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, attn_drop: float = 0.0, drop: float = 0.0,
                 drop_path: float = 0.0, split_heads: bool = True):
        super().__init__()
        stripes = [(resolution, split_size), (split_size, resolution)] if split_heads else [(resolution, resolution)]
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=None if qkv_bias else False)
        self.attns = nn.LayerList([
            LePEAttention(dim // len(stripes), resolution, h, w, num_heads // len(stripes), attn_drop=attn_drop,
                          qk_scale=qk_scale) for h, w in stripes])
        self.proj = nn.Linear(dim, dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x):
        branches = len(self.attns)
        q, k, v = (t.chunk(branches, axis=-1) for t in self.qkv(self.norm1(x)).chunk(3, axis=-1))
        attn = paddle.concat([a(q[i], k[i], v[i]) for i, a in enumerate(self.attns)], axis=-1)
        x = x + self.drop_path(self.proj(attn))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class MergeBlock(nn.Layer):
    """3x3 stride-2 convolution from `dim_in` to `dim_out` channels, then LayerNorm over the tokens."""

    def __init__(self, dim_in: int, dim_out: int, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.conv = nn.Conv2D(dim_in, dim_out, 3, stride=2, padding=1)
        self.norm = nn.LayerNorm(dim_out)

    def forward(self, x):
        return self.norm(self.conv(tokens_to_map(x, self.resolution)).flatten(2).transpose([0, 2, 1]))


class CSwinStage(nn.Layer):
    """`depth` blocks, then a `merge` to twice the width at half the resolution (all stages but the last)."""

    def __init__(self, dim: int, resolution: int, depth: int, num_heads: int, split_size: int,
                 drop_paths: list[float], last_stage: bool, **block_kw):
        super().__init__()
        self.blocks = nn.LayerList([
            CSwinBlock(dim, resolution, num_heads, split_size, drop_path=drop_paths[i], split_heads=not last_stage,
                       **block_kw) for i in range(depth)])
        self.merge = nn.Identity() if last_stage else MergeBlock(dim, dim * 2, resolution)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.merge(x)


class CSwinTransformer(TokenMeanHead, nn.Layer):
    """`patch_embedding` -> four `stages` -> `norm`; `forward_features` returns the final tokens
    [N, (img_size / 32)^2, num_features], `forward_head` averages them and classifies with `head`."""

    def __init__(self, img_size: int = 224, patch_stride: int = 4, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 96, depths=(2, 4, 32, 2), splits=(1, 2, 7, 7), num_heads=(4, 8, 16, 32),
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        num_stages = len(depths)
        self.num_features = self.head_hidden_size = embed_dim * 2 ** (num_stages - 1)
        self.patch_embedding = PatchEmbedding(patch_stride, in_chans, embed_dim)
        rates = stochastic_depth_rates(drop_path_rate, sum(depths))
        self.stages = nn.LayerList()
        for i, (depth, split, heads) in enumerate(zip(depths, splits, num_heads)):
            first = sum(depths[:i])
            self.stages.append(CSwinStage(
                embed_dim * 2 ** i, img_size // 4 // 2 ** i, depth, heads, split, rates[first:first + depth],
                last_stage=i == num_stages - 1, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale,
                attn_drop=attn_drop_rate, drop=drop_rate))
        self.norm = nn.LayerNorm(self.num_features)
        self.reset_classifier(num_classes)
        for layer in self.sublayers():
            init_transformer_weights(layer)

    def forward_features(self, x):
        x = self.patch_embedding(x)
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)


def _create(img_size: int, cfg: dict, **kw) -> CSwinTransformer:
    return CSwinTransformer(img_size=img_size, **{**cfg, **kw})


# the stripe width of stages 3-4 is the whole last-stage map: 7 at 224 px, 12 at 384 px;
# drop_path_rate is PaddleClas's default for training each from ImageNet-1k
TINY = dict(embed_dim=64, depths=(1, 2, 21, 1), splits=(1, 2, 7, 7), num_heads=(2, 4, 8, 16), drop_path_rate=0.2)
SMALL = dict(embed_dim=64, depths=(2, 4, 32, 2), splits=(1, 2, 7, 7), num_heads=(2, 4, 8, 16), drop_path_rate=0.4)
BASE = dict(embed_dim=96, depths=(2, 4, 32, 2), splits=(1, 2, 7, 7), num_heads=(4, 8, 16, 32), drop_path_rate=0.5)
LARGE = dict(embed_dim=144, depths=(2, 4, 32, 2), splits=(1, 2, 7, 7), num_heads=(6, 12, 24, 24),
             drop_path_rate=0.5)
AT_384 = dict(splits=(1, 2, 12, 12))
_FAMILY = "CSWinTransformer"


@register_model(spec(family=_FAMILY, params_m=22, flops_g=4.1, top1=0.8281, input_size=224, fixed_input=True))
def CSWinTransformer_tiny_224(**kw):
    return _create(224, TINY, **kw)


@register_model(spec(family=_FAMILY, params_m=35, flops_g=6.4, top1=0.8358, input_size=224, fixed_input=True))
def CSWinTransformer_small_224(**kw):
    return _create(224, SMALL, **kw)


@register_model(spec(family=_FAMILY, params_m=77, flops_g=14.3, top1=0.842, input_size=224, fixed_input=True))
def CSWinTransformer_base_224(**kw):
    return _create(224, BASE, **kw)


@register_model(spec(family=_FAMILY, params_m=173.3, flops_g=32.2, top1=0.8643, input_size=224, fixed_input=True))
def CSWinTransformer_large_224(**kw):
    return _create(224, LARGE, **kw)


@register_model(spec(family=_FAMILY, params_m=77, flops_g=42.2, top1=0.855, input_size=384, fixed_input=True))
def CSWinTransformer_base_384(**kw):
    return _create(384, {**BASE, **AT_384}, **kw)


@register_model(spec(family=_FAMILY, params_m=173.3, flops_g=94.7, top1=0.8748, input_size=384, fixed_input=True))
def CSWinTransformer_large_384(**kw):
    return _create(384, {**LARGE, **AT_384}, **kw)
