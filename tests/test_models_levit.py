"""LeViT: the distillation head's train/eval outputs, checkpoints with or without it, the stored bias indices,
and stochastic depth that keeps the residual branch."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model, load_pretrained
from ppipe.models.levit import Residual

pytest.importorskip("paddleclas", reason="paddleclas (the test oracle) is not installed")


def _paddleclas_levit(distillation: bool):
    from paddleclas.ppcls.arch.backbone import LeViT_128S

    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        model = LeViT_128S(distillation=distillation)
    state = model.state_dict()
    rng = np.random.default_rng(0)
    for k, v in state.items():  # non-trivial heads and attention biases, so a mix-up would show
        if k.startswith("head") or k.endswith("attention_biases"):
            state[k] = paddle.to_tensor(rng.normal(0, 0.5, v.shape).astype("float32"))
    model.set_state_dict(state)
    return model


@pytest.fixture(scope="module")
def image():
    return paddle.to_tensor(np.random.default_rng(1).standard_normal((2, 3, 224, 224)).astype("float32"))


def test_distillation_head_gives_both_logits_in_training_and_their_mean_at_inference_like_paddleclas(image):
    oracle = _paddleclas_levit(distillation=True)
    model = create_model("LeViT_128S", distillation=True)
    load_pretrained(model, oracle.state_dict())
    oracle.eval()
    model.eval()
    np.testing.assert_allclose(model(image).numpy(), oracle(image).numpy(), rtol=1e-4, atol=1e-5)
    feats = model.forward_features(image)
    pooled = model.forward_head(feats, pre_logits=True)
    mean = (model.head(pooled) + model.head_dist(pooled)) / 2
    np.testing.assert_allclose(model(image).numpy(), mean.numpy(), rtol=1e-6)
    model.train()
    logits, logits_dist = model(image)
    assert logits.shape == logits_dist.shape == [2, 1000]
    assert not np.allclose(logits.numpy(), logits_dist.numpy())


def test_checkpoint_with_distillation_head_loads_into_the_default_model_and_gives_paddleclas_logits(image):
    # PaddleClas's LeViT entrypoints build no distillation head and ignore one in the checkpoint
    with_dist = _paddleclas_levit(distillation=True)
    oracle = _paddleclas_levit(distillation=False)
    oracle.set_state_dict({k: v for k, v in with_dist.state_dict().items() if not k.startswith("head_dist")})
    model = create_model("LeViT_128S")
    assert not model.distillation and not hasattr(model, "head_dist")
    load_pretrained(model, with_dist.state_dict())
    oracle.eval()
    model.eval()
    np.testing.assert_allclose(model(image).numpy(), oracle(image).numpy(), rtol=1e-4, atol=1e-5)


def test_attention_bias_indices_are_a_stored_buffer_equal_to_paddleclas_and_load_from_checkpoints():
    oracle = _paddleclas_levit(distillation=False).state_dict()
    model = create_model("LeViT_128S")
    state = model.state_dict()
    idx_keys = sorted(k for k in oracle if k.endswith("attention_bias_idxs"))
    assert idx_keys and idx_keys == sorted(k for k in state if k.endswith("attention_bias_idxs"))
    for k in idx_keys:
        assert state[k].dtype == paddle.int64
        np.testing.assert_array_equal(state[k].numpy(), oracle[k].numpy())
    subsample = "blocks.4.attention_bias_idxs"  # the first query-subsampling attention: 7x7 queries, 14x14 keys
    assert state[subsample].shape == [49, 196]
    checkpoint = {k: v.numpy() for k, v in oracle.items()}
    checkpoint[subsample] = np.zeros_like(checkpoint[subsample])
    load_pretrained(model, checkpoint)
    assert int(model.state_dict()[subsample].abs().sum()) == 0


def test_stochastic_depth_drops_or_keeps_the_whole_residual_branch_per_sample():
    paddle.seed(3)
    branch = paddle.nn.Linear(8, 8)
    block = Residual(branch, drop_path=0.5)
    block.train()
    x = paddle.randn([64, 5, 8])
    out, y = block(x).numpy(), branch(x).numpy()
    dropped = np.all(np.isclose(out, x.numpy(), atol=1e-6), axis=(1, 2))
    kept = np.all(np.isclose(out, x.numpy() + y / 0.5, atol=1e-5), axis=(1, 2))
    assert np.all(dropped ^ kept) and dropped.any() and kept.any()
    block.eval()
    np.testing.assert_allclose(block(x).numpy(), x.numpy() + y, rtol=1e-6)
