"""`ppipe artifacts show` as text: the model card's deployment targets, each on its own line."""

from ppipe.artifacts.console import format_show


def test_show_lists_each_target_with_status_top1_and_why_not():
    card = {"targets": [
        {"name": "onnx", "status": "built", "top1": 0.9444, "num_images": 360, "latency_ms_b1": 0.41},
        {"name": "paddle-inference-mkldnn-int8", "status": "refused", "top1": 0.0972, "num_images": 256,
         "reason": "top-1 fell from 0.9444 to 0.0972 " + "x" * 400},
        {"name": "tensorrt", "status": "built", "top1": None, "reason": None},
    ]}
    text = format_show({"name": "m", "version": "v1", "files": {}, "model_card": card})
    lines = text.splitlines()
    onnx = next(line for line in lines if "onnx:" in line)
    assert "built" in onnx and "top1=0.9444 on 360 images" in onnx and "0.41 ms at batch 1" in onnx
    int8 = next(line for line in lines if "int8:" in line)
    assert "refused" in int8 and "top1=0.0972 on 256 images" in int8 and "fell from 0.9444" in int8
    assert len(int8) < 260 and int8.endswith("...)")  # the whole reason is in model_card.md
    assert "not scored" in next(line for line in lines if "tensorrt:" in line)
