"""ReXNet: a widening bottleneck adds its input to the first channels of its output only."""

from __future__ import annotations

import numpy as np
import paddle

from ppipe.models.rexnet import LinearBottleneck


def test_widening_bottleneck_adds_the_input_to_its_first_channels():
    block = LinearBottleneck(8, 12, t=6, stride=1, use_se=True)
    block.eval()
    last_bn = block.out[-1]
    last_bn.weight.set_value(paddle.zeros_like(last_bn.weight))
    last_bn.bias.set_value(paddle.full_like(last_bn.bias, 0.5))  # the branch outputs 0.5 everywhere
    x = paddle.randn([2, 8, 5, 5])
    y = block(x).numpy()
    assert y.shape == (2, 12, 5, 5)
    np.testing.assert_allclose(y[:, :8], x.numpy() + 0.5, rtol=1e-6)
    np.testing.assert_allclose(y[:, 8:], 0.5)
    assert not LinearBottleneck(8, 12, t=6, stride=2, use_se=False).use_shortcut
