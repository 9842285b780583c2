"""ResNet lineage (ResNet, ResNeXt, SENet, ResNeXt101_wsl): behaviour beyond the zoo-wide tests."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from ppipe.models import create_model, load_pretrained
from ppipe.models.resnet import PADDLECLAS_V1_KEYS
from ppipe.models.resnext101_wsl import WSL_KEYS


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
    assert PADDLECLAS_V1_KEYS.rename("bb_1_0.scale.excitation.weight", depths) == "blocks.3.se.excitation.weight"
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
    assert hasattr(first.se, "excitation") == has_se
    assert hasattr(second_stage.short, "pool") == pooled_short
    assert not hasattr(first.short, "pool")  # stage 1 is downsampled by the max pool, never by the shortcut
    assert model.num_features == model.head_hidden_size == 2048
