"""The zoo's models export through paddle.jit.to_static + paddle.jit.save and give the eager model's outputs."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model


@pytest.mark.parametrize("name", ["MobileNetV3_small_x0_35", "PPLCNet_x0_25"])
def test_jit_saved_model_reproduces_eager_logits_at_any_batch_and_size(name, tmp_path):
    model = create_model(name, num_classes=10)
    model.eval()
    spec = [paddle.static.InputSpec([None, 3, None, None], "float32", "x")]
    paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=True), str(tmp_path / "model"))
    assert (tmp_path / "model.pdiparams").exists()
    loaded = paddle.jit.load(str(tmp_path / "model"))
    for shape in ([2, 3, 32, 32], [1, 3, 64, 48]):
        x = paddle.randn(shape)
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
