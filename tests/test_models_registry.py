"""The model registry and the zoo's contract: names, published specs, parameter counts, shapes, gradients."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import paddle
import pytest

from ppipe.models import (DuplicateModelError, UnknownModelError, create_model, get_spec, list_models, models_table,
                          register_model, spec)

from tests.zoo_cases import ALL, REPRESENTATIVES, test_input_size, zoo_params

ZOO_CSV = Path(__file__).resolve().parents[2] / "shared/reference/paddleclas_imagenet1k_zoo.csv"


@pytest.fixture(scope="module")
def zoo_archs() -> dict[str, dict]:
    """The reference table per architecture: figures of its `in1k` row (else its first) and all its weight tags."""
    if not ZOO_CSV.exists():
        pytest.skip(f"reference zoo table not found at {ZOO_CSV} (it lives beside the repo, in shared/)")
    archs: dict[str, dict] = {}
    with ZOO_CSV.open(newline="") as f:
        for row in csv.DictReader(f):
            entry = archs.setdefault(row["arch"], {"rows": [], "weights": []})
            entry["rows"].append(row)
            if row["weights"] not in entry["weights"]:
                entry["weights"].append(row["weights"])
    for entry in archs.values():
        entry["row"] = next((r for r in entry["rows"] if r["weights"] == "in1k"), entry["rows"][0])
    return archs


def _num_params(model: paddle.nn.Layer) -> int:
    # BatchNorm's running mean/variance are (non-trainable) parameters in Paddle, and the reference counts them.
    return sum(int(np.prod(p.shape)) for p in model.parameters())


def test_list_models_returns_sorted_names_matching_the_pattern():
    assert ALL == sorted(ALL) and len(ALL) == len(set(ALL)) and {"PPLCNet_x0_25", "MobileNetV3_large_x1_0"} <= set(ALL)
    assert list_models("PPLCNet_*") == [f"PPLCNet_x{w}" for w in
                                        ("0_25", "0_35", "0_5", "0_75", "1_0", "1_5", "2_0", "2_5")]
    assert list_models("MobileNetV3_small_*") == sorted(f"MobileNetV3_small_x{w}" for w in
                                                        ("0_35", "0_5", "0_75", "1_0", "1_25"))
    assert list_models("M*V3_*_x1_0") == ["MobileNetV3_large_x1_0", "MobileNetV3_small_x1_0"]
    assert list_models("NoSuchNet*") == []


def test_unknown_model_name_error_lists_the_closest_names():
    with pytest.raises(UnknownModelError) as info:
        create_model("MobileNetV3_large_x1")
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert "MobileNetV3_large_x1_0" in str(info.value)
    with pytest.raises(KeyError, match="PPLCNet_x1_0"):
        get_spec("PPLCNet_x1")


def test_registering_a_taken_name_is_an_error_and_keeps_the_original():
    before = get_spec("MobileNetV3_small_x0_35")

    def MobileNetV3_small_x0_35(**kw):  # noqa: N802 - the clash is the point
        raise AssertionError("must never be registered")

    with pytest.raises(DuplicateModelError, match="MobileNetV3_small_x0_35"):
        register_model(spec(family="X", params_m=1, flops_g=1, top1=0.5))(MobileNetV3_small_x0_35)
    with pytest.raises(ValueError, match="PPLCNet_x1_0"):
        register_model(spec(family="X", params_m=1, flops_g=1, top1=0.5, name="PPLCNet_x1_0"))(lambda **kw: None)
    assert get_spec("MobileNetV3_small_x0_35") == before
    assert create_model("MobileNetV3_small_x0_35").num_classes == 1000


def test_every_registered_spec_matches_the_reference_zoo_table(zoo_archs):
    for name in ALL:
        s, entry = get_spec(name), zoo_archs.get(name)
        assert entry is not None, f"{name} is not an architecture of the reference zoo table"
        row = entry["row"]
        assert (s.name, s.family, s.params_m, s.flops_g, s.top1, s.input_size, s.weights) == (
            name, row["family"], float(row["params_m"]), float(row["flops_g"]), float(row["top1"]),
            int(row["input_size"]), tuple(entry["weights"])), name


def test_every_architecture_of_an_implemented_family_is_registered(zoo_archs):
    families = {get_spec(n).family for n in ALL}
    expected = sorted(a for a, e in zoo_archs.items() if e["row"]["family"] in families)
    assert ALL == expected


def test_models_table_lists_name_family_params_and_input_size():
    rows = models_table("PPLCNet_x1_*")
    assert rows == [{"name": "PPLCNet_x1_0", "family": "PPLCNet", "params_m": 2.96, "input_size": 224},
                    {"name": "PPLCNet_x1_5", "family": "PPLCNet", "params_m": 4.52, "input_size": 224}]


@pytest.mark.parametrize("name", zoo_params())
def test_parameter_count_is_within_1_percent_of_paddleclas(name, zoo_archs):
    row = zoo_archs[name]["row"]
    # ref_params_m is PaddleClas 2.6's own count; the table leaves it empty where PaddleClas has no
    # constructor (SE_HRNet_W64_C), and then the published figure is the reference.
    ref = float(row["ref_params_m"] or row["params_m"]) * 1e6
    count = _num_params(create_model(name))
    assert abs(count - ref) / ref < 0.01, f"{name}: {count} parameters, PaddleClas has {ref:.0f}"


@pytest.mark.parametrize("name", zoo_params())
def test_forward_and_backward_on_a_small_input_reach_every_parameter(name):
    paddle.seed(0)
    model = create_model(name, num_classes=10)
    model.train()
    size = test_input_size(name, preferred=32)
    x = paddle.randn([2, 3, size, size])
    out = model(x)
    # Training-only auxiliary heads (GoogLeNet) come as a list after the main logits, as in PaddleClas.
    heads = out if isinstance(out, (list, tuple)) else [out]
    logits = heads[0]
    assert logits.shape == [2, 10]
    paddle.add_n([h.mean() for h in heads]).backward()
    without_grad = [p.name for p in model.parameters() if not p.stop_gradient and p.grad is None]
    assert without_grad == []
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if not p.stop_gradient) > 0
    assert all(np.isfinite(p.grad.numpy()).all() for p in model.parameters() if not p.stop_gradient)


@pytest.mark.parametrize("name", zoo_params())
def test_contract_shapes_of_features_head_and_reset_classifier_agree(name):
    model = create_model(name)
    model.eval()
    size = test_input_size(name)
    x = paddle.randn([1, 3, size, size])
    feats = model.forward_features(x)
    # CNNs return [N, C, H, W] maps, transformers [N, tokens, C]: either way the channels are num_features
    assert feats.shape[0] == 1 and model.num_features in feats.shape[1:]
    pre = model.forward_head(feats, pre_logits=True)
    assert pre.shape == [1, model.head_hidden_size]
    logits = model.forward_head(feats)
    assert logits.shape == [1, 1000]
    np.testing.assert_allclose(model(x).numpy(), logits.numpy(), rtol=1e-6)
    model.reset_classifier(7)
    assert model.num_classes == 7 and model(x).shape == [1, 7]
    model.reset_classifier(0)
    assert model(x).shape == [1, model.head_hidden_size]


def test_num_classes_and_paddleclas_class_num_set_the_classifier_width():
    assert create_model("PPLCNet_x0_25", num_classes=10).fc.weight.shape == [1280, 10]
    assert create_model("PPLCNet_x0_25", class_num=5).fc.weight.shape == [1280, 5]
    with pytest.raises(ValueError, match="disagree"):
        create_model("PPLCNet_x0_25", num_classes=10, class_num=5)


def test_unknown_constructor_argument_is_an_error_naming_it():
    with pytest.raises(TypeError, match="no_such_option"):
        create_model("MobileNetV3_small_x0_35", no_such_option=1)


@pytest.mark.parametrize("name", ["MobileNetV3_small_x0_35", "PPLCNet_x0_25"])
def test_dropout_scales_pre_logits_at_inference_like_paddleclas(name):
    # PaddleClas's "downscale_in_infer" dropout multiplies by (1 - p) in eval; its weights were trained that way.
    x = paddle.randn([1, 3, 32, 32])
    outs = {}
    for p in (0.5, 0.0):
        paddle.seed(1)
        model = create_model(name, dropout_prob=p)
        model.eval()
        outs[p] = model.forward_head(model.forward_features(x), pre_logits=True).numpy()
    assert np.abs(outs[0.0]).max() > 0
    np.testing.assert_allclose(outs[0.5], 0.5 * outs[0.0], rtol=1e-5, atol=1e-7)


def test_pplcnet_without_last_conv_feeds_pooled_features_to_fc():
    model = create_model("PPLCNet_x0_25", use_last_conv=False, num_classes=3)
    assert model.head_hidden_size == model.num_features == 128
    assert "last_conv.weight" not in model.state_dict()
    assert model(paddle.randn([1, 3, 32, 32])).shape == [1, 3]


def test_models_are_built_with_fresh_parameter_names():
    # unique_name.guard(): the same architecture built twice gets the same global parameter names.
    a, b = create_model("PPLCNet_x0_25"), create_model("PPLCNet_x0_25")
    assert [p.name for p in a.parameters()] == [p.name for p in b.parameters()]
    assert create_model("PPLCNet_x0_25").spec == get_spec("PPLCNet_x0_25")
