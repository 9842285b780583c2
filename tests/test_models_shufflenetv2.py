"""ShuffleNetV2 and ESNet: the channel shuffle interleaves the two branches' channels."""

from __future__ import annotations

import numpy as np
import paddle

from ppipe.models.layers.channel_shuffle import channel_shuffle


def test_channel_shuffle_interleaves_groups_and_keeps_spatial_values():
    x = paddle.arange(6 * 2 * 3, dtype="float32").reshape([1, 6, 2, 3])
    y = channel_shuffle(x, 2).numpy()
    assert y.shape == (1, 6, 2, 3)
    np.testing.assert_array_equal(y[0], x.numpy()[0][[0, 3, 1, 4, 2, 5]])
    np.testing.assert_array_equal(channel_shuffle(x, 3).numpy()[0], x.numpy()[0][[0, 2, 4, 1, 3, 5]])
