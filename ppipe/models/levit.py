"""LeViT (Graham et al., 2021, arXiv:2104.01136). Weight-compatible with PaddleClas's LeViT.

A 4-conv stem to a 14 x 14 grid (at 224), then three stages of attention and MLP residual blocks whose linear
layers carry BatchNorm, joined by attention blocks that subsample queries 2x. Attention logits get a learned bias
per head and relative offset, looked up through `attention_bias_idxs` (a buffer PaddleClas stores in its
checkpoints). The grid size is fixed at construction, so LeViT runs only at `img_size`.

The classifier is BatchNorm + Linear (`head`); with `distillation=True` a second one (`head_dist`, DeiT's
distillation head) is added: training returns both logits, inference their mean, as in PaddleClas. PaddleClas's
LeViT entrypoints default to `distillation=False`, and so do ours.
"""

from __future__ import annotations

import itertools

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.nn.initializer import Constant, TruncatedNormal
from paddle.regularizer import L2Decay

from ppipe.models.layers import ClassifierHeads, ConvBNAct, DropPath
from ppipe.models.registry import register_model
from ppipe.models.spec import spec


class LinearBN(nn.Layer):
    """Bias-free Linear -> BatchNorm over channels of [B, N, C] tokens. `bn_weight_init=0` starts a residual
    branch as the identity."""

    def __init__(self, in_features: int, out_features: int, bn_weight_init: float = 1.0):
        super().__init__()
        self.c = nn.Linear(in_features, out_features, bias_attr=False)
        self.bn = nn.BatchNorm1D(out_features, weight_attr=paddle.ParamAttr(initializer=Constant(bn_weight_init)))

    def forward(self, x):
        x = self.c(x)
        return self.bn(x.flatten(0, 1)).reshape([-1, x.shape[1], x.shape[2]])


