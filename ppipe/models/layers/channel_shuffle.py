"""Channel shuffle (Zhang et al., 2018, arXiv:1707.01083), which lets the two branches of ShuffleNetV2-style
units (ShuffleNetV2, ESNet) exchange information after their outputs are concatenated."""

from __future__ import annotations

import paddle


def channel_shuffle(x: paddle.Tensor, groups: int) -> paddle.Tensor:
    """[N, g*c, H, W] -> [N, c*g, H, W], interleaving the `groups` channel groups.

    N, H and W are taken as a tensor (`paddle.shape`), not from `x.shape`, so that the function exports with dynamic
    batch and spatial sizes.
    """
    shape = paddle.shape(x)
    x = paddle.reshape(x, [0, groups, x.shape[1] // groups, -1])
    return paddle.reshape(paddle.transpose(x, [0, 2, 1, 3]), shape)
