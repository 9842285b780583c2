"""Multi-head self-attention over tokens (Vaswani et al., 2017, arXiv:1706.03762), as vision transformers use it.

One `qkv` projection, softmax(q k^T * scale + bias) v per head, then `proj`: PaddleClas's parameter names (ViT, DeiT,
Swin, MobileViT, ...). An optional additive `attn_bias` carries relative position biases and window masks.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


class Attention(nn.Layer):
    """[B, N, dim] -> [B, N, dim].

    `qk_scale` overrides head_dim ** -0.5 (PaddleClas's ViT_small scales by dim ** -0.5); `attn_bias` in
    `forward` is added to the attention logits and must broadcast to [B, num_heads, N, N] (a subclass may
    interpret it otherwise through `_add_bias`).
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False, qk_scale: float | None = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias_attr=None if qkv_bias else False)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x, attn_bias: paddle.Tensor | None = None):
        n, c = x.shape[1], x.shape[2]
        qkv = self.qkv(x).reshape([-1, n, 3, self.num_heads, self.head_dim]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = self._add_bias(paddle.matmul(q, k, transpose_y=True) * self.scale, attn_bias)
        attn = self.attn_drop(F.softmax(attn, axis=-1))
        x = paddle.matmul(attn, v).transpose([0, 2, 1, 3]).reshape([-1, n, c])
        return self.proj_drop(self.proj(x))

    def _add_bias(self, attn: paddle.Tensor, attn_bias: paddle.Tensor | None) -> paddle.Tensor:
        """Add `attn_bias` to the logits [B, heads, N, N]; subclasses with biases of their own override this."""
        return attn if attn_bias is None else attn + attn_bias
