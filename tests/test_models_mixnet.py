"""MixNet: ppipe pools globally where PaddleClas pools with a fixed 7x7 window; the two agree at 224 px."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model, load_pretrained


def test_mixnet_gives_unmodified_paddleclas_logits_at_224():
    backbone = pytest.importorskip("paddleclas.ppcls.arch.backbone")
    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        oracle = backbone.MixNet_S()  # its own fixed 7x7 final pool, unlike the parity tests' oracle
    rng = np.random.default_rng(0)
    state = {k: v.numpy() for k, v in oracle.state_dict().items()}
    for k, v in state.items():
        if k.endswith("_variance"):
            state[k] = rng.uniform(0.5, 1.5, v.shape).astype(v.dtype)
    oracle.set_state_dict(state)
    oracle.eval()
    model = create_model("MixNet_S")
    load_pretrained(model, state)
    model.eval()
    x = paddle.to_tensor(rng.standard_normal((1, 3, 224, 224)).astype("float32"))
    want, got = oracle(x).numpy(), model(x).numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4


def test_mixnet_runs_below_paddleclas_minimum_input_size():
    model = create_model("MixNet_S", num_classes=3)
    model.eval()
    assert model.forward_features(paddle.randn([1, 3, 64, 64])).shape == [1, 1536, 2, 2]
    assert model(paddle.randn([1, 3, 64, 64])).shape == [1, 3]
