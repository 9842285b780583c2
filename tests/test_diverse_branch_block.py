"""Diverse Branch Block: the deploy form computes the training form's function, the block is weight- and
output-compatible with PaddleClas's (the oracle, when PADDLECLAS_SRC points to its source tree), and it trains on
ppipe's oneDNN CPU kernels like on Paddle's."""

from __future__ import annotations

import copy

import numpy as np
import paddle
import pytest

from ppipe.models.layers.diverse_branch_block import DiverseBranchBlock
from ppipe.ops import onednn
from tests.paddleclas_source import PADDLECLAS_SRC, from_source


# in_chs, out_chs, kernel_size, stride, groups, act: ResNet's 3x3 and 1x1 convs, grouped and depthwise blocks
SHAPES = [
    (8, 16, 3, 1, 1, None),
    (8, 16, 3, 2, 1, "relu"),
    (8, 16, 1, 1, 1, "relu"),
    (16, 8, 1, 2, 1, None),
    (8, 16, 3, 1, 4, "relu"),
    (8, 8, 3, 2, 8, None),  # depthwise: no 1x1 branch, 2x wide middle of the 1x1-kxk branch
]
IDS = [f"{i}-{o}-k{k}s{s}g{g}-{a}" for i, o, k, s, g, a in SHAPES]


def _randomized(block: paddle.nn.Layer, seed: int = 0) -> paddle.nn.Layer:
    """Every parameter and BatchNorm statistic random (the identity-based 1x1 conv off its zero start)."""
    rng = np.random.default_rng(seed)
    state = {}
    for k, v in block.state_dict().items():
        shape = v.shape
        if k.endswith("_variance"):
            a = rng.uniform(0.5, 1.5, shape)
        elif k.endswith(("_mean", "bias")):
            a = rng.normal(0.0, 0.3, shape)
        elif len(shape) == 1:  # BN scale
            a = rng.uniform(0.5, 1.5, shape)
        else:
            a = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[1:])), shape)
        state[k] = a.astype("float32")
    block.set_state_dict(state)
    return block


def _input(in_chs: int, seed: int = 1) -> paddle.Tensor:
    # an offset mean, so that BatchNorm's statistics and the borders' padding values matter
    rng = np.random.default_rng(seed)
    return paddle.to_tensor((rng.standard_normal((2, in_chs, 9, 9)) + 0.5).astype("float32"))


