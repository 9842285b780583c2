"""RepVGG's re-parameterization: the fused (deploy) model computes the training form's function with the
published deploy-form parameter count, and exports."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model, get_spec
from ppipe.models.repvgg import RepVGGBlock


def _with_random_bn_statistics(model: paddle.nn.Layer, seed: int = 0) -> paddle.nn.Layer:
    rng = np.random.default_rng(seed)
    state = {}
    for k, v in model.state_dict().items():
        v = v.numpy()
        if k.endswith("_variance"):
            v = rng.uniform(0.5, 1.5, v.shape).astype(v.dtype)
        elif k.endswith("_mean") or (k.endswith(("bn.weight", "bn.bias", "rbr_identity.weight",
                                                   "rbr_identity.bias"))):
            v = (v + rng.normal(0.0, 0.1, v.shape)).astype(v.dtype)
        state[k] = v
    model.set_state_dict(state)
    model.eval()
    return model


def _num_params(model: paddle.nn.Layer) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters())


@pytest.mark.parametrize("name", ["RepVGG_A0", pytest.param("RepVGG_B1g4", marks=pytest.mark.slow)])
def test_reparameterized_model_gives_training_form_logits_with_deploy_parameter_count(name):
    paddle.seed(0)
    model = _with_random_bn_statistics(create_model(name))
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype("float32"))
    want = model(x).numpy()
    model.reparameterize()
    got = model(x).numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4
    assert not any("rbr_dense" in k or "rbr_1x1" in k or "rbr_identity" in k for k in model.state_dict())
    published = get_spec(name).params_m * 1e6
    assert abs(_num_params(model) - published) / published < 0.01


def test_reparameterize_is_idempotent_and_fuses_the_identity_branch_of_grouped_blocks():
    paddle.seed(0)
    block = RepVGGBlock(8, 8, stride=1, groups=4)
    _with_random_bn_statistics(block)
    assert block.rbr_identity is not None
    x = paddle.randn([2, 8, 9, 9])
    want = block(x).numpy()
    block.reparameterize()
    block.reparameterize()
    np.testing.assert_allclose(block(x).numpy(), want, rtol=1e-4, atol=1e-5)
    assert sorted(block.state_dict()) == ["rbr_reparam.bias", "rbr_reparam.weight"]


def test_reparameterized_model_exports_and_reloads_with_the_same_logits(tmp_path):
    model = _with_random_bn_statistics(create_model("RepVGG_A0", num_classes=10))
    model.reparameterize()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=True), str(tmp_path / "model"))
    x = paddle.randn([1, 3, 64, 64])
    np.testing.assert_allclose(paddle.jit.load(str(tmp_path / "model"))(x).numpy(), model(x).numpy(),
                               rtol=1e-5, atol=1e-6)
