"""Model cards: the spec, the comparison with PaddleClas's published top-1, targets, lineage and figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ppipe.report import build_model_card, evaluate_logits, published_results, write_model_card

SHARED_ZOO_CSV = Path(__file__).resolve().parents[2] / "shared/reference/paddleclas_imagenet1k_zoo.csv"
PACKAGED_ZOO_CSV = Path(__file__).resolve().parents[1] / "ppipe/report/paddleclas_imagenet1k_zoo.csv"
IMAGES = {"reliability": "eval/reliability.png", "confusion_matrix": "eval/confusion_matrix.png"}


def _report(num_classes: int, top1_hits: int, num_images: int = 20):
    """A report whose top-1 is exactly top1_hits / num_images."""
    labels = np.arange(num_images) % num_classes
    predicted = labels.copy()
    predicted[top1_hits:] = (labels[top1_hits:] + 1) % num_classes
    logits = np.zeros((num_images, num_classes), np.float32)
    logits[np.arange(num_images), predicted] = 4.0
    return evaluate_logits(logits, labels, [f"class_{c}" for c in range(num_classes)])


def _card(arch: str, num_classes: int, report, **overrides):
    kwargs = dict(arch=arch, num_classes=num_classes, class_names=report.class_names,
                  recipe_yaml="Arch:\n  name: X\n# ```not a fence end```\n", data_version="prepared@sha256:1234",
                  report=report, targets={}, lineage={"run_name": "run-7", "git_commit": "0badc0de",
                                                      "flow_run_id": None}, images=IMAGES)
    return build_model_card(**{**kwargs, **overrides})


def test_packaged_reference_table_is_the_shared_one():
    if not SHARED_ZOO_CSV.exists():
        pytest.skip(f"shared reference table not found at {SHARED_ZOO_CSV}")
    assert PACKAGED_ZOO_CSV.read_bytes() == SHARED_ZOO_CSV.read_bytes()


def test_published_results_list_the_in1k_weights_first():
    rows = published_results("MobileNetV3_large_x1_0")
    assert [(r.model, r.weights, r.top1) for r in rows] == [("MobileNetV3_large_x1_0", "in1k", 0.7532),
                                                             ("MobileNetV3_large_x1_0_ssld", "ssld", 0.7896)]
    assert published_results("NoSuchNet") == []


def test_zoo_arch_card_shows_the_published_top1_and_the_delta():
    report = _report(1000, top1_hits=3000, num_images=4000)  # top-1 exactly 0.75
    card = _card("MobileNetV3_large_x1_0", 1000, report)
    published = card.json["published"]
    assert published["applies"] and published["reason"] is None
    in1k = published["results"][0]
    assert in1k["top1"] == 0.7532 and in1k["delta_top1"] == pytest.approx(0.75 - 0.7532)
    assert "| MobileNetV3_large_x1_0 | in1k | 224 | 75.32% | 75.00% | -0.32 pp |" in card.markdown
    assert "| MobileNetV3_large_x1_0_ssld | ssld | 224 | 78.96% | 75.00% | -3.96 pp |" in card.markdown
    from ppipe.models import get_spec

    spec, model = get_spec("MobileNetV3_large_x1_0"), card.json["model"]
    assert (model["family"], model["params_m"], model["flops_g"], model["input_size"]) == (
        "MobileNetV3", spec.params_m, spec.flops_g, 224)
    assert f"| Parameters (ImageNet-1k head) | {spec.params_m} M |" in card.markdown


def test_arch_without_published_figure_says_so(monkeypatch):
    # every registered architecture is in PaddleClas's list today; a reference table without it is the case of a
    # zoo addition PaddleClas never published
    from ppipe.report import reference

    monkeypatch.setattr(reference, "_table", lambda: {})
    card = _card("ResNet50_vd", 1000, _report(1000, 10))
    assert card.json["published"] == {"applies": False, "results": [], "reason": (
        "No published figure: PaddleClas publishes no ImageNet-1k result for ResNet50_vd.")}
    assert "No published figure" in card.markdown and "| Family | ResNet |" in card.markdown


def test_comparison_does_not_apply_to_another_number_of_classes():
    card = _card("ResNet50_vd", 10, _report(10, 15))
    published = card.json["published"]
    assert not published["applies"] and "does not apply: this model has 10 classes" in published["reason"]
    assert all(r["delta_top1"] is None for r in published["results"]) and published["results"]
    assert "does not apply" in card.markdown and " pp |" not in card.markdown


def test_card_tables_targets_lineage_recipe_and_embeds_figures(tmp_path):
    report = _report(10, 15).with_target_top1({"onnx": 0.7})
    targets = {"onnx": {"status": "built", "latency_ms_b1": 3.21, "throughput_b32": 812.0},
               "paddle-inference-mkldnn-int8": {"status": "built", "latency_ms_b1": 1.5, "throughput_b32": 1400.0,
                                                "top1": 0.7},
               "tensorrt": {"status": "skipped", "reason": "no GPU on this machine"}}
    card = _card("ResNet50_vd", 10, report, targets=targets)
    md = card.markdown
    # top-1 from the report's targets, on the report's images
    assert ("| onnx | built | yes | 3.21 | 812.0 | 70.00% | — | the evaluation's split (20 images) | -5.00 pp | — |"
            in md)
    assert "| paddle-inference-mkldnn-int8 | built | yes | 1.50 | 1400.0 | 70.00% | — | — | -5.00 pp | — |" in md
    assert "| tensorrt | skipped | no | — | — | — | — | — | — | no GPU on this machine |" in md
    assert "| Git commit | 0badc0de |" in md and "flow run" not in md  # only what lineage holds
    assert "![Reliability diagram](eval/reliability.png)" in md
    assert "![Confusion matrix](eval/confusion_matrix.png)" in md
    assert "````yaml\nArch:\n  name: X\n# ```not a fence end```\n````" in md
    assert card.json["images"] == IMAGES and card.json["calibration"]["num_bins"] == 15
    md_url, json_url = write_model_card(card, str(tmp_path / "card"))
    assert Path(md_url).read_text() == md and json.loads(Path(json_url).read_text()) == card.json


def test_refused_target_shows_the_gate_figures_against_fp32_on_the_same_images():
    refused = {"status": "refused", "deployable": False, "top1": 0.086, "top5": 0.5, "num_images": 360,
               "measured_on": "the INT8 accuracy gate: the first 360 val images", "reference_top1": 0.925,
               "reason": "refused by the export's INT8 accuracy gate"}
    card = _card("ResNet50_vd", 10, _report(10, 15), targets={"paddle-inference-mkldnn-int8": refused})
    (row,) = card.json["targets"]
    assert row["delta_top1"] == pytest.approx(0.086 - 0.925)  # not against the model's 75% on the whole split
    assert ("| paddle-inference-mkldnn-int8 | refused | no | — | — | 8.60% | 50.00% | the INT8 accuracy gate: the "
            "first 360 val images | -83.90 pp | refused by the export's INT8 accuracy gate |") in card.markdown


def test_card_states_the_input_size_it_is_given_and_where_it_came_from():
    card = _card("ResNet50_vd", 10, _report(10, 15), input_size=32, input_size_source="the eval transforms")
    model = card.json["model"]
    assert (model["input_size"], model["input_size_source"], model["spec_input_size"]) == (
        32, "the eval transforms", 224)
    assert "| Input size | 32 x 32 |" in card.markdown and "| Input size from | the eval transforms |" in card.markdown
    spec = _card("ResNet50_vd", 10, _report(10, 15)).json["model"]
    assert spec["input_size"] == 224 and spec["input_size_source"].startswith("the architecture's spec")


def test_recorded_lineage_reads_as_rows_and_points_to_the_sections_that_show_data_and_recipe():
    lineage = {"code": {"commit": "0badc0de", "dirty": True}, "data": {"url": "d", "splits": {"val": 20}},
               "config": {"Arch": {"name": "X"}}, "run_name": "run-7", "class_names": ["n0", "n1"],
               "parents": [{"role": "teacher", "path": "/t.pdparams", "sha256": "ab" * 32, "ref": "t:v2"}],
               "preprocessing": [{"ResizeImage": {"size": 32}}, {"ToCHWImage": None}]}
    md = _card("ResNet50_vd", 10, _report(10, 15), lineage=lineage, data_version=lineage["data"]).markdown
    assert "| Git commit | 0badc0de (uncommitted changes) |" in md
    assert "| Parents | teacher: t:v2 sha256 abababababab |" in md
    assert "| Preprocessing (eval transforms) | ResizeImage(size=32) → ToCHWImage() |" in md
    assert "| Config | in the Recipe section |" in md and "| Data | in the Data section |" in md
    assert "| Class ids (dataset folders) | `n0`, `n1` |" in md and "| splits | val: 20 |" in md
    assert "{'" not in md  # no Python repr of a nested value


@pytest.mark.parametrize("overrides, message", [
    ({"images": {"reliability": "/abs/reliability.png"}}, "must be a relative path inside the artifact"),
    ({"images": {"reliability": "../reliability.png"}}, "must be a relative path inside the artifact"),
    ({"targets": {"onnx": {"latency": 3}}}, r"targets\['onnx'\] has unknown keys \['latency'\]"),
    ({"num_classes": 11}, "num_classes=11, but class_names has 10 names"),
])
def test_bad_card_inputs_are_refused_naming_the_input(overrides, message):
    with pytest.raises(ValueError, match=message):
        _card("ResNet50_vd", overrides.pop("num_classes", 10), _report(10, 15), **overrides)
