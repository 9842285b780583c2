"""EfficientNet's static TensorFlow-'SAME' padding: strided convs pad for the variant's nominal feature size,
asymmetrically (as PaddleClas's pad-and-crop does) where TensorFlow would."""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from ppipe.models.efficientnet import _padding, conv_bn


@pytest.mark.parametrize("kernel, stride, nominal, expected", [
    (3, 2, 224, (0, 2, 0, 2)),  # 'SAME' pads 0 before, 1 after: PaddleClas pads 2 and crops one row/column
    (5, 2, 56, (1, 3, 1, 3)),   # 1 before, 2 after
    (5, 2, 65, 2),              # odd size: symmetric 2 and 2
    (3, 1, 112, 1),
    (1, 1, 7, 0),
    (5, 2, None, 2),            # B0_small: symmetric ((s - 1) + (k - 1)) // 2
])
def test_padding_follows_tensorflow_same_for_the_nominal_size(kernel, stride, nominal, expected):
    assert _padding(kernel, stride, nominal) == expected


def test_strided_conv_equals_tensorflow_asymmetric_same_padding():
    paddle.seed(0)
    layer = conv_bn(4, 6, 5, stride=2, nominal_size=56)
    layer.eval()
    x = paddle.randn([1, 4, 56, 56])
    # TensorFlow 'SAME' for k=5, s=2 on 56 px: 1 row/column before, 2 after
    want = layer.bn(F.conv2d(F.pad(x, [1, 2, 1, 2]), layer.conv.weight, stride=2))
    got = layer(x)
    assert got.shape == [1, 6, 28, 28]
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
