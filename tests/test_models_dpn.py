"""DPN: the features concatenate both paths, and PaddleClas's layer names map onto ppipe's."""

from __future__ import annotations

import paddle

from ppipe.models import create_model


def test_dpn_features_concatenate_the_residual_and_the_grown_dense_path():
    model = create_model("DPN68")
    model.eval()
    # last stage: residual 512 channels; dense path 2 x 64 from the projection + 64 per block (3 blocks)
    assert model.num_features == 512 + (2 + 3) * 64
    residual, dense = model.blocks(model.stem_pool(model.stem(paddle.randn([1, 3, 64, 64]))))
    assert residual.shape[1] == 512 and dense.shape[1] == 320


def test_paddleclas_dpn_keys_map_onto_ppipe_keys_and_ppipe_keys_pass_unchanged():
    model = create_model("DPN68")
    mapping = {"conv1_x_1_func._batch_norm.weight": "stem.bn.weight",
               "dpn4.c1x1_w_func._conv.weight": "blocks.3.proj.conv.weight",
               "dpn5.c1x1_a_func._batch_norm._mean": "blocks.4.conv1.bn._mean",
               "dpn22.c3x3_b_func._conv.weight": "blocks.21.conv2.conv.weight",
               "dpn1.c1x1_c_func._batch_norm.bias": "blocks.0.conv3.bn.bias",
               "conv5_x_x_bn._variance": "final_bn._variance", "out.weight": "fc.weight"}
    assert model.remap_checkpoint(dict.fromkeys(mapping)) == dict.fromkeys(mapping.values())
    keys = list(model.state_dict())
    assert set(mapping.values()) <= set(keys)
    assert list(model.remap_checkpoint(dict.fromkeys(keys))) == keys
