"""GhostNet's head uses paddle's default dropout: identity at inference (MobileNetV3's head scales by 1 - p)."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model


@pytest.mark.parametrize("name", ["GhostNet_x0_5", "ReXNet_1_0"])  # ReXNet's head does the same
def test_dropout_leaves_inference_pre_logits_unscaled(name):
    x = paddle.randn([1, 3, 32, 32])
    outs = {}
    for p in (0.5, 0.0):
        paddle.seed(1)
        model = create_model(name, dropout_prob=p)
        model.eval()
        outs[p] = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    assert np.abs(outs[0.0]).max() > 0
    np.testing.assert_allclose(outs[0.5], outs[0.0], rtol=1e-6)
