"""Cutting a [B, H, W, C] map into non-overlapping windows of tokens and back (Liu et al., 2021,
arXiv:2103.14030), for the window attention of Swin and the stripes of CSWin."""

from __future__ import annotations

import paddle


def window_partition(x: paddle.Tensor, window: int, window_w: int | None = None) -> paddle.Tensor:
    """[B, H, W, C] -> [B * windows, window * window_w, C]: windows (`window` x `window_w`, square by default)
    in raster order per image, tokens in raster order per window."""
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    ww = window_w or window
    x = x.reshape([-1, h // window, window, w // ww, ww, c]).transpose([0, 1, 3, 2, 4, 5])
    return x.reshape([-1, window * ww, c])


def window_reverse(windows: paddle.Tensor, h: int, w: int, window: int, window_w: int | None = None) -> paddle.Tensor:
    """Inverse of `window_partition`: [B * windows, window * window_w, C] -> [B, H, W, C]."""
    c = windows.shape[-1]
    ww = window_w or window
    x = windows.reshape([-1, h // window, w // ww, window, ww, c]).transpose([0, 1, 3, 2, 4, 5])
    return x.reshape([-1, h, w, c])
