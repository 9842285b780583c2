"""Involution (Li et al., 2021, arXiv:2103.06255): a spatially varying kernel generated from the input itself.

At every output position a small bottleneck (1x1 conv-BN-ReLU `conv1` to channels/4, then 1x1 conv `conv2`)
produces one kxk kernel per group of `group_channels` channels; the kernel is applied to the kxk neighbourhood of
that position, shared by the channels of its group. Keys `conv1.conv.weight`, `conv1.bn.*`,
`conv2.conv.{weight,bias}` as in PaddleClas's RedNet.

Training applies the kernels to `F.unfold`'s patches, as PaddleClas does. `re_parameterize()` (called before every
export, like the folds of RepVGG) switches to the same function written as a sum over the kxk shifted windows of
the padded input: no patch tensor k*k times the input's size, and only slices, products and sums, which every
deployment converter takes (OpenVINO's Paddle front end cannot convert `unfold`). The two agree to float32
rounding (the summation order differs).
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ppipe.models.layers.conv_bn_act import ConvBNAct


class Involution(nn.Layer):
    def __init__(self, channels: int, kernel_size: int, stride: int = 1, group_channels: int = 16,
                 reduction: int = 4):
        super().__init__()
        if channels % group_channels:
            raise ValueError(f"involution channels ({channels}) must be a multiple of group_channels "
                             f"({group_channels})")
        self.channels, self.kernel_size, self.stride = channels, kernel_size, stride
        self.group_channels, self.groups = group_channels, channels // group_channels
        # The kernel of a strided involution is generated from the average of each stride x stride cell. ceil_mode
        # makes that grid as large as the strided unfold's on odd sizes (where PaddleClas's floor mode fails);
        # on even sizes the two agree.
        self.avgpool = nn.AvgPool2D(stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        self.conv1 = ConvBNAct(channels, channels // reduction, 1, act="relu")
        self.conv2 = nn.Sequential(("conv", nn.Conv2D(channels // reduction, kernel_size ** 2 * self.groups, 1)))
        self.is_repped = False  # True: the shifted-window form (`re_parameterize`)

    def re_parameterize(self) -> None:
        self.is_repped = True

    def forward(self, x):
        kernel = self.conv2(self.conv1(self.avgpool(x)))  # [N, groups * k * k, H', W']
        if self.is_repped:
            return self._shifted_windows(x, kernel)
        k2 = self.kernel_size ** 2
        out_hw = paddle.shape(kernel)[2:]
        kernel = kernel.reshape([0, self.groups, 1, k2, -1])
        patches = F.unfold(x, self.kernel_size, strides=self.stride, paddings=(self.kernel_size - 1) // 2)
        patches = patches.reshape([0, self.groups, self.group_channels, k2, -1])  # [N, G, C/G, k*k, H' * W']
        out = (kernel * patches).sum(axis=3)
        return out.reshape([0, self.channels, out_hw[0], out_hw[1]])

    def _shifted_windows(self, x, kernel):
        """sum over (i, j) of kernel[(i, j)] * the padded input's window at offset (i, j), taken with the stride:
        the window holds what unfold's patch position i * k + j holds at every output position."""
        k, stride = self.kernel_size, self.stride
        h, w = x.shape[2], x.shape[3]
        padded = _zero_padded(x, (k - 1) // 2)
        # Each group is one image of C/G channels ([N * G, C/G, H + 2p, W + 2p]) and its kernel one channel
        # ([N * G, 1, H', W'] per offset): a product that broadcasts along the channel axis runs on oneDNN's
        # vectorised binary kernel; broadcast along a middle axis of 5-D tensors it ran on oneDNN's reference
        # kernel, 5 ms a product at 28x28 (RedNet26 at 224 on oneDNN: 1.4 s an image that way, 0.13 s this way).
        padded = padded.reshape([-1, self.group_channels, padded.shape[2], padded.shape[3]])
        kernel = kernel.reshape([-1, k * k, kernel.shape[2], kernel.shape[3]])
        # At a single output position ([N * G, 16, 1, 1] x [N * G, 1, 1, 1]: RedNet's last stage at inputs of 32 px
        # or less) oneDNN has no vectorised kernel for the broadcast; the kernel tiled to the window's shape
        # multiplies elementwise, on the vectorised kernel (a copy of 16 numbers per group; `expand_as` would do
        # the same, but paddle2onnx 2.1.0 converts it into a Reshape that ONNX Runtime rejects).
        single_position = kernel.shape[2] == 1 and kernel.shape[3] == 1
        out = None
        for i in range(k):
            for j in range(k):
                window = padded[:, :, i:i + h:stride, j:j + w:stride]
                weights = kernel[:, i * k + j:i * k + j + 1]
                if single_position:
                    weights = paddle.tile(weights, [1, self.group_channels, 1, 1])
                term = weights * window
                out = term if out is None else out + term
        return out.reshape([-1, self.channels, out.shape[2], out.shape[3]])


def _zero_padded(x, pad: int):
    """`x` with `pad` zero rows and columns on each side, by concatenation: paddle2onnx 2.1.0 converts `F.pad`'s
    `pad3d` into an ONNX Pad whose constant value is uninitialised memory (0.0 in most conversions, up to 1e+35 in
    others; tests/test_export_onnx.py), and Paddle's `pad` op corrupted the heap of the export's Paddle process
    (glibc: "unaligned tcache chunk")."""
    # one zero row (column) tiled: x may have fewer rows than `pad` (a 7x7 involution on a 2x2 map)
    rows = paddle.tile(paddle.zeros_like(x[:, :, :1, :]), [1, 1, pad, 1])
    x = paddle.concat([rows, x, rows], axis=2)
    columns = paddle.tile(paddle.zeros_like(x[:, :, :, :1]), [1, 1, 1, pad])
    return paddle.concat([columns, x, columns], axis=3)