@pytest.mark.parametrize("in_chs, out_chs, kernel_size, stride, groups, act", SHAPES, ids=IDS)
def test_reparameterized_block_computes_the_multi_branch_function_in_eval_mode(in_chs, out_chs, kernel_size,
                                                                               stride, groups, act):
    paddle.seed(0)
    block = _randomized(DiverseBranchBlock(in_chs, out_chs, kernel_size, stride=stride, groups=groups, act=act))
    x = _input(in_chs)
    block.train()
    for _ in range(2):  # running statistics of their own, not the randomized ones
        block(x * 2.0 + 0.3)
    block.eval()
    want = block(x).numpy()
    block.reparameterize()
    block.reparameterize()
    assert block.is_reparameterized
    assert {k: list(v.shape) for k, v in block.state_dict().items()} == {
        "dbb_reparam.weight": [out_chs, in_chs // groups, kernel_size, kernel_size], "dbb_reparam.bias": [out_chs]}
    got = block(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def test_identity_based_1x1_conv_starts_as_the_identity_and_keeps_it_out_of_the_state_dict():
    block = DiverseBranchBlock(8, 16, 3, groups=2)
    conv = block.dbb_1x1_kxk.idconv1
    assert float(conv.weight.abs().sum()) == 0.0
    x = paddle.randn([2, 8, 5, 5])
    np.testing.assert_array_equal(conv(x).numpy(), x.numpy())
    assert [k for k in block.state_dict() if k.startswith("dbb_1x1_kxk.idconv1")] == ["dbb_1x1_kxk.idconv1.weight"]


def test_bad_geometries_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="odd kernel_size"):
        DiverseBranchBlock(8, 8, 2)
    with pytest.raises(ValueError, match="depthwise.*in_chs == out_chs"):
        DiverseBranchBlock(16, 8, 3, groups=8)


def _paddleclas_block(*args, **kw):
    (PaddleClasDBB,) = from_source("ppcls.arch.backbone.base.dbb.dbb_block", "DiverseBranchBlock")
    block = PaddleClasDBB(*args, **kw)
    idconv = getattr(block.dbb_1x1_kxk, "idconv1", None)
    if idconv is not None:
        # PaddleClas builds its identity in float64, which Paddle 3's float32 conv2d rejects
        idconv.id_tensor = idconv.id_tensor.astype("float32")
    return block


@pytest.mark.skipif(not PADDLECLAS_SRC, reason="set PADDLECLAS_SRC to a PaddleClas source tree")
@pytest.mark.parametrize("in_chs, out_chs, kernel_size, stride, groups, act", SHAPES, ids=IDS)
def test_state_dict_and_outputs_match_paddleclas_diverse_branch_block(in_chs, out_chs, kernel_size, stride, groups,
                                                                       act):
    paddle.seed(0)
    ours = _randomized(DiverseBranchBlock(in_chs, out_chs, kernel_size, stride=stride, groups=groups, act=act))
    theirs = _paddleclas_block(in_chs, out_chs, kernel_size, stride=stride, groups=groups, act=act)
    assert [(k, list(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, list(v.shape)) for k, v in theirs.state_dict().items()]
    theirs.set_state_dict(ours.state_dict())
    if groups >= out_chs:
        # PaddleClas's depthwise average pool leaves the padding out of the average (Paddle's default), so its
        # output, and its own fused conv, differ at the borders; ppipe's counts it, as the deploy kernel does.
        theirs.dbb_avg.avg.exclusive = False
    x = _input(in_chs)
    for mode in ("eval", "train", "eval"):  # the second eval reads the running statistics training updated
        ours.train() if mode == "train" else ours.eval()
        theirs.train() if mode == "train" else theirs.eval()
        want = theirs(x).numpy()
        np.testing.assert_allclose(ours(x).numpy(), want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()),
                                   err_msg=mode)


@pytest.mark.parametrize("in_chs, out_chs, kernel_size, stride, groups, act",
                         [SHAPES[1], SHAPES[2], SHAPES[4], SHAPES[5]], ids=[IDS[1], IDS[2], IDS[4], IDS[5]])
def test_block_trains_on_onednn_kernels_like_on_paddle_kernels(in_chs, out_chs, kernel_size, stride, groups, act):
    paddle.seed(0)
    plain = _randomized(DiverseBranchBlock(in_chs, out_chs, kernel_size, stride=stride, groups=groups, act=act))
    fast = copy.deepcopy(plain)
    try:
        counts = onednn.use_onednn_kernels(fast)
    except onednn.OneDNNUnavailable as exc:
        pytest.skip(str(exc))
    if kernel_size > 1:  # the kxk convs of dbb_origin and dbb_1x1_kxk
        assert counts["conv"] >= 2
    assert counts["batch_norm"] > 0
    assert list(fast.state_dict()) == list(plain.state_dict())
    x = _input(in_chs)
    size = (9 + 2 * (kernel_size // 2) - kernel_size) // stride + 1
    g = paddle.to_tensor(np.random.default_rng(2).standard_normal((2, out_chs, size, size)).astype("float32"))
    results = []
    for net in (plain, fast):
        net.train()
        loss = (net(x) * g).mean()
        loss.backward()
        results.append((float(loss), {k: p.grad.numpy() for k, p in net.named_parameters() if not p.stop_gradient},
                        {k: v.numpy() for k, v in net.state_dict().items()}))
    (loss_p, grads_p, state_p), (loss_f, grads_f, state_f) = results
    assert loss_f == pytest.approx(loss_p, rel=1e-4, abs=1e-6)
    assert grads_f.keys() == grads_p.keys() and "dbb_1x1_kxk.bn1.bn.weight" in grads_p
    for k in grads_p:
        scale = float(np.abs(grads_p[k]).max())
        np.testing.assert_allclose(grads_f[k], grads_p[k], rtol=1e-4, atol=1e-4 * scale + 1e-7, err_msg=k)
    for k in state_p:  # running statistics accumulate the same way
        np.testing.assert_allclose(state_f[k], state_p[k], rtol=1e-4, atol=1e-6, err_msg=k)
