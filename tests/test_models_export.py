"""The zoo's models export through paddle.jit.to_static + paddle.jit.save and give the eager model's outputs."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model, get_spec
from tests.zoo_cases import REPRESENTATIVES, test_input_size


# The families whose save-and-reload took over 8 s each on the 2-vCPU machine (`pytest --durations`, 2026-12-06):
# about 160 s of the default run together; they run with `-m slow` and in CI's slow step.
SLOW_TO_SAVE = {"CSWinTransformer_tiny_224", "HRNet_W18_C", "Res2Net50_14w_8s", "alt_gvt_small",
                "ResNeSt50_fast_1s1x64d", "ResNeXt101_32x8d_wsl", "Xception41", "HarDNet39_ds", "TNT_small",
                "SwinTransformer_tiny_patch4_window7_224", "DenseNet121"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TO_SAVE else n
                                  for n in sorted(REPRESENTATIVES)])
def test_jit_saved_model_reproduces_eager_logits_at_any_batch_and_size(name, tmp_path):
    """One architecture per family; fixed-input architectures export at their own size."""
    model = create_model(name, num_classes=10)
    model.eval()
    fixed = get_spec(name).fixed_input
    size = test_input_size(name)
    spec = [paddle.static.InputSpec([None, 3, size if fixed else None, size if fixed else None], "float32", "x")]
    paddle.jit.save(paddle.jit.to_static(model, input_spec=spec, full_graph=True), str(tmp_path / "model"))
    assert (tmp_path / "model.pdiparams").exists()
    loaded = paddle.jit.load(str(tmp_path / "model"))
    shapes = [[2, 3, size, size]] if fixed else [[2, 3, size, size], [1, 3, size, size - 16]]
    for shape in shapes:
        x = paddle.randn(shape)
        np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
