"""RedNet's involution: per-position, per-group kernels generated from the input, also at odd sizes when strided."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model
from ppipe.models.layers.involution import Involution


def _naive_involution(x: np.ndarray, kernel: np.ndarray, k: int, stride: int, group_channels: int) -> np.ndarray:
    n, c, h, w = x.shape
    _, _, oh, ow = kernel.shape
    pad = (k - 1) // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((n, c, oh, ow), np.float64)
    for ch in range(c):
        g = ch // group_channels
        for i in range(k):
            for j in range(k):
                window = xp[:, ch, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
                out[:, ch] += kernel[:, g * k * k + i * k + j] * window
    return out


@pytest.mark.parametrize("stride,size", [(1, (6, 5)), (2, (8, 6)), (2, (7, 9))])
def test_involution_applies_each_groups_generated_kernel_to_its_neighbourhood(stride, size):
    paddle.seed(0)
    layer = Involution(32, 3, stride)
    layer.eval()
    x = paddle.randn([2, 32, *size])
    kernel = layer.conv2(layer.conv1(layer.avgpool(x)))
    # stride 2 generates kernels from stride x stride cells, the last one partial on odd sizes
    assert kernel.shape[2:] == [-(-s // stride) for s in size]
    want = _naive_involution(x.numpy(), kernel.numpy(), 3, stride, 16)
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("stride,size", [(1, (6, 5)), (2, (8, 6)), (2, (7, 9)), (1, (2, 2)), (2, (1, 3))])
def test_reparameterized_involution_computes_the_same_without_unfold(stride, size):
    paddle.seed(0)
    layer = Involution(32, 7, stride)
    layer.eval()
    x = paddle.randn([2, 32, *size])
    want = layer(x).numpy()
    layer.re_parameterize()
    assert layer.is_repped
    np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-6, atol=1e-6)


def test_involution_needs_whole_channel_groups():
    with pytest.raises(ValueError, match="multiple of group_channels"):
        Involution(24, 3)


def test_rednet_runs_at_sizes_whose_halvings_are_odd():
    model = create_model("RedNet26", num_classes=4)
    model.eval()
    out = model(paddle.randn([1, 3, 48, 80]))
    assert out.shape == [1, 4] and np.isfinite(out.numpy()).all()


@pytest.mark.parametrize("size", [14, 2])  # 2: a single output position, RedNet's last stage at 32 px
def test_the_deploy_form_runs_on_onednns_vectorised_kernels_not_its_reference_ones(tmp_path, size):
    """The exported involution's products broadcast along the channel axis: along a middle axis of 5-D tensors
    (the first deploy form, and the unfold form) oneDNN ran them on its reference kernel, 10x slower for RedNet26
    at 224 (docs/export.md); at a single output position the channel broadcast itself has no vectorised kernel."""
    from ppipe.export import export_inference_model
    from tests.onednn_verbose import executed_primitives

    paddle.seed(0)
    layer = Involution(32, 7, 2)
    layer.eval()
    layer.re_parameterize()
    export_inference_model(layer, str(tmp_path / "involution"), (32, size, size))
    executed = executed_primitives(str(tmp_path / "involution"), (2, 32, size, size))
    assert len([p for p in executed if p.kind == "binary"]) >= 49  # one product per window at least
    assert not [p.line for p in executed if p.reference]
