"""The evaluation's target table and the card's input size: every exported target with its status (a refused INT8
target with the figures its gate measured), the size the recipe evaluated and exported at, and the one reader of a
run's export.json (`RunDir.export_record`)."""

from __future__ import annotations

import json

import pytest

from ppipe.evaluation.input_size import eval_transform_size, model_input_size
from ppipe.evaluation.target_table import gate_measurement, target_table
from ppipe.train.run_dir import RunDir

GATE = {"calibration_images": 64, "fp32": {"top1": 0.925, "top5": 0.99, "num_images": 360},
        "int8": {"top1": 0.086, "top5": 0.5, "num_images": 360}, "top1_change": -0.839, "top5_change": -0.49,
        "max_top1_drop": 0.01}


def _refused(record=GATE) -> dict:
    """An INT8 entry as `ppipe.export.run` records one its gate refused: status failed, the record in the reason."""
    return {"status": "failed", "files": [], "check": {}, "measurements": {},
            "reason": f"ExportError: INT8 loses 0.8390 top-1 (> 0.01): {record}"}


def test_every_target_is_listed_with_status_reason_and_where_its_top1_was_measured():
    targets = {"paddle-inference-mkldnn": {"status": "built", "measurements": {"latency_ms_b1": 2.0}},
               "onnx": {"status": "built"},
               "tensorrt": {"status": "skipped", "reason": "no GPU on this machine\nTraceback ..."},
               "paddle-lite": {"status": "failed", "reason": "OptError: unsupported op"},
               "paddle-inference-mkldnn-int8": _refused()}
    table = target_table(targets, {"paddle-inference-mkldnn": 0.93}, {"onnx": "onnxruntime is not installed"}, 360)
    assert list(table) == sorted(targets)
    assert table["paddle-inference-mkldnn"] == {
        "status": "built", "deployable": True, "reason": None, "latency_ms_b1": 2.0, "throughput_b32": None,
        "top1": 0.93, "top5": None, "num_images": 360, "measured_on": "the val split (360 images)",
        "reference_top1": None}
    assert table["onnx"]["reason"] == "not scored: onnxruntime is not installed" and table["onnx"]["deployable"]
    assert (table["tensorrt"]["status"], table["tensorrt"]["reason"]) == ("skipped", "no GPU on this machine")
    assert (table["paddle-lite"]["status"], table["paddle-lite"]["deployable"]) == ("failed", False)
    int8 = table["paddle-inference-mkldnn-int8"]
    assert (int8["status"], int8["deployable"], int8["top1"], int8["top5"], int8["num_images"]) == (
        "refused", False, 0.086, 0.5, 360)
    assert int8["reference_top1"] == 0.925 and int8["measured_on"] == "the INT8 accuracy gate: the first 360 val images"
    assert int8["reason"] == ("refused by the export's INT8 accuracy gate: top-1 0.0860 against FP32 0.9250 (a drop "
                              "of 0.8390; at most 0.01 allowed) on the first 360 val images; not deployable, not "
                              "published")


def test_gate_figures_are_read_from_a_built_targets_check_and_numpy_reprs_in_a_reason():
    built = gate_measurement({"status": "built", "check": GATE})
    assert (built.top1, built.num_images, built.fp32_top1) == (0.086, 360, 0.925)
    numpy_repr = _refused().copy()
    numpy_repr["reason"] = numpy_repr["reason"].replace("0.086", "np.float64(0.086)")
    assert gate_measurement(numpy_repr).top1 == 0.086
    for reason in ("ExportError: no val batches", "ExportError: bad {not a dict", "x: {'int8': {'top1': 'a'}}"):
        assert gate_measurement({"status": "failed", "reason": reason}) is None, reason


@pytest.mark.parametrize("ops, expected", [
    ([{"DecodeImage": None}, {"ResizeImage": {"size": 32}}, {"ToCHWImage": None}], ((32, 32), "ResizeImage.size")),
    ([{"ResizeImage": {"resize_short": 256}}, {"CropImage": {"size": 224}}], ((224, 224), "CropImage.size")),
    ([{"ResizeImage": {"size": [40, 30]}}], ((30, 40), "ResizeImage.size")),  # PaddleClas's [w, h]
    ([{"CropImage": {"size": 224}}, {"ResizeImage": {"resize_short": 256}}], None),
    ([{"DecodeImage": None}, "ToCHWImage"], None),
])
def test_eval_transforms_give_the_size_of_their_last_fixed_size_operator(ops, expected):
    assert eval_transform_size(ops) == expected


