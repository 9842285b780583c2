"""Transformer in Transformer, TNT (Han et al., 2021, arXiv:2103.00112). Weight-compatible with PaddleClas's TNT.

Each 16x16 patch is also a sequence of "pixel" tokens (a 4x4 grid from a stride-4 conv): every block runs an inner
transformer over the pixels of each patch, adds their projection to the patch token, then runs the outer
transformer over the patch tokens and a class token. Position embeddings are absolute, so TNT runs at 224 only.
"""

from __future__ import annotations

import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import TruncatedNormal

from ppipe.models.layers import ClassifierHeads, DropPath, Mlp, stochastic_depth_rates
from ppipe.models.layers.token_head import init_transformer_weights, transformer_linear
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class Attention(nn.Layer):
    """Multi-head self-attention with PaddleClas TNT's separate `qk` and `v` projections."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = False, attn_drop: float = 0.0,
                 proj_drop: float = 0.0):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qk = nn.Linear(dim, dim * 2, bias_attr=None if qkv_bias else False)
        self.v = nn.Linear(dim, dim, bias_attr=None if qkv_bias else False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        C = x.shape[2]
        # indexing, not unbind(0): the same tensors, and OpenVINO's Paddle front end converts slices, not unbind
        qk = self.qk(x).reshape([0, 0, 2, self.num_heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
        q, k = qk[0], qk[1]
        v = self.v(x).reshape([0, 0, self.num_heads, self.head_dim]).transpose([0, 2, 1, 3])
        attn = self.attn_drop(F.softmax(paddle.matmul(q, k, transpose_y=True) * self.scale, axis=-1))
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([0, 0, C])
        return self.proj_drop(self.proj(x))


class Block(nn.Layer):
    """Inner transformer over pixel tokens [B*patches, pixels, in_dim], their projection added to the patch
    tokens [B, 1 + patches, dim] (not to the class token), then the outer transformer."""

    def __init__(self, dim: int, in_dim: int, num_pixel: int, num_heads: int, in_num_head: int, mlp_ratio: float,
                 qkv_bias: bool, drop: float, attn_drop: float, drop_path: float):
        super().__init__()
        attn = dict(qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop)
        self.norm_in = nn.LayerNorm(in_dim)
        self.attn_in = Attention(in_dim, in_num_head, **attn)
        self.norm_mlp_in = nn.LayerNorm(in_dim)
        self.mlp_in = Mlp(in_dim, in_dim * 4, drop=drop)
        self.norm1_proj = nn.LayerNorm(in_dim * num_pixel)
        self.proj = nn.Linear(in_dim * num_pixel, dim, bias_attr=False)
        self.norm2_proj = nn.LayerNorm(dim)
        self.norm_out = nn.LayerNorm(dim)
        self.attn_out = Attention(dim, num_heads, **attn)
        self.drop_path = DropPath(drop_path)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, pixel_embed, patch_embed):
        pixel_embed = pixel_embed + self.drop_path(self.attn_in(self.norm_in(pixel_embed)))
        pixel_embed = pixel_embed + self.drop_path(self.mlp_in(self.norm_mlp_in(pixel_embed)))
        per_patch = pixel_embed.reshape([-1, patch_embed.shape[1] - 1, pixel_embed.shape[1] * pixel_embed.shape[2]])
        inner = self.norm2_proj(self.proj(self.norm1_proj(per_patch)))
        patch_embed = paddle.concat([patch_embed[:, :1], patch_embed[:, 1:] + inner], axis=1)
        patch_embed = patch_embed + self.drop_path(self.attn_out(self.norm_out(patch_embed)))
        patch_embed = patch_embed + self.drop_path(self.mlp(self.norm_mlp(patch_embed)))
        return pixel_embed, patch_embed


class PixelEmbed(nn.Layer):
    """Image -> pixel tokens [B*patches, pixels, in_dim]: each `patch_size` patch through a stride-`stride` conv."""

    def __init__(self, patch_size: int, in_dim: int, stride: int, in_chans: int = 3):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2D(in_chans, in_dim, kernel_size=7, padding=3, stride=stride)

    def forward(self, x, pixel_pos):
        C, H, W = x.shape[1:]
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f"TNT's pixel embedding takes images whose sides are multiples of its patch size {p}, "
                             f"got {H}x{W}")
        # the non-overlapping p x p patches in row-major order, as F.unfold(x, p, p) lists them, by a reshape: the
        # same values, and OpenVINO's Paddle front end has no unfold
        patches = x.reshape([-1, C, H // p, p, W // p, p]).transpose([0, 2, 4, 1, 3, 5]).reshape([-1, C, p, p])
        return self.proj(patches).flatten(2).transpose([0, 2, 1]) + pixel_pos


class TNT(ClassifierHeads, nn.Layer):
    """`pixel_embed` -> patch tokens (`norm1_proj`, `proj`, `norm2_proj`) + class token + `patch_pos` -> `blocks`
    -> `norm` (features: all tokens) -> class token -> `head`."""

    classifier_name = "head"
    classifier_layer = staticmethod(transformer_linear)

    def __init__(self, embed_dim: int, in_dim: int, depth: int, num_heads: int, in_num_head: int = 4,
                 img_size: int = 224, patch_size: int = 16, first_stride: int = 4, mlp_ratio: float = 4.0,
                 qkv_bias: bool = False, num_classes: int = 1000, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        num_pixel = math.ceil(patch_size / first_stride) ** 2
        self.pixel_embed = PixelEmbed(patch_size, in_dim, first_stride)
        self.norm1_proj = nn.LayerNorm(num_pixel * in_dim)
        self.proj = nn.Linear(num_pixel * in_dim, embed_dim)
        self.norm2_proj = nn.LayerNorm(embed_dim)
        init = TruncatedNormal(std=0.02)
        self.cls_token = self.create_parameter([1, 1, embed_dim], default_initializer=init)
        self.patch_pos = self.create_parameter([1, self.num_patches + 1, embed_dim], default_initializer=init)
        self.pixel_pos = self.create_parameter([1, num_pixel, in_dim], default_initializer=init)
        self.pos_drop = nn.Dropout(drop_rate)
        drop_paths = stochastic_depth_rates(drop_path_rate, depth)
        self.blocks = nn.LayerList([Block(embed_dim, in_dim, num_pixel, num_heads, in_num_head, mlp_ratio, qkv_bias,
                                          drop_rate, attn_drop_rate, dp) for dp in drop_paths])
        self.norm = nn.LayerNorm(embed_dim)
        self.num_features = self.head_hidden_size = embed_dim
        self.reset_classifier(num_classes)
        self.apply(init_transformer_weights)

    def forward_features(self, x):
        pixel_embed = self.pixel_embed(x, self.pixel_pos)
        patches = pixel_embed.reshape([-1, self.num_patches, pixel_embed.shape[1] * pixel_embed.shape[2]])
        patch_embed = self.norm2_proj(self.proj(self.norm1_proj(patches)))
        cls_token = self.cls_token.expand([patch_embed.shape[0], -1, -1]).astype(patch_embed.dtype)
        patch_embed = self.pos_drop(paddle.concat([cls_token, patch_embed], axis=1) + self.patch_pos)
        for block in self.blocks:
            pixel_embed, patch_embed = block(pixel_embed, patch_embed)
        return self.norm(patch_embed)

    def forward_head(self, x, pre_logits: bool = False):
        x = x[:, 0]
        return x if pre_logits else self.head(x)



@register_model(spec(family="TNT", params_m=23.68, flops_g=4.83, top1=0.8121, input_size=224, fixed_input=True))
def TNT_small(**kw):
    return TNT(embed_dim=384, in_dim=24, depth=12, num_heads=6, in_num_head=4, **kw)
