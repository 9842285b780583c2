"""Relative position bias inside attention windows (Swin, Liu et al., 2021, arXiv:2103.14030, sec. 3.2).

A learnable table holds one bias per head for each of the (2 Wh - 1)(2 Ww - 1) relative offsets between two tokens
of a Wh x Ww window; a fixed index maps every (query, key) pair of the window to its table row. PaddleClas stores
both in its checkpoints, on the attention layer itself, as `relative_position_bias_table` and
`relative_position_index`; `add_relative_position_bias` creates them under those names on the layer given.
"""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn


def relative_position_index(window_h: int, window_w: int) -> np.ndarray:
    """[Wh*Ww, Wh*Ww] int64: the table row of each (query, key) token pair of a window, raster order."""
    coords = np.stack(np.meshgrid(np.arange(window_h), np.arange(window_w), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)  # offsets, each in [-(W - 1), W - 1]
    return (rel[:, :, 0] + window_h - 1) * (2 * window_w - 1) + (rel[:, :, 1] + window_w - 1)


def add_relative_position_bias(layer: nn.Layer, window_h: int, window_w: int, num_heads: int) -> None:
    """Give `layer` the bias table (a parameter) and index (a persistable buffer, as in PaddleClas's files)."""
    offsets = (2 * window_h - 1) * (2 * window_w - 1)
    layer.relative_position_bias_table = layer.create_parameter(
        [offsets, num_heads], default_initializer=nn.initializer.TruncatedNormal(std=0.02))
    layer.register_buffer("relative_position_index",
                          paddle.to_tensor(relative_position_index(window_h, window_w), dtype="int64"))


def relative_position_bias(layer: nn.Layer) -> paddle.Tensor:
    """[1, heads, Wh*Ww, Wh*Ww]: the bias `layer`'s table and index give, to add to attention logits."""
    index = layer.relative_position_index
    bias = paddle.index_select(layer.relative_position_bias_table, index.reshape([-1]))
    return bias.reshape([index.shape[0], index.shape[1], -1]).transpose([2, 0, 1]).unsqueeze(0)