def test_input_size_comes_from_the_export_and_eval_transforms_else_the_spec_and_says_so():
    resize32 = [{"ResizeImage": {"size": 32}}]
    both = model_input_size(resize32, (3, 32, 32), 224)
    assert (both.as_card_value(), both.source) == (32, "the eval transforms (ResizeImage.size) and the export's "
                                                       "input_shape")
    differ = model_input_size(resize32, (3, 48, 64), 224)
    assert differ.as_card_value() == "48x64" and "ResizeImage.size gives 32x32" in differ.source
    assert model_input_size(resize32, None, 224).source.endswith("the run was not exported")
    spec = model_input_size([], None, 224)
    assert spec.as_card_value() == 224 and spec.source.startswith("the architecture's spec")


def test_run_dir_reads_export_json_targets_and_input_shape_and_names_a_bad_file(tmp_path):
    rdir = RunDir(str(tmp_path))
    assert rdir.export_record().targets == {} and rdir.export_record().input_shape is None
    targets = {"onnx": {"status": "built"}, "tensorrt": {"status": "skipped", "reason": "no GPU"}}
    (tmp_path / "export.json").write_text(json.dumps({"input_shape": [3, 32, 32], "targets": targets}))
    record = rdir.export_record()
    assert record.targets == targets and record.input_shape == (3, 32, 32) and list(record.built()) == ["onnx"]
    (tmp_path / "export.json").write_text(json.dumps({"targets": {"onnx": "built"}}))
    with pytest.raises(ValueError, match=r"export.json: targets.onnx must be an object"):
        rdir.export_record()


def test_a_built_target_notes_the_cpu_engine_it_timed_and_ships():
    timed = {"status": "built", "check": {"engine": "openvino", "engines": {
        "onednn": {"status": "built", "latency_ms_b1": 2.2, "throughput_b32": 13553.1},
        "openvino": {"status": "built", "latency_ms_b1": 0.4, "throughput_b32": 16989.8}}}}
    fallback = {"status": "built", "check": {"engine": "onednn", "engines": {
        "onednn": {"status": "built"},
        "openvino": {"status": "failed", "reason": "no legacy program for the OpenVINO engine: multiply()\n..."}}}}
    table = target_table({"paddle-inference-mkldnn": timed, "paddle-inference-mkldnn-int8": fallback},
                         {"paddle-inference-mkldnn": 0.93}, {}, 360)
    assert table["paddle-inference-mkldnn"]["reason"] == (
        "engine: openvino (timed faster than onednn on the exporting machine)")
    assert table["paddle-inference-mkldnn-int8"]["reason"] == (
        "not scored: no evaluation of it was recorded; engine: onednn (openvino failed: no legacy program for the "
        "OpenVINO engine: multiply())")
    # TensorRT's check names its engine in a sentence, without candidates: no note
    trt = {"status": "built", "check": {"engine": "built by `ppipe deploy tensorrt` on a GPU node"}}
    assert target_table({"tensorrt": trt}, {"tensorrt": 0.9}, {}, 360)["tensorrt"]["reason"] is None


def test_a_built_target_without_speed_figures_says_why_the_export_measured_none():
    trt = {"status": "built", "measurements": {"note": "measured on the GPU node by `ppipe deploy tensorrt`"}}
    lite = {"status": "built", "measurements": {"note": "not measured: model.nb holds arm kernels, this host is x86"}}
    onnx = {"status": "built", "measurements": {"latency_ms_b1": 0.06, "throughput_b32": 35307.2, "note": "x"}}
    table = target_table({"tensorrt": trt, "paddle-lite": lite, "onnx": onnx}, {"tensorrt": 0.94, "onnx": 0.95},
                         {"paddle-lite": "no runtime to score paddle-lite"}, 360)
    assert table["tensorrt"]["reason"] == "speed measured on the GPU node by `ppipe deploy tensorrt`"
    assert table["tensorrt"]["latency_ms_b1"] is None and table["tensorrt"]["top1"] == 0.94
    assert table["paddle-lite"]["reason"] == ("not scored: no runtime to score paddle-lite; speed not measured: "
                                              "model.nb holds arm kernels, this host is x86")
    assert table["onnx"]["reason"] is None  # figures measured: nothing to explain