class BNLinear(nn.Layer):
    """The classifier: BatchNorm on the pooled features, then Linear."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.bn = nn.BatchNorm1D(in_features)
        init = paddle.ParamAttr(initializer=TruncatedNormal(std=0.02))
        self.l = nn.Linear(in_features, out_features, weight_attr=init)  # noqa: E741 - PaddleClas's name

    def forward(self, x):
        return self.l(self.bn(x))


def _offset_indices(query_grid: int, key_grid: int, stride: int) -> np.ndarray:
    """[query_grid^2, key_grid^2] index of each (query, key) pair's absolute offset, numbered by first occurrence
    (PaddleClas's order, which its `attention_biases` columns follow)."""
    offsets: dict[tuple[int, int], int] = {}
    idxs = [offsets.setdefault((abs(qy * stride - ky), abs(qx * stride - kx)), len(offsets))
            for qy, qx in itertools.product(range(query_grid), repeat=2)
            for ky, kx in itertools.product(range(key_grid), repeat=2)]
    return np.array(idxs, dtype="int64").reshape(query_grid ** 2, key_grid ** 2)


class Attention(nn.Layer):
    """LeViT attention on a `resolution` x `resolution` grid; with `stride` > 1 the queries come from the
    subsampled grid (`q`: subsample -> LinearBN, `kv`: keys and values) and the output has `out_dim` channels,
    else one `qkv` projection and a residual-ready `proj` (its BatchNorm starts at zero)."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int,
                 stride: int = 1, out_dim: int | None = None):
        super().__init__()
        self.num_heads, self.key_dim, self.scale = num_heads, key_dim, key_dim ** -0.5
        self.value_dim = int(attn_ratio * key_dim)
        self.resolution, self.stride = resolution, stride
        value_total = self.value_dim * num_heads
        if stride == 1:
            self.qkv = LinearBN(dim, value_total + 2 * key_dim * num_heads)
            self.proj = nn.Sequential(nn.Hardswish(), LinearBN(value_total, dim, bn_weight_init=0.0))
            query_grid = resolution
        else:
            self.kv = LinearBN(dim, value_total + key_dim * num_heads)
            self.q = nn.Sequential(Subsample(stride, resolution), LinearBN(dim, key_dim * num_heads))
            self.proj = nn.Sequential(nn.Hardswish(), LinearBN(value_total, out_dim))
            query_grid = (resolution - 1) // stride + 1
        idxs = _offset_indices(query_grid, resolution, stride)
        self.attention_biases = self.create_parameter(
            [num_heads, int(idxs.max()) + 1], default_initializer=Constant(0.0),
            attr=paddle.ParamAttr(regularizer=L2Decay(0.0)))
        self.register_buffer("attention_bias_idxs", paddle.to_tensor(idxs))

    def _heads(self, x, dims):
        """[B, N, heads * sum(dims)] -> one [B, heads, N, d] tensor per d in dims."""
        parts = x.reshape([0, 0, self.num_heads, sum(dims)]).split(dims, axis=3)
        return [p.transpose([0, 2, 1, 3]) for p in parts]

    def forward(self, x):
        if self.stride == 1:
            q, k, v = self._heads(self.qkv(x), [self.key_dim, self.key_dim, self.value_dim])
        else:
            k, v = self._heads(self.kv(x), [self.key_dim, self.value_dim])
            (q,) = self._heads(self.q(x), [self.key_dim])
        n_q, n_k = self.attention_bias_idxs.shape
        bias = paddle.gather(self.attention_biases, self.attention_bias_idxs.flatten(), axis=1)
        attn = paddle.matmul(q, k, transpose_y=True) * self.scale + bias.reshape([self.num_heads, n_q, n_k])
        x = paddle.matmul(F.softmax(attn, axis=-1), v).transpose([0, 2, 1, 3])
        return self.proj(x.reshape([0, 0, self.num_heads * self.value_dim]))


class Subsample(nn.Layer):
    """Tokens of a `resolution`^2 grid -> those of every `stride`-th row and column."""

    def __init__(self, stride: int, resolution: int):
        super().__init__()
        self.stride, self.resolution = stride, resolution

    def forward(self, x):
        C = x.shape[2]
        x = x.reshape([-1, self.resolution, self.resolution, C])[:, ::self.stride, ::self.stride]
        return x.reshape([-1, x.shape[1] * x.shape[2], C])


class Residual(nn.Layer):
    """x + m(x), with stochastic depth on m(x) in training.

    PaddleClas's Residual drops the branch wrongly (training with drop_path > 0 returns x + mask, without m(x));
    this is the original LeViT's x + m(x) * mask / keep. Inference, and training without drop path, are identical.
    """

    def __init__(self, m: nn.Layer, drop_path: float):
        super().__init__()
        self.m = m
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        return x + self.drop_path(self.m(x))


def _stem_conv(in_chs: int, out_chs: int) -> ConvBNAct:
    """A 3x3/2 conv -> BatchNorm of the stem (its BatchNorm decays, as in PaddleClas)."""
    return ConvBNAct(in_chs, out_chs, 3, stride=2, padding=1, bn_weight_decay=True)


def _mlp(dim: int, ratio: float) -> nn.Sequential:
    hidden = int(dim * ratio)
    return nn.Sequential(LinearBN(dim, hidden), nn.Hardswish(), LinearBN(hidden, dim, bn_weight_init=0.0))


class LeViT(ClassifierHeads, nn.Layer):
    """`patch_embed` (stem) -> `blocks` (features: tokens [B, N, C]) -> mean over tokens -> `head`
    (+ `head_dist`).

    Per stage: `embed_dim`, `num_heads`, `depth` (attention + MLP pairs); between stages an attention subsample
    with `key_dim`, embed_dim // key_dim heads, attention ratio 4, stride 2, followed by an MLP of ratio 2.
    """

    classifier_layer = BNLinear
    # PaddleClas's stem convs call their conv `c`
    paddleclas_key_rules = ((r"^(patch_embed\.\d+)\.c\.", r"\1.conv."),)

    def __init__(self, embed_dim, num_heads, depth, key_dim: int, attn_ratio: float = 2.0, mlp_ratio: float = 2.0,
                 img_size: int = 224, patch_size: int = 16, distillation: bool = False, drop_path: float = 0.0,
                 num_classes: int = 1000):
        super().__init__()
        widths = [3, embed_dim[0] // 8, embed_dim[0] // 4, embed_dim[0] // 2, embed_dim[0]]  # stride 2 each
        stem = [_stem_conv(widths[0], widths[1])]
        for c_in, c_out in zip(widths[1:-1], widths[2:]):
            stem += [nn.Hardswish(), _stem_conv(c_in, c_out)]
        self.patch_embed = nn.Sequential(*stem)
        blocks, resolution = [], img_size // patch_size
        for i, (dim, heads, n) in enumerate(zip(embed_dim, num_heads, depth)):
            for _ in range(n):
                blocks.append(Residual(Attention(dim, key_dim, heads, attn_ratio, resolution), drop_path))
                blocks.append(Residual(_mlp(dim, mlp_ratio), drop_path))
            if i + 1 < len(embed_dim):
                blocks.append(Attention(dim, key_dim, dim // key_dim, 4.0, resolution, stride=2,
                                        out_dim=embed_dim[i + 1]))
                resolution = (resolution - 1) // 2 + 1
                blocks.append(Residual(_mlp(embed_dim[i + 1], 2.0), drop_path))
        self.blocks = nn.Sequential(*blocks)
        self.distillation = distillation
        self.num_features = self.head_hidden_size = embed_dim[-1]
        self.reset_classifier(num_classes)

    @property
    def classifier_name(self) -> str | tuple[str, str]:
        return ("head", "head_dist") if self.distillation else "head"

    def forward_features(self, x):
        return self.blocks(self.patch_embed(x).flatten(2).transpose([0, 2, 1]))

    def forward_head(self, x, pre_logits: bool = False):
        x = x.mean(axis=1)
        if pre_logits:
            return x
        if not self.distillation:
            return self.head(x)
        logits, logits_dist = self.head(x), self.head_dist(x)
        return (logits, logits_dist) if self.training else (logits + logits_dist) / 2

    def remap_checkpoint(self, state: dict) -> dict:
        # PaddleClas's LeViT weights may carry the distillation head; like PaddleClas (which ignores unexpected
        # keys), a model built without it does not use it.
        state = super().remap_checkpoint(state)
        return state if self.distillation else {k: v for k, v in state.items() if not k.startswith("head_dist.")}



def _create(embed_dim, num_heads, depth, key_dim: int, **kw) -> LeViT:
    return LeViT(embed_dim=embed_dim, num_heads=num_heads, depth=depth, key_dim=key_dim, **kw)


_FAMILY = "LeViT"


@register_model(spec(family=_FAMILY, params_m=7.42, flops_g=0.281, top1=0.7598, input_size=224, fixed_input=True))
def LeViT_128S(**kw):
    return _create((128, 256, 384), (4, 6, 8), (2, 3, 4), key_dim=16, **kw)


@register_model(spec(family=_FAMILY, params_m=8.87, flops_g=0.365, top1=0.781, input_size=224, fixed_input=True))
def LeViT_128(**kw):
    return _create((128, 256, 384), (4, 8, 12), (4, 4, 4), key_dim=16, **kw)


@register_model(spec(family=_FAMILY, params_m=10.61, flops_g=0.597, top1=0.7934, input_size=224, fixed_input=True))
def LeViT_192(**kw):
    return _create((192, 288, 384), (3, 5, 6), (4, 4, 4), key_dim=32, **kw)


@register_model(spec(family=_FAMILY, params_m=18.45, flops_g=1.049, top1=0.8085, input_size=224, fixed_input=True))
def LeViT_256(**kw):
    return _create((256, 384, 512), (4, 6, 8), (4, 4, 4), key_dim=32, **kw)


@register_model(spec(family=_FAMILY, params_m=38.45, flops_g=2.234, top1=0.8191, input_size=224, fixed_input=True))
def LeViT_384(**kw):
    kw.setdefault("drop_path", 0.1)  # PaddleClas trains only LeViT_384 with stochastic depth
    return _create((384, 512, 768), (6, 9, 12), (4, 4, 4), key_dim=32, **kw)
