"""Diverse Branch Block (Ding et al., 2021, arXiv:2103.13425): a drop-in for a kxk conv-BN that trains as the sum of
four branches and deploys as one biased kxk conv. PaddleClas's ResNet builds its blocks from it under
`layer_type: DiverseBranchBlock` (ResNet18_dbb).

Branches (k = kernel_size; every conv has the block's groups; the stride is taken by each branch's kxk conv or
pool, dbb_1x1's by its conv):
  dbb_origin   kxk conv - BN, the conv the block replaces
  dbb_1x1      1x1 conv - BN                                           (only when groups < out_chs)
  dbb_avg      1x1 conv - BN, padded - kxk average pool - BN           (depthwise: average pool - BN)
  dbb_1x1_kxk  1x1 conv, identity-initialised - BN, padded - kxk conv - BN  (depthwise: 2x wide 1x1 conv)
For k = 1 every branch is a stack of 1x1 convs and the pool a stride-s subsampling; training still differs from a
single conv-BN (more BatchNorms, more parameters) and the deploy form is one 1x1 conv.

State-dict keys are PaddleClas's, so its ResNet*_dbb checkpoints load as they are; after `reparameterize()` they
are `dbb_reparam.{weight,bias}` (its `re_parameterize()` gives the same).
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr

from ppipe.models.layers.activations import create_act
from ppipe.models.layers.conv_bn_act import ConvBNAct, batch_norm_without_decay
from ppipe.models.layers.reparameterize import (avg_pool_kernel, batch_norm_affine, fuse_conv_bn, identity_kernel,
                                                merge_1x1_kxk, pad_kernel)


def _conv(in_chs: int, out_chs: int, kernel_size: int, stride: int, groups: int, lr_mult: float) -> nn.Conv2D:
    """An unpadded bias-free conv: in the branches that pad, the padding is the BN-and-pad before it."""
    return nn.Conv2D(in_chs, out_chs, kernel_size, stride=stride, groups=groups,
                     weight_attr=ParamAttr(learning_rate=lr_mult), bias_attr=False)


class _IdentityBasedConv1x1(nn.Layer):
    """A bias-free 1x1 conv of kernel `weight` + identity, `weight` starting at zero: the branch starts as the
    identity and learns a residual from it. Not a Conv2D subclass: CPU training swaps Conv2D layers' classes for
    oneDNN ones (ppipe/ops/onednn.py), which would drop the identity."""

    def __init__(self, channels: int, groups: int, lr_mult: float):
        super().__init__()
        self.groups = groups
        self.weight = self.create_parameter(
            [channels, channels // groups, 1, 1],
            attr=ParamAttr(initializer=nn.initializer.Constant(0.0), learning_rate=lr_mult))
        # not persistable: PaddleClas's checkpoints hold `weight` alone
        self.register_buffer("identity", identity_kernel(channels, groups, self.weight.dtype), persistable=False)

    def kernel(self) -> paddle.Tensor:
        return self.weight + self.identity

    def forward(self, x):
        return F.conv2d(x, self.kernel(), groups=self.groups)


class _BatchNormAndPad(nn.Layer):
    """BatchNorm, then `pad` pixels each side filled with what the BN gives a zero input in eval mode (its
    shift). The unpadded conv that follows then computes the zero-padded conv of the pre-BN tensor, the form that
    merges exactly with the 1x1 conv before it (reparameterize.merge_1x1_kxk): zeros after BN would differ at the
    borders. In training the border uses the running statistics, as the paper's code does."""

    def __init__(self, chs: int, pad: int, lr_mult: float):
        super().__init__()
        # PaddleClas's momentum 0.1, which in Paddle's convention keeps 10% of the running statistics per step (the
        # paper's code, in PyTorch's, keeps 90%). Kept: the border reads the statistics this step just updated,
        # so the value changes training-mode outputs, and PaddleClas's training is the one reproduced.
        self.bn = batch_norm_without_decay(chs, lr_mult, momentum=0.1)
        self.pad = pad

    def forward(self, x):
        y = self.bn(x)
        if self.pad == 0:
            return y
        shift = batch_norm_affine(self.bn)[1].reshape([1, -1, 1, 1])
        return F.pad(y - shift, [self.pad] * 4) + shift


