"""Swin Transformer (Liu et al., 2021, arXiv:2103.14030). Weight-compatible with PaddleClas's SwinTransformer.

Four stages of window attention at 1/4 .. 1/32 resolution, every other block shifting its windows by half a window
(with a mask keeping tokens from attending across the wrap-around); stages are joined by 2x2 patch merging. As in
PaddleClas 2.6, the windows are not shrunk to a stage smaller than one window nor is the shift dropped there (the
original clamps both), so the last stage at 224 px (7x7 tokens, window 7) still shifts: its checkpoints expect it.
The windows and masks are fixed by the input size, so each model runs at its own `img_size` only.
"""

from __future__ import annotations

import itertools

import numpy as np
import paddle
import paddle.nn as nn

from ppipe.models.layers import DropPath, Mlp, stochastic_depth_rates
from ppipe.models.layers.attention import Attention
from ppipe.models.layers.patch_embed import PatchEmbed
from ppipe.models.layers.relative_position import add_relative_position_bias, relative_position_bias
from ppipe.models.registry import register_model
from ppipe.models.spec import spec
from ppipe.models.layers.token_head import TokenMeanHead, init_transformer_weights
from ppipe.models.layers.windows import window_partition, window_reverse

MASKED = -100.0  # PaddleClas's (and the original's) logit for a key outside the query's shifted-window region


def shifted_window_mask(h: int, w: int, window: int, shift: int) -> paddle.Tensor:
    """[windows, window^2, window^2]: 0 where query and key come from the same region of the rolled map, else
    `MASKED`. Rolling by -shift brings the bottom/right `shift` rows/columns next to the top/left ones; the three
    bands per axis below are the regions that were contiguous before the roll."""
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    region = np.zeros([1, h, w, 1], "float32")
    for label, (rows, cols) in enumerate(itertools.product(bands, bands)):
        region[:, rows, cols, :] = label
    labels = window_partition(paddle.to_tensor(region), window).squeeze(-1)  # [windows, window^2]
    differs = labels.unsqueeze(1) != labels.unsqueeze(2)
    return paddle.where(differs, paddle.full_like(differs, MASKED, "float32"), paddle.zeros_like(differs, "float32"))


class WindowAttention(Attention):
    """Self-attention within each window, plus a learned relative position bias; `forward(windows, mask)` with
    `mask` [windows, N, N] added to the logits of each image's windows."""

    def __init__(self, dim: int, window: int, num_heads: int, qkv_bias: bool = True, qk_scale: float | None = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
                         proj_drop=proj_drop)
        add_relative_position_bias(self, window, window, num_heads)

    def _add_bias(self, attn, mask):
        bias = relative_position_bias(self)  # [1, heads, N, N]
        if mask is None:
            return attn + bias
        # The bias and the mask as one term per (window, head), added to each image's logits as
        # [B, windows * heads, N, N] + [1, windows * heads, N, N]: oneDNN vectorises a broadcast along the batch
        # axis, but ran the mask broadcast along the heads axis of 5-D logits on its reference kernel (SwinT at
        # batch 8: 336 of 744 ms; docs/export.md).
        windows, n = mask.shape[0], attn.shape[-1]
        bias_and_mask = (bias + mask.unsqueeze(1)).reshape([1, windows * self.num_heads, n, n])
        attn = attn.reshape([-1, windows * self.num_heads, n, n]) + bias_and_mask
        return attn.reshape([-1, self.num_heads, n, n])


