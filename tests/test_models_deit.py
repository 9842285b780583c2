"""DeiT: distilled models average their two heads in training and evaluation, as PaddleClas's do."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models.deit import DistilledVisionTransformer

TINY = dict(img_size=32, patch_size=16, embed_dim=24, depth=2, num_heads=2, qkv_bias=True, epsilon=1e-6)


def _tiny_distilled(**kw) -> DistilledVisionTransformer:
    paddle.seed(0)
    return DistilledVisionTransformer(**TINY, **kw)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_distilled_deit_returns_the_mean_of_both_heads_like_paddleclas(training):
    pytest.importorskip("paddleclas")
    from paddleclas.ppcls.arch.backbone.model_zoo.distilled_vision_transformer import (
        DistilledVisionTransformer as Oracle)

    oracle = Oracle(**TINY, class_num=7)
    model = _tiny_distilled(num_classes=7)
    model.set_state_dict(oracle.state_dict())
    for m in (oracle, model):
        m.train() if training else m.eval()
    x = paddle.randn([2, 3, 32, 32])
    got = model(x)
    assert isinstance(got, paddle.Tensor) and got.shape == [2, 7]  # one tensor, not (class, distillation) logits
    np.testing.assert_allclose(got.numpy(), oracle(x).numpy(), rtol=1e-5, atol=1e-6)
    feats = model.forward_features(x)
    cls_logits, dist_logits = model.head(feats[:, 0]), model.head_dist(feats[:, 1])
    np.testing.assert_allclose(got.numpy(), ((cls_logits + dist_logits) / 2).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got.numpy(), cls_logits.numpy(), atol=1e-3)


def test_distilled_deit_features_hold_class_distillation_and_patch_tokens_and_pre_logits_average_the_first_two():
    model = _tiny_distilled()
    model.eval()
    feats = model.forward_features(paddle.randn([1, 3, 32, 32]))
    assert feats.shape == [1, 2 + 4, 24] and model.pos_embed.shape == [1, 6, 24]
    np.testing.assert_allclose(model.forward_head(feats, pre_logits=True).numpy(),
                               ((feats[:, 0] + feats[:, 1]) / 2).numpy(), rtol=1e-6)


def test_distilled_deit_reset_classifier_replaces_both_heads():
    model = _tiny_distilled()
    model.reset_classifier(3)
    assert model.head.weight.shape == [24, 3] and model.head_dist.weight.shape == [24, 3]
    model.reset_classifier(0)
    assert isinstance(model.head, paddle.nn.Identity) and isinstance(model.head_dist, paddle.nn.Identity)
    assert not any(k.startswith("head") for k in model.state_dict())
