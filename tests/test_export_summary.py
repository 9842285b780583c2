"""`ppipe export` without --json: one line per target for a person (`ppipe.export.summary`), the record's path."""

from __future__ import annotations

from ppipe.export.summary import summary_lines

RESULT = {
    "input_shape": [3, 32, 32],
    "targets": {
        "onnx": {"status": "built", "check": {"max_rel_err": 8.44e-07},
                 "measurements": {"latency_ms_b1": 0.149, "throughput_b32": 17358.65}},
        "paddle-inference-mkldnn": {"status": "built", "check": {
            "max_rel_err": 1.06e-06, "engine": "openvino",
            "engines": {"onednn": {"status": "built"}, "openvino": {"status": "built"}}},
            "measurements": {"latency_ms_b1": 0.137, "throughput_b32": 38838.96}},
        "paddle-inference-mkldnn-int8": {"status": "built", "check": {
            "fp32": {"top1": 0.9417}, "int8": {"top1": 0.9389}, "top1_change": -0.0028},
            "measurements": {"latency_ms_b1": 1.585, "throughput_b32": 11373.59}},
        "paddle-lite": {"status": "skipped", "reason": "no Python 3.10 for Paddle-Lite's converter"},
        "tensorrt": {"status": "built", "check": {"max_rel_err": 8.44e-07},
                     "measurements": {"note": "measured on the GPU node by `ppipe deploy tensorrt`"}},
    },
    "report": "/runs/quickstart/export.json",
}


def test_one_line_per_target_with_its_check_speed_and_engine():
    lines = summary_lines(RESULT)
    assert lines[0] == "exported at input 3x32x32: 4 of 5 target(s) built"
    assert lines[1:6] == [
        "  onnx                          built  max_rel_err 8.4e-07  0.149 ms at batch 1, 17359 img/s at batch 32",
        "  paddle-inference-mkldnn       built  max_rel_err 1.1e-06  0.137 ms at batch 1, 38839 img/s at batch 32"
        "  engine openvino",
        "  paddle-inference-mkldnn-int8  built  top-1 -0.3 pt (94.2% -> 93.9%)  1.58 ms at batch 1, 11374 img/s at "
        "batch 32",
        "  paddle-lite                   skipped: no Python 3.10 for Paddle-Lite's converter",
        "  tensorrt                      built  max_rel_err 8.4e-07  measured on the GPU node by `ppipe deploy "
        "tensorrt`",
    ]
    assert lines[6] == "the record (checks, engines, measurements): /runs/quickstart/export.json"


def test_other_weights_name_where_they_went_and_nothing_measured_is_left_out():
    result = {"input_shape": [3, 16, 16], "out": "/exports/m1", "targets": {
        "paddle-inference-mkldnn": {"status": "built", "check": {"max_rel_err": 0.0}, "measurements": {}}}}
    assert summary_lines(result) == ["exported at input 3x16x16 into /exports/m1: 1 of 1 target(s) built",
                                     "  paddle-inference-mkldnn  built  max_rel_err 0.0e+00"]
