"""ResNet lineage (ResNet, ResNeXt, SENet, ResNeXt101_wsl): behaviour beyond the zoo-wide tests."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model, load_pretrained
from ppipe.models.resnet import PADDLECLAS_V1_KEYS
from ppipe.models.resnext101_wsl import WSL_KEYS
from tests.paddleclas_source import PADDLECLAS_SRC, from_source


def _oracle(name: str, **kw) -> paddle.nn.Layer:
    pytest.importorskip("paddleclas", reason="paddleclas (the test oracle) is not installed")
    from paddleclas.ppcls.arch import backbone

    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        model = getattr(backbone, name)(**kw)
    rng = np.random.default_rng(0)  # BN statistics away from (0, 1), so a misplaced one shows
    model.set_state_dict({k: (rng.uniform(0.5, 1.5, v.shape) if k.endswith("_variance") else
                              v.numpy() + rng.normal(0, 0.1, v.shape) if k.endswith("_mean") else v.numpy()
                              ).astype("float32") for k, v in model.state_dict().items()})
    model.eval()
    return model


def _same_logits(oracle, model, size: int) -> None:
    x = paddle.to_tensor(np.random.default_rng(1).standard_normal((2, 3, size, size)).astype("float32"))
    want, got = oracle(x).numpy(), model(x).numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4


@pytest.mark.parametrize("name", ["ResNet18_vd", "SE_ResNet18_vd"])
def test_pooled_shortcut_matches_paddleclas_on_odd_feature_maps(name):
    # 72 px gives 9x9 and 5x5 maps where ResNet-D's 2x2 pool has a ragged last window; the two PaddleClas files
    # pad it differently ("SAME" vs 0 with ceil mode), and both must equal ours.
    oracle = _oracle(name)
    model = create_model(name)
    load_pretrained(model, oracle.state_dict())
    model.eval()
    _same_logits(oracle, model, 72)


def test_stride_and_lr_mult_lists_act_like_paddleclas_resnet():
    kw = dict(stride_list=[2, 2, 2, 2, 1], lr_mult_list=[0.1, 0.2, 0.3, 0.4, 0.5])
    oracle = _oracle("ResNet18_vd", **kw)
    model = create_model("ResNet18_vd", **kw)
    load_pretrained(model, oracle.state_dict())
    model.eval()
    _same_logits(oracle, model, 64)
    assert model.forward_features(paddle.zeros([1, 3, 64, 64])).shape == [1, 512, 4, 4]  # output stride 16
    assert model.stem[0].conv.weight.optimize_attr["learning_rate"] == 0.1
    assert model.blocks[7].conv1.bn.weight.optimize_attr["learning_rate"] == 0.5
    with pytest.raises(ValueError, match="5 values"):
        create_model("ResNet18_vd", lr_mult_list=[1.0] * 4)


def test_older_paddleclas_keys_map_onto_the_flat_block_list():
    depths = (3, 4, 23, 3)  # ResNeXt-101: stage 2 holds blocks 7..29
    assert PADDLECLAS_V1_KEYS.rename("bb_2_22.conv1._batch_norm._mean", depths) == "blocks.29.conv1.bn._mean"
    assert PADDLECLAS_V1_KEYS.rename("bb_1_0.scale.excitation.weight", depths) == "blocks.3.se.conv2.weight"
    assert PADDLECLAS_V1_KEYS.rename("conv1_3._conv.weight", depths) == "stem.2.conv.weight"
    assert PADDLECLAS_V1_KEYS.rename("conv._batch_norm.bias", depths) == "stem.0.bn.bias"
    assert PADDLECLAS_V1_KEYS.rename("out.weight", depths) == "fc.weight"
    assert WSL_KEYS.rename("_conv4_0._short._conv._bn._variance", depths) == "blocks.30.short.bn._variance"
    assert WSL_KEYS.rename("_conv3_1._conv2._conv.weight", depths) == "blocks.8.conv2.conv.weight"
    assert WSL_KEYS.rename("_conv_stem._bn.weight", depths) == "stem.0.bn.weight"


@pytest.mark.parametrize("name", ["ResNet50_vc", "SE_ResNet18_vd", "ResNeXt50_32x4d"])
def test_checkpoint_in_ppipe_layout_reloads_into_a_remapped_family(name):
    # the older-layout key map must leave ppipe's own keys alone, so ppipe-saved checkpoints load back
    paddle.seed(3)
    source = create_model(name)
    state = source.state_dict()
    assert sorted(source.remap_checkpoint(dict(state))) == sorted(state)
    target = create_model(name)
    load_pretrained(target, state)
    np.testing.assert_array_equal(target.blocks[1].conv1.conv.weight.numpy(), state["blocks.1.conv1.conv.weight"])


@pytest.mark.parametrize("name, stem_chs, first_width, groups, has_se, pooled_short", [
    ("ResNet50", (64,), 64, 1, False, False),
    ("ResNet50_vc", (32, 32, 64), 64, 1, False, False),
    ("ResNeXt50_vd_64x4d", (32, 32, 64), 256, 64, False, True),
    ("SE_ResNeXt50_vd_32x4d", (64, 64, 128), 128, 32, True, True),
    ("ResNeXt101_32x8d_wsl", (64,), 256, 32, False, False),
])
def test_variants_differ_in_stem_width_groups_se_and_shortcut_as_named(name, stem_chs, first_width, groups,
                                                                        has_se, pooled_short):
    model = create_model(name, num_classes=0)
    assert tuple(layer.conv.weight.shape[0] for layer in model.stem) == stem_chs
    first, second_stage = model.blocks[0], model.blocks[model.depths[0]]
    assert first.conv1.conv.weight.shape[:2] == [first_width, first_width // groups]
    assert hasattr(first.se, "conv2") == has_se
    assert hasattr(second_stage.short, "pool") == pooled_short
    assert not hasattr(first.short, "pool")  # stage 1 is downsampled by the max pool, never by the shortcut
    assert model.num_features == model.head_hidden_size == 2048


# --- PaddleClas's "ultra" options: 4-channel input, channels-last (NHWC) layers ---------------------------------

def _images(channels: int, size: int, seed: int = 1, batch: int = 2) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).standard_normal((batch, channels, size, size)).astype(
        "float32"))


def _rel_err(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def test_four_channel_nhwc_resnet50_matches_paddleclas_ultra_configuration():
    kw = dict(input_image_channel=4, data_format="NHWC")
    oracle = _oracle("ResNet50", **kw)
    model = create_model("ResNet50", **kw)
    assert model.stem[0].conv.weight.shape == [64, 4, 7, 7]
    load_pretrained(model, oracle.state_dict())
    model.eval()
    x = _images(4, 64)
    want, got = oracle(x).numpy(), model(x).numpy()
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4


@pytest.mark.parametrize("name", ["ResNet18", "ResNet50_vd", "SE_ResNeXt50_vd_32x4d"])
def test_nhwc_layers_compute_the_nchw_network_in_training_and_evaluation(name):
    """Same parameters, same function, same gradients: the layout is an execution choice only (the vd and SE
    variants cover the pooled shortcut and the SE gate's channel axis)."""
    paddle.seed(0)
    # in float64, where the two layouts' different summation orders leave no visible difference
    nchw = create_model(name, num_classes=10).to(dtype="float64")
    nhwc = create_model(name, num_classes=10, data_format="NHWC").to(dtype="float64")
    nhwc.set_state_dict(nchw.state_dict())
    x = _images(3, 32, batch=4).astype("float64")
    for mode in ("train", "eval"):
        getattr(nchw, mode)(), getattr(nhwc, mode)()
        assert _rel_err(nhwc(x).numpy(), nchw(x).numpy()) < 1e-10, mode
        assert nhwc.forward_features(x).shape == nchw.forward_features(x).shape  # the contract stays NCHW
    nchw.train(), nhwc.train()
    nchw(x).square().sum().backward()
    nhwc(x).square().sum().backward()
    checked = 0
    for (key, p), q in zip(nchw.named_parameters(), nhwc.parameters()):
        if p.grad is None:  # BatchNorm's running statistics, which `.to(dtype=...)` lists as parameters
            assert q.grad is None and key.endswith(("_mean", "_variance")), key
            continue
        assert _rel_err(q.grad.numpy(), p.grad.numpy()) < 1e-8, key
        checked += 1
    assert checked > 20
    # BatchNorm's running statistics were updated alike
    assert np.allclose(nhwc.stem[0].bn._mean.numpy(), nchw.stem[0].bn._mean.numpy(), atol=1e-6)


def test_zero_fourth_channel_leaves_the_three_channel_network_unchanged():
    paddle.seed(0)
    rgb = create_model("ResNet18_vd", num_classes=10)
    rgbz = create_model("ResNet18_vd", num_classes=10, input_image_channel=4)
    state = rgb.state_dict()
    stem = state["stem.0.conv.weight"].numpy()
    padded = np.concatenate([stem, np.random.default_rng(0).standard_normal(stem[:, :1].shape)], axis=1)
    rgbz.set_state_dict({**state, "stem.0.conv.weight": padded.astype("float32")})
    rgb.eval(), rgbz.eval()
    x = _images(3, 32)
    x4 = paddle.concat([x, paddle.zeros([2, 1, 32, 32])], axis=1)
    assert np.allclose(rgbz(x4).numpy(), rgb(x).numpy(), rtol=1e-5, atol=1e-6)


def test_bad_layout_and_layer_type_are_errors_naming_the_argument():
    with pytest.raises(ValueError, match=r"data_format must be 'NCHW' or 'NHWC', got 'CHW'"):
        create_model("ResNet18", data_format="CHW")
    with pytest.raises(ValueError, match=r"layer_type must be one of .*got 'DBB'"):
        create_model("ResNet18", layer_type="DBB")
    with pytest.raises(ValueError, match=r"use_first_short_conv=False needs the stem's 64 channels to equal the "
                                         r"first stage's 256"):
        create_model("ResNet50", use_first_short_conv=False)
    with pytest.raises(ValueError, match=r"DiverseBranchBlock.*NCHW only"):
        create_model("ResNet18", layer_type="DiverseBranchBlock", data_format="NHWC")


# --- layer_type: DiverseBranchBlock (PaddleClas's ResNet18_dbb) ---------------------------------------------------

def test_diverse_branch_resnet18_exports_as_a_plain_resnet_computing_the_same_function(tmp_path):
    from ppipe.export import export_inference_model

    paddle.seed(0)
    model = create_model("ResNet18", num_classes=10, layer_type="DiverseBranchBlock")
    keys = model.state_dict().keys()
    assert {"blocks.0.conv0.dbb_origin.conv.weight", "blocks.0.conv0.dbb_1x1_kxk.idconv1.weight",
            "blocks.0.conv1.dbb_avg.bn.bn._mean"} <= set(keys)
    assert "blocks.0.short.conv.weight" not in keys or "blocks.0.short.dbb_origin.conv.weight" not in keys
    model.train()
    for seed in range(3):  # running statistics away from their initial values
        model(_images(3, 32, seed=seed, batch=8))
    model.eval()
    x = _images(3, 32)
    want = model(x).numpy()
    report = export_inference_model(model, str(tmp_path / "inference"), (3, 32, 32))  # reparameterizes a copy
    assert report["max_rel_err"] < 1e-4
    model.reparameterize()
    assert not any(".dbb_" in k and ".dbb_reparam." not in k for k in model.state_dict())
    assert _rel_err(model(x).numpy(), want) < 1e-5


@pytest.mark.skipif(not PADDLECLAS_SRC, reason="set PADDLECLAS_SRC to a PaddleClas source tree "
                    "(the installed paddleclas 2.6.0 predates ResNet18_dbb)")
def test_diverse_branch_resnet18_loads_paddleclas_weights_and_gives_its_logits():
    PaddleClasResNet18, = from_source("ppcls.arch.backbone.legendary_models.resnet", "ResNet18")
    paddle.seed(0)
    kw = dict(layer_type="DiverseBranchBlock", use_first_short_conv=False)  # ResNet18_dbb.yaml's Arch
    oracle = PaddleClasResNet18(class_num=10, **kw)
    for layer in oracle.sublayers():
        if type(layer).__name__ == "IdentityBasedConv1x1":  # float64 in PaddleClas, which Paddle 3's conv2d refuses
            layer.id_tensor = layer.id_tensor.astype("float32")
    model = create_model("ResNet18", num_classes=10, **kw)
    assert not any(k.startswith("blocks.0.short.") for k in model.state_dict())  # the original identity shortcut
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in oracle.state_dict().items()}
    oracle.train()
    for seed in range(2):
        oracle(_images(3, 32, seed=seed, batch=8))
    load_pretrained(model, oracle.state_dict())
    oracle.eval(), model.eval()
    x = _images(3, 32)
    assert _rel_err(model(x).numpy(), oracle(x).numpy()) < 1e-5
