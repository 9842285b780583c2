"""Spatial-reduction attention (PVT, Wang et al., 2021, arXiv:2102.12122; PVTv2, arXiv:2106.13797).

Queries come from every token; keys and values from the token grid shrunk by a strided `sr_ratio` x `sr_ratio`
conv (or, in PVTv2's linear variant, average-pooled to 7 x 7 then mixed by a 1 x 1 conv), so attention costs
N x N / sr_ratio^2. Used by PVTv2 and by Twins (whose "global sub-sampled attention" is this layer). Parameter
names (`q`, `kv`, `sr`, `norm`, `proj`) are PaddleClas's.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

LINEAR_POOL_SIZE = 7  # PVTv2-Linear pools keys/values to a fixed 7 x 7 grid, whatever the input size


class SpatialReductionAttention(nn.Layer):
    """Multi-head attention over tokens [B, H*W, C] of an H x W grid; `forward(x, H, W)`."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, sr_ratio: int = 1, linear: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.q = nn.Linear(dim, dim, bias_attr=None if qkv_bias else False)
        self.kv = nn.Linear(dim, dim * 2, bias_attr=None if qkv_bias else False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.linear = linear
        self.reduces = linear or sr_ratio > 1
        if linear:
            self.pool = nn.AdaptiveAvgPool2D(LINEAR_POOL_SIZE)
            self.sr = nn.Conv2D(dim, dim, kernel_size=1)
            self.act = nn.GELU()
        elif sr_ratio > 1:
            self.sr = nn.Conv2D(dim, dim, kernel_size=sr_ratio, stride=sr_ratio)
        if self.reduces:
            self.norm = nn.LayerNorm(dim)  # epsilon 1e-5 in PaddleClas, unlike the blocks' 1e-6

    def _reduced_tokens(self, x, H, W):
        grid = x.transpose([0, 2, 1]).reshape([0, 0, H, W])
        grid = self.sr(self.pool(grid)) if self.linear else self.sr(grid)
        tokens = self.norm(grid.flatten(2).transpose([0, 2, 1]))
        return self.act(tokens) if self.linear else tokens

    def forward(self, x, H, W):
        C = x.shape[2]
        q = self.q(x).reshape([0, 0, self.num_heads, self.head_dim]).transpose([0, 2, 1, 3])
        kv_source = self._reduced_tokens(x, H, W) if self.reduces else x
        kv = self.kv(kv_source).reshape([0, 0, 2, self.num_heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
        attn = F.softmax(paddle.matmul(q, kv[0], transpose_y=True) * self.scale, axis=-1)
        x = paddle.matmul(self.attn_drop(attn), kv[1]).transpose([0, 2, 1, 3]).reshape([0, 0, C])
        return self.proj_drop(self.proj(x))
