"""Involution (Li et al., 2021, arXiv:2103.06255): a spatially varying kernel generated from the input itself.

At every output position a small bottleneck (1x1 conv-BN-ReLU `conv1` to channels/4, then 1x1 conv `conv2`)
produces one kxk kernel per group of `group_channels` channels; the kernel is applied to the kxk neighbourhood of
that position, shared by the channels of its group. Keys `conv1.conv.weight`, `conv1.bn.*`,
`conv2.conv.{weight,bias}` as in PaddleClas's RedNet.
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

    def forward(self, x):
        kernel = self.conv2(self.conv1(self.avgpool(x)))  # [N, groups * k * k, H', W']
        k2 = self.kernel_size ** 2
        out_hw = paddle.shape(kernel)[2:]
        kernel = kernel.reshape([0, self.groups, 1, k2, -1])
        patches = F.unfold(x, self.kernel_size, strides=self.stride, paddings=(self.kernel_size - 1) // 2)
        patches = patches.reshape([0, self.groups, self.group_channels, k2, -1])  # [N, G, C/G, k*k, H' * W']
        out = (kernel * patches).sum(axis=3)
        return out.reshape([0, self.channels, out_hw[0], out_hw[1]])