class SwinTransformerBlock(nn.Layer):
    """x + W-MSA(norm1(x)) over (shifted) windows, then x + mlp(norm2(x)); tokens [B, H*W, C] in, same out."""

    def __init__(self, dim: int, resolution: int, num_heads: int, window: int, shift: int, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, qk_scale: float | None = None, drop: float = 0.0, attn_drop: float = 0.0,
                 drop_path: float = 0.0):
        super().__init__()
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                    attn_drop=attn_drop, proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)
        # derived from the input size, not learned: PaddleClas does not store it either
        mask = shifted_window_mask(resolution, resolution, window, shift) if shift > 0 else None
        self.register_buffer("attn_mask", mask, persistable=False)

    def forward(self, x):
        r, c = self.resolution, x.shape[-1]
        shortcut = x
        x = self.norm1(x).reshape([-1, r, r, c])
        if self.shift > 0:
            x = paddle.roll(x, shifts=(-self.shift, -self.shift), axis=(1, 2))
        x = window_reverse(self.attn(window_partition(x, self.window), self.attn_mask), r, r, self.window)
        if self.shift > 0:
            x = paddle.roll(x, shifts=(self.shift, self.shift), axis=(1, 2))
        x = shortcut + self.drop_path(x.reshape([-1, r * r, c]))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Layer):
    """Halve the resolution, double the width: each 2x2 neighbourhood's tokens concatenated, normed, projected."""

    def __init__(self, resolution: int, dim: int):
        super().__init__()
        self.resolution = resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias_attr=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x):
        r, c = self.resolution, x.shape[-1]
        x = x.reshape([-1, r // 2, 2, r // 2, 2, c])  # [B, row, row parity, col, col parity, C]
        # concatenation order of the original: (even, even), (odd, even), (even, odd), (odd, odd) (row, col)
        x = x.transpose([0, 1, 3, 4, 2, 5]).reshape([-1, (r // 2) ** 2, 4 * c])
        return self.reduction(self.norm(x))


class SwinStage(nn.Layer):
    """`depth` blocks alternating plain and shifted windows, then patch merging (all stages but the last)."""

    def __init__(self, dim: int, resolution: int, depth: int, num_heads: int, window: int, drop_paths: list[float],
                 downsample: bool, **block_kw):
        super().__init__()
        self.blocks = nn.LayerList([
            SwinTransformerBlock(dim, resolution, num_heads, window, shift=0 if i % 2 == 0 else window // 2,
                                 drop_path=drop_paths[i], **block_kw) for i in range(depth)])
        self.downsample = PatchMerging(resolution, dim) if downsample else nn.Identity()

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.downsample(x)


class SwinTransformer(TokenMeanHead, nn.Layer):
    """4x4 patch embedding -> four `layers` (stages) -> `norm`; `forward_features` returns the final tokens
    [N, (img_size / 32)^2, num_features], `forward_head` averages them and classifies with `head`."""

    def __init__(self, img_size: int = 224, patch_size: int = 4, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size: int = 7,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.1):
        super().__init__()
        num_stages = len(depths)
        self.num_features = self.head_hidden_size = embed_dim * 2 ** (num_stages - 1)
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim, norm=True)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = stochastic_depth_rates(drop_path_rate, sum(depths))
        resolution = self.patch_embed.grid_size[0]
        self.layers = nn.LayerList()
        for i, (depth, heads) in enumerate(zip(depths, num_heads)):
            first = sum(depths[:i])
            self.layers.append(SwinStage(
                embed_dim * 2 ** i, resolution // 2 ** i, depth, heads, window_size, rates[first:first + depth],
                downsample=i < num_stages - 1, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale,
                drop=drop_rate, attn_drop=attn_drop_rate))
        self.norm = nn.LayerNorm(self.num_features)
        self.reset_classifier(num_classes)
        for layer in self.sublayers():
            init_transformer_weights(layer)

    def forward_features(self, x):
        x = self.pos_drop(self.patch_embed(x))
        for stage in self.layers:
            x = stage(x)
        return self.norm(x)


def _create(img_size: int, window_size: int, cfg: dict, **kw) -> SwinTransformer:
    return SwinTransformer(img_size=img_size, window_size=window_size, **{**cfg, **kw})


# widths, depths and heads; drop_path_rate is PaddleClas's default for training each from ImageNet-1k
TINY = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2)
SMALL = dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.3)
BASE = dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.5)
LARGE = dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), drop_path_rate=0.1)
_FAMILY = "SwinTransformer"


@register_model(spec(family=_FAMILY, params_m=28.26, flops_g=4.35, top1=0.811, input_size=224, fixed_input=True))
def SwinTransformer_tiny_patch4_window7_224(**kw):
    return _create(224, 7, TINY, **kw)


@register_model(spec(family=_FAMILY, params_m=49.56, flops_g=8.51, top1=0.8321, input_size=224, fixed_input=True))
def SwinTransformer_small_patch4_window7_224(**kw):
    return _create(224, 7, SMALL, **kw)


@register_model(spec(family=_FAMILY, params_m=87.7, flops_g=15.13, top1=0.8337, input_size=224, fixed_input=True,
                     weights=("in1k", "22kto1k")))
def SwinTransformer_base_patch4_window7_224(**kw):
    return _create(224, 7, BASE, **kw)


@register_model(spec(family=_FAMILY, params_m=87.7, flops_g=44.45, top1=0.8417, input_size=384, fixed_input=True,
                     weights=("in1k", "22kto1k")))
def SwinTransformer_base_patch4_window12_384(**kw):
    return _create(384, 12, BASE, **kw)


@register_model(spec(family=_FAMILY, params_m=196.43, flops_g=34.02, top1=0.8619, input_size=224, fixed_input=True,
                     weights=("22kto1k",)))
def SwinTransformer_large_patch4_window7_224(**kw):
    return _create(224, 7, LARGE, **kw)


@register_model(spec(family=_FAMILY, params_m=196.43, flops_g=99.97, top1=0.8706, input_size=384, fixed_input=True,
                     weights=("22kto1k",)))
def SwinTransformer_large_patch4_window12_384(**kw):
    return _create(384, 12, LARGE, **kw)
