"""Vision Transformer (Dosovitskiy et al., 2020, arXiv:2010.11929). Weight-compatible with PaddleClas's ViT.

Patch tokens plus a class token, absolute position embeddings, pre-norm transformer blocks; the classifier reads the
normalised class token. DeiT (`ppipe.models.deit`) is this network with other widths and an optional distillation
token. PaddleClas's ViT_small is not DeiT-small: it is 768 wide, 8 deep, without qkv bias and scales attention by
dim ** -0.5.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from ppipe.models.layers import ClassifierHeads, DropPath, Mlp, stochastic_depth_rates
from ppipe.models.layers.attention import Attention
from ppipe.models.layers.patch_embed import PatchEmbed
from ppipe.models.layers.token_head import init_transformer_weights, transformer_linear, trunc_normal_
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class Block(nn.Layer):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)), each branch with drop-path."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = False,
                 qk_scale: float | None = None, drop: float = 0.0, attn_drop: float = 0.0, drop_path: float = 0.0,
                 epsilon: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, epsilon=epsilon)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale, attn_drop=attn_drop,
                              proj_drop=drop)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, epsilon=epsilon)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(ClassifierHeads, nn.Layer):
    """Patch embedding -> [class token; patches] + position embedding -> `blocks` -> `norm` -> `head`.

    `forward_features` returns the whole normalised token sequence [N, 1 + patches, embed_dim]; `forward_head`
    classifies its class token. The position embedding fixes the input to `img_size`.
    """

    classifier_name = "head"
    classifier_layer = staticmethod(transformer_linear)
    num_prefix_tokens = 1  # tokens before the patches: the class token

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, num_classes: int = 1000,
                 embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = False, qk_scale: float | None = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, epsilon: float = 1e-5):
        super().__init__()
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.pos_embed = self.create_parameter(
            [1, self.num_prefix_tokens + self.patch_embed.num_patches, embed_dim], default_initializer=trunc_normal_)
        self.cls_token = self.create_parameter([1, 1, embed_dim], default_initializer=trunc_normal_)
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.LayerList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate,
                  attn_drop=attn_drop_rate, drop_path=p, epsilon=epsilon)
            for p in stochastic_depth_rates(drop_path_rate, depth)])
        self.norm = nn.LayerNorm(embed_dim, epsilon=epsilon)
        self.reset_classifier(num_classes)
        for layer in self.sublayers():
            init_transformer_weights(layer)

    def _prefix_tokens(self, batch: int) -> list[paddle.Tensor]:
        return [self.cls_token.expand([batch, -1, -1])]

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = paddle.concat([*self._prefix_tokens(x.shape[0]), x], axis=1)
        x = self.pos_drop(x + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_head(self, x, pre_logits: bool = False):
        x = x[:, 0]
        return x if pre_logits else self.head(x)



def _create(**kw) -> VisionTransformer:
    return VisionTransformer(**kw)


# PaddleClas's ViT-B/L: qkv bias, LayerNorm epsilon 1e-6
BASE = dict(embed_dim=768, depth=12, num_heads=12, qkv_bias=True, epsilon=1e-6)
LARGE = dict(embed_dim=1024, depth=24, num_heads=16, qkv_bias=True, epsilon=1e-6)
_FAMILY = "VisionTransformer"


@register_model(spec(family=_FAMILY, params_m=48.6, flops_g=9.41, top1=0.7553, input_size=224, fixed_input=True))
def ViT_small_patch16_224(**kw):
    return _create(embed_dim=768, depth=8, num_heads=8, mlp_ratio=3, qk_scale=768 ** -0.5, **kw)


@register_model(spec(family=_FAMILY, params_m=86.42, flops_g=16.85, top1=0.8187, input_size=224, fixed_input=True))
def ViT_base_patch16_224(**kw):
    return _create(patch_size=16, **BASE, **kw)


@register_model(spec(family=_FAMILY, params_m=86.42, flops_g=49.35, top1=0.8414, input_size=384, fixed_input=True))
def ViT_base_patch16_384(**kw):
    return _create(img_size=384, patch_size=16, **BASE, **kw)


@register_model(spec(family=_FAMILY, params_m=88.19, flops_g=12.66, top1=0.8176, input_size=384, fixed_input=True))
def ViT_base_patch32_384(**kw):
    return _create(img_size=384, patch_size=32, **BASE, **kw)


@register_model(spec(family=_FAMILY, params_m=304.12, flops_g=59.65, top1=0.8303, input_size=224,
                     fixed_input=True))
def ViT_large_patch16_224(**kw):
    return _create(patch_size=16, **LARGE, **kw)


@register_model(spec(family=_FAMILY, params_m=304.12, flops_g=174.7, top1=0.8513, input_size=384,
                     fixed_input=True))
def ViT_large_patch16_384(**kw):
    return _create(img_size=384, patch_size=16, **LARGE, **kw)


@register_model(spec(family=_FAMILY, params_m=306.48, flops_g=44.24, top1=0.8153, input_size=384,
                     fixed_input=True))
def ViT_large_patch32_384(**kw):
    return _create(img_size=384, patch_size=32, **LARGE, **kw)
