"""INT8 against FP32 on this CPU: Paddle Inference's oneDNN INT8 and ONNX Runtime's static INT8 (QDQ).

A trained model (`--arch`, `--weights`: a run's model.pdparams, `--prepared`: its prepared dataset) is
exported five ways: Paddle Inference FP32 (oneDNN; and the OpenVINO engine on the legacy program, the FP32
target's other candidate engine), Paddle Inference INT8 (ppipe's PTQ, calibrated on
`--calibration` train images with the eval transforms, `enable_mkldnn_int8`; the layers it left FP32 are
listed), ONNX Runtime FP32 (paddle2onnx 2.1.0 of the FP32 export) and ONNX Runtime INT8
(`onnxruntime.quantization.quantize_static`, QDQ, per-channel weights, calibrated on the same images).
Reported for each: top-1/top-5 on the val split and images/s at batch 32 (median over `--rounds` alternating
rounds), with the INT8/FP32 ratios, the CPU model and the load average.

    python benchmarks/export_int8.py --arch MobileNetV1_x0_25 --weights run/model.pdparams \\
        --prepared data/digits32 --size 32 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.export_onednn_vs_ort import export_all, img_per_s, ort_runner  # noqa: E402
from ppipe.export.measure import cpu_model, load_average  # noqa: E402
from ppipe.inference import PredictorSettings, create_predictor, predict  # noqa: E402


def eval_config(arch: str, size: int):
    from ppipe.config import load_config

    return load_config(data={"Arch": {"name": arch}, "Global": {"image_shape": [3, size, size]},
                             "DataLoader": {"Eval": {"dataset": {"transform_ops": [
                                 {"DecodeImage": {"to_rgb": True, "channel_first": False}},
                                 {"ResizeImage": {"size": size}},
                                 {"NormalizeImage": {"scale": 1 / 255.0, "mean": [0.485, 0.456, 0.406],
                                                     "std": [0.229, 0.224, 0.225], "order": ""}},
                                 {"ToCHWImage": None}]}}}})


def ort_int8(onnx_file: str, out: str, images: list[np.ndarray]) -> str:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": x} for x in images])

        def get_next(self):
            return next(self.items, None)

    quantize_static(onnx_file, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return out


def main() -> None:
    from ppipe.export.calibration import calibration_batches
    from ppipe.export.int8 import calibrate, save_int8_program, topk_of
    from ppipe.export.run import val_batches
    from ppipe.models import create_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--prepared", required=True)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--calibration", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()

    cfg = eval_config(args.arch, args.size)
    num_classes = len(__import__("ppipe.data", fromlist=["class_names"]).class_names(args.prepared))
    model = create_model(args.arch, num_classes=num_classes, pretrained=args.weights)
    model.eval()
    images = list(calibration_batches(args.prepared, cfg, n=args.calibration, batch=32))
    with tempfile.TemporaryDirectory() as tmp:
        pdir, legacy_dir, onnx_file = export_all(model, args.size, tmp)
        qdir = os.path.join(tmp, "int8")
        quantized, _seen, fp32_layers = calibrate(model, images)
        save_int8_program(quantized, qdir, (3, args.size, args.size))
        engines = {
            "paddle_fp32": _paddle(pdir, PredictorSettings(threads=args.threads)),
            "paddle_fp32_openvino": _paddle(legacy_dir, PredictorSettings(threads=args.threads, engine="openvino")),
            "paddle_int8": _paddle(qdir, PredictorSettings(threads=args.threads, int8=True)),
            "ort_fp32": ort_runner(onnx_file, args.threads),
            "ort_int8": ort_runner(ort_int8(onnx_file, os.path.join(tmp, "int8.onnx"), images), args.threads),
        }
        report = {"cpu": cpu_model(), "load_avg_before": load_average(), "arch": args.arch, "size": args.size,
                  "calibration_images": sum(len(b) for b in images), "paddle_int8_fp32_layers": fp32_layers,
                  "engines": {}}
        for name, run in engines.items():
            report["engines"][name] = topk_of(run, val_batches(args.prepared, cfg, None))
        x = np.random.default_rng(0).standard_normal((32, 3, args.size, args.size)).astype(np.float32)
        rates = {name: [] for name in engines}
        for r in range(args.rounds):
            for name in (list(engines) if r % 2 == 0 else list(reversed(engines))):
                rates[name].append(img_per_s(engines[name], x, args.seconds))
    for name in engines:
        report["engines"][name]["img_per_s_b32"] = round(statistics.median(rates[name]), 2)
    for int8, fp32 in (("paddle_int8", "paddle_fp32"), ("paddle_int8", "paddle_fp32_openvino"),
                       ("ort_int8", "ort_fp32")):
        ratios = [i / f for i, f in zip(rates[int8], rates[fp32])]
        report[f"{int8}_over_{fp32}"] = {"median": round(statistics.median(ratios), 3),
                                         "min": round(min(ratios), 3), "max": round(max(ratios), 3)}
    report["load_avg_after"] = load_average()
    print(json.dumps(report, indent=1))


def _paddle(directory: str, settings: PredictorSettings):
    p = create_predictor(directory, settings=settings)
    return lambda x: predict(p, x)


if __name__ == "__main__":
    main()
