"""DLA: trees whose pooled shortcut and strided conv agree on odd sizes; the 1x1-conv classifier."""

from __future__ import annotations

import numpy as np
import paddle

from ppipe.models import create_model


def test_runs_at_input_sizes_whose_halvings_are_odd():
    # 40 px reaches level4 at 5x5: the stride-2 max-pool shortcut must round up like the strided conv beside it.
    model = create_model("DLA46_c", num_classes=3)
    model.eval()
    out = model(paddle.randn([1, 3, 40, 72]))
    assert out.shape == [1, 3] and np.isfinite(out.numpy()).all()


def test_classifier_is_a_1x1_conv_over_the_pooled_features_like_paddleclas():
    model = create_model("DLA46_c", num_classes=7)
    model.eval()
    assert model.fc.weight.shape == [7, 256, 1, 1]
    feats = model.forward_features(paddle.randn([2, 3, 64, 64]))
    pooled = model.forward_head(feats, pre_logits=True)
    want = pooled.numpy() @ model.fc.weight.numpy()[:, :, 0, 0].T + model.fc.bias.numpy()
    np.testing.assert_allclose(model.forward_head(feats).numpy(), want, rtol=1e-5, atol=1e-5)