class DiverseBranchBlock(nn.Layer):
    """`act`(sum of the four branches of the module docstring); the interface of ConvBNAct, which it replaces.
    `reparameterize()` folds the branches into one biased kxk conv, `dbb_reparam`."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 act: str | None = None, lr_mult: float = 1.0):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"DiverseBranchBlock needs an odd kernel_size, got {kernel_size}")
        # groups == out_chs (depthwise) leaves no 1x1 conv before the average pool to map in_chs to out_chs
        if groups >= out_chs and in_chs != out_chs:
            raise ValueError(f"a depthwise DiverseBranchBlock needs in_chs == out_chs, got {in_chs} -> {out_chs}")
        self.in_chs, self.out_chs, self.kernel_size, self.stride, self.groups = (in_chs, out_chs, kernel_size,
                                                                                 stride, groups)
        self.is_reparameterized = False
        pad = kernel_size // 2
        self.act = create_act(act)
        self.dbb_origin = ConvBNAct(in_chs, out_chs, kernel_size, stride=stride, groups=groups, lr_mult=lr_mult)
        if groups < out_chs:
            self.dbb_avg = nn.Sequential(
                ("conv", _conv(in_chs, out_chs, 1, 1, groups, lr_mult)),
                ("bn", _BatchNormAndPad(out_chs, pad, lr_mult)),
                ("avg", nn.AvgPool2D(kernel_size, stride=stride)),
                ("avgbn", batch_norm_without_decay(out_chs, lr_mult)))
            self.dbb_1x1 = ConvBNAct(in_chs, out_chs, 1, stride=stride, groups=groups, lr_mult=lr_mult)
        else:
            # exclusive=False counts the zero padding in the average, as the deploy kernel does (PaddleClas
            # leaves Paddle's default, exclusive, which its fused conv then differs from at the borders)
            self.dbb_avg = nn.Sequential(
                ("avg", nn.AvgPool2D(kernel_size, stride=stride, padding=pad, exclusive=False)),
                ("avgbn", batch_norm_without_decay(out_chs, lr_mult)))
            self.dbb_1x1 = None
        # the paper doubles the middle width of depthwise blocks (MobileNet), where a 1x1 conv is cheap
        mid_chs = in_chs if groups < out_chs else 2 * in_chs
        first = (("idconv1", _IdentityBasedConv1x1(in_chs, groups, lr_mult)) if mid_chs == in_chs
                 else ("conv1", _conv(in_chs, mid_chs, 1, 1, groups, lr_mult)))
        self.dbb_1x1_kxk = nn.Sequential(
            first,
            ("bn1", _BatchNormAndPad(mid_chs, pad, lr_mult)),
            ("conv2", _conv(mid_chs, out_chs, kernel_size, stride, groups, lr_mult)),
            ("bn2", batch_norm_without_decay(out_chs, lr_mult)))

    def forward(self, x):
        if self.is_reparameterized:
            return self.act(self.dbb_reparam(x))
        y = self.dbb_origin(x)
        if self.dbb_1x1 is not None:
            y = y + self.dbb_1x1(x)
        return self.act(y + self.dbb_avg(x) + self.dbb_1x1_kxk(x))

    def _fused_kernel_and_bias(self) -> tuple[paddle.Tensor, paddle.Tensor]:
        """The kernel and bias of the one conv computing the branches' sum in eval mode."""
        k, groups = self.kernel_size, self.groups
        kernel, bias = fuse_conv_bn(self.dbb_origin.conv.weight, self.dbb_origin.bn)
        if self.dbb_1x1 is not None:
            k_1x1, b_1x1 = fuse_conv_bn(self.dbb_1x1.conv.weight, self.dbb_1x1.bn)
            kernel, bias = kernel + pad_kernel(k_1x1, k), bias + b_1x1

        branch = self.dbb_1x1_kxk
        first = branch.idconv1.kernel() if hasattr(branch, "idconv1") else branch.conv1.weight
        k1, b1 = fuse_conv_bn(first, branch.bn1.bn)
        k2, b2 = fuse_conv_bn(branch.conv2.weight, branch.bn2)
        k_kxk, b_kxk = merge_1x1_kxk(k1, b1, k2, b2, groups)

        branch = self.dbb_avg
        k_avg, b_avg = fuse_conv_bn(avg_pool_kernel(self.out_chs, k, groups, kernel.dtype), branch.avgbn)
        if hasattr(branch, "conv"):
            k1, b1 = fuse_conv_bn(branch.conv.weight, branch.bn.bn)
            k_avg, b_avg = merge_1x1_kxk(k1, b1, k_avg, b_avg, groups)
        return kernel + k_kxk + k_avg, bias + b_kxk + b_avg

    @paddle.no_grad()
    def reparameterize(self) -> None:
        """Replace the branches by `dbb_reparam`, the single biased conv computing the same function in eval
        mode; idempotent."""
        if self.is_reparameterized:
            return
        kernel, bias = self._fused_kernel_and_bias()
        self.dbb_reparam = nn.Conv2D(self.in_chs, self.out_chs, self.kernel_size, stride=self.stride,
                                     padding=self.kernel_size // 2, groups=self.groups)
        self.dbb_reparam.weight.set_value(kernel)
        self.dbb_reparam.bias.set_value(bias)
        del self.dbb_origin, self.dbb_avg, self.dbb_1x1_kxk
        self.dbb_1x1 = None
        self.is_reparameterized = True
