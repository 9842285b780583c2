"""GoogLeNet's auxiliary heads: three logits in training mode (as PaddleClas's GoogLeNetLoss expects), the main
logits in eval mode, and PaddleClas's auxiliary weights giving PaddleClas's auxiliary logits."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model


def test_googlenet_returns_main_and_auxiliary_logits_in_training_and_all_get_gradients():
    paddle.seed(0)
    model = create_model("GoogLeNet", num_classes=10)
    model.train()
    outs = model(paddle.randn([2, 3, 224, 224]))
    assert isinstance(outs, list) and [o.shape for o in outs] == [[2, 10]] * 3
    paddle.add_n([o.mean() for o in outs]).backward()
    assert [p.name for p in model.parameters() if p.grad is None] == []


def test_googlenet_eval_returns_the_main_head_of_the_contract():
    model = create_model("GoogLeNet", num_classes=10)
    model.eval()
    x = paddle.randn([1, 3, 224, 224])
    logits = model(x)
    assert isinstance(logits, paddle.Tensor) and logits.shape == [1, 10]
    np.testing.assert_allclose(logits.numpy(), model.forward_head(model.forward_features(x)).numpy(), rtol=1e-6)


def test_googlenet_without_classifier_drops_the_auxiliary_heads_too():
    model = create_model("GoogLeNet", num_classes=0)
    model.train()
    out = model(paddle.randn([1, 3, 224, 224]))
    assert isinstance(out, paddle.Tensor) and out.shape == [1, 1024]
    assert not any(k.startswith(("aux1.", "aux2.")) for k in model.state_dict())


def test_paddleclas_googlenet_checkpoint_gives_paddleclas_auxiliary_logits(tmp_path):
    pytest.importorskip("paddleclas", reason="paddleclas (the test oracle) is not installed")
    from paddleclas.ppcls.arch.backbone.model_zoo.googlenet import GoogLeNetDY

    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        oracle = GoogLeNetDY()
    oracle.eval()
    paddle.save(oracle.state_dict(), str(tmp_path / "GoogLeNet.pdparams"))
    model = create_model("GoogLeNet", pretrained=str(tmp_path / "GoogLeNet.pdparams"))
    model.eval()
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype("float32"))
    want = [o.numpy() for o in oracle(x)]
    feats, ince4a, ince4d = model._forward(x)
    got = [model.forward_head(feats).numpy(), model.aux1(ince4a).numpy(), model.aux2(ince4d).numpy()]
    for w, g in zip(want, got):
        assert np.linalg.norm(g - w) / np.linalg.norm(w) < 1e-4


class _Counting(paddle.nn.Layer):
    """Multiplies by `factor`, counting its calls."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor, self.calls = factor, 0

    def forward(self, x):
        self.calls += 1
        return x * self.factor


def test_concat_branches_chains_in_order_concatenates_in_branch_order_and_runs_a_shared_prefix_once():
    from ppipe.models.layers.concat_branches import ConcatBranches

    layers = dict(stem=_Counting(2.0), a=_Counting(3.0), b=_Counting(5.0), c=_Counting(7.0))
    block = ConcatBranches(layers, (("c",), ("stem", "a"), ("stem", "b")))
    x = paddle.ones([1, 1, 2, 2])
    out = block(x).numpy()
    assert out.shape == (1, 3, 2, 2)
    np.testing.assert_allclose(out[0, :, 0, 0], [7.0, 6.0, 10.0])
    assert [layer.calls for layer in layers.values()] == [1, 1, 1, 1]
    assert [name for name, _ in block.named_sublayers()] == ["stem", "a", "b", "c"]  # checkpoint names, in order
