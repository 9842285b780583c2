"""Structural re-parameterization: the kernel and bias of one convolution that computes, in eval mode, what a
training-time branch computes. Re-parameterizable blocks (RepVGG, Diverse Branch Block) fold their branches
with these and sum the results.

The transforms are those of Diverse Branch Block (Ding et al., 2021, arXiv:2103.13425, Sec. 3.2): a conv
followed by BatchNorm (I), a 1x1 conv followed by a kxk conv (III), average pooling (V), a small kernel inside a
larger one (VI); branch addition (II) is a plain sum of kernels and of biases. Kernels are laid out as Paddle's
Conv2D weights: [out_chs, in_chs // groups, k, k].
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F


def batch_norm_affine(bn: nn.BatchNorm2D) -> tuple[paddle.Tensor, paddle.Tensor]:
    """`bn` in eval mode as y = scale * x + shift, per channel."""
    scale = bn.weight / (bn._variance + bn._epsilon).sqrt()
    return scale, bn.bias - bn._mean * scale


def fuse_conv_bn(kernel: paddle.Tensor, bn: nn.BatchNorm2D) -> tuple[paddle.Tensor, paddle.Tensor]:
    """The kernel and bias of conv(kernel) followed by `bn` in eval mode, as one biased conv (transform I)."""
    scale, shift = batch_norm_affine(bn)
    return kernel * scale.reshape([-1, 1, 1, 1]), shift


def pad_kernel(kernel: paddle.Tensor, size: int) -> paddle.Tensor:
    """A smaller odd kernel as the `size` x `size` kernel with the same centre (transform VI); the convolutions
    agree when each pads by half its own size."""
    p = (size - kernel.shape[-1]) // 2
    return F.pad(kernel, [p, p, p, p])


def identity_kernel(channels: int, groups: int = 1, dtype: str | paddle.dtype = "float32") -> paddle.Tensor:
    """The 1x1 kernel of a `groups`-grouped conv that copies its input: output channel i reads input channel
    i, which is channel i % (channels // groups) of its group."""
    per_group = channels // groups
    return paddle.eye(per_group, dtype=dtype).tile([groups, 1]).reshape([channels, per_group, 1, 1])


def avg_pool_kernel(channels: int, kernel_size: int, groups: int = 1,
                    dtype: str | paddle.dtype = "float32") -> paddle.Tensor:
    """k x k average pooling (padding counted in the average) as a `groups`-grouped conv kernel (transform V)."""
    return identity_kernel(channels, groups, dtype).tile([1, 1, kernel_size, kernel_size]) / kernel_size ** 2


def merge_1x1_kxk(k1: paddle.Tensor, b1: paddle.Tensor, k2: paddle.Tensor, b2: paddle.Tensor,
                  groups: int = 1) -> tuple[paddle.Tensor, paddle.Tensor]:
    """One conv for the biased 1x1 conv (k1, b1) followed by the biased kxk conv (k2, b2), both with `groups`
    groups (transform III). Exact only where the kxk conv sees b1 in its padding, not zeros: the kxk conv must
    be unpadded and its input padded with b1 (DBB's BN-and-pad), or the merged conv is wrong at the borders."""
    mid, in_per_group = k1.shape[0], k1.shape[1]
    out, k = k2.shape[0], k2.shape[-1]
    # Per group g: kernel[o, i] = sum_m k2[o, m] * k1[m, i] over that group's middle channels m.
    k1 = k1.reshape([groups, mid // groups, in_per_group])
    k2 = k2.reshape([groups, out // groups, mid // groups, k, k])
    kernel = paddle.einsum("gomhw,gmi->goihw", k2, k1).reshape([out, in_per_group, k, k])
    bias = paddle.einsum("gomhw,gm->go", k2, b1.reshape([groups, mid // groups])).reshape([out])
    return kernel, bias + b2
