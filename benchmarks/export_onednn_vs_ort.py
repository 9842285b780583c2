"""Paddle Inference on the CPU (the `paddle-inference-mkldnn` target's two engines) against ONNX Runtime, same model.

Each model is exported once (ppipe's checked FP32 PIR export, the legacy program `ppipe.export.legacy` writes
for the OpenVINO engine, and paddle2onnx 2.1.0 at opset 17 for ONNX Runtime), then batch 1 and batch 32 of
random 224x224 images are timed on every engine, 2 math threads each, in alternating rounds (`--rounds`, each
engine `--seconds` per batch size per round, after warm-up runs). The contestants are the target's two
candidate configurations, `onednn` (PIR program, Paddle's oneDNN operators) and `openvino` (legacy program,
Paddle Inference's OpenVINO engine), plus every predictor configuration given with `--variant NAME=JSON` (a
`PredictorSettings` dict; `"engine": "openvino"` runs the legacy program). Reported: per variant and batch size
the median over rounds of the ratio paddle_img_per_s / ort_img_per_s, its min-max spread, the CPU model and the
load average before and after.

With `--ceiling`, each round also times a 1024x1024x1024 float32 matrix product in ONNX Runtime (MLAS's SGEMM,
same threads), the rate at which this CPU multiplies float32 matrices, and the report adds each engine's
achieved rate (the multiply-adds of one image through the convolutions and linear layers, times images per
second) as a fraction of it: how much room an FP32 engine has left to be faster than ONNX Runtime at all.

With `--bf16`, a further contestant `openvino_bf16` runs the legacy program in Paddle Inference's OpenVINO engine at
bfloat16 precision (on CPUs with AMX or AVX-512 BF16 OpenVINO computes in bf16; not an FP32 target, so the report
also gives its largest logit deviation from ONNX Runtime's FP32 logits, relative to the largest logit).

    python benchmarks/export_onednn_vs_ort.py --models ResNet50,MobileNetV3_large_x1_0 --rounds 5 --seconds 3 \\
        --variant 'no_ir={"ir_optim": false}' --variant 'cache0={"mkldnn_cache_capacity": 0}'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ppipe.export.measure import cpu_model, load_average, time_runs  # noqa: E402
from ppipe.inference import PredictorSettings, create_predictor, find_model_files, predict  # noqa: E402


def export_all(model, size: int, workdir: str, name: str = "model") -> tuple[str, str, str]:
    """(PIR folder, legacy-program folder, ONNX file) of the dygraph `model`."""
    from ppipe.export.legacy import export_legacy_model
    from ppipe.export.paddle_inference import prepare_for_export, save_checked_export

    layer, x, ref = prepare_for_export(model, (3, size, size), check_batch=1)
    legacy_dir = os.path.join(workdir, name + "-legacy")
    export_legacy_model(layer, legacy_dir, (3, size, size))  # before to_static turns `layer` into a static one
    pdir = os.path.join(workdir, name)
    save_checked_export(layer, x, ref, pdir)
    onnx_file = os.path.join(workdir, f"{name}.onnx")
    converter = shutil.which("paddle2onnx", path=os.path.dirname(sys.executable)) or "paddle2onnx"
    subprocess.run([converter, "--model_dir", pdir, "--model_filename", "model.json", "--params_filename",
                    "model.pdiparams", "--save_file", onnx_file, "--opset_version", "17"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return pdir, legacy_dir, onnx_file


def ort_runner(onnx_model: str | bytes, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(onnx_model, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def sgemm_runner(n: int, threads: int):
    """(run, its input, its multiply-adds): ONNX Runtime multiplying two n x n float32 matrices, one a constant
    weight, as in a layer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "sgemm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return ort_runner(model.SerializeToString(), threads), rng.standard_normal((n, n)).astype(np.float32), n ** 3


def openvino_bf16_runner(legacy_dir: str, threads: int, cache_dir: str):
    """Paddle Inference's OpenVINO engine at bfloat16, configured as ppipe's FP32 OpenVINO predictor is
    (`ppipe.inference`: Paddle's oneDNN off, old IR, a private compile cache) but for the precision, which
    ppipe's `PredictorSettings` do not offer."""
    from paddle import inference as pi

    config = pi.Config(*find_model_files(legacy_dir))
    config.disable_gpu()
    config.disable_mkldnn()
    config.set_cpu_math_library_num_threads(threads)
    config.disable_glog_info()
    config.enable_new_ir(False)
    config.enable_openvino_engine(pi.PrecisionType.Bfloat16)
    config.set_optim_cache_dir(cache_dir)
    predictor = pi.create_predictor(config)
    return lambda x: predict(predictor, x)


def img_per_s(run, batch: np.ndarray, seconds: float) -> float:
    times = time_runs(run, batch, warmup=2, min_runs=2, min_seconds=seconds)
    return len(batch) / statistics.median(times)


def bench_model(name: str, args, variants: dict[str, PredictorSettings]) -> dict:
    import paddle

    from ppipe.models import create_model

    paddle.seed(0)  # random weights: speed does not depend on them
    with tempfile.TemporaryDirectory() as tmp:
        pdir, legacy_dir, onnx_file = export_all(create_model(name), args.size, tmp, name)
        engines = {"ort": ort_runner(onnx_file, args.threads)}
        for vname, settings in variants.items():
            p = create_predictor(legacy_dir if settings.engine == "openvino" else pdir, settings=settings)
            engines[vname] = (lambda p: lambda x: predict(p, x))(p)
        if args.bf16:
            engines["openvino_bf16"] = openvino_bf16_runner(legacy_dir, args.threads, os.path.join(tmp, "ov-cache"))
        rng = np.random.default_rng(0)
        batches = {b: rng.standard_normal((b, 3, args.size, args.size)).astype(np.float32) for b in (1, 32)}
        if args.bf16:
            fp32 = engines["ort"](batches[32])
            bf16_error = float(np.abs(engines["openvino_bf16"](batches[32]) - fp32).max() / np.abs(fp32).max())
        rates: dict[str, dict[int, list[float]]] = {e: {1: [], 32: []} for e in engines}
        gemm_rates: list[float] = []
        if args.ceiling:
            gemm = sgemm_runner(1024, args.threads)
        for r in range(args.rounds):
            order = list(engines) if r % 2 == 0 else list(reversed(engines))  # alternate who goes first
            for b, x in batches.items():
                for e in order:
                    rates[e][b].append(img_per_s(engines[e], x, args.seconds))
            if args.ceiling:
                gemm_rates.append(macs_per_s(gemm, args.seconds))
    out = {}
    if args.ceiling:
        out["ceiling"] = ceiling_fractions(name, args.size, rates, gemm_rates)
    if args.bf16:
        out["openvino_bf16_max_rel_logit_error"] = float(f"{bf16_error:.2e}")
    for vname in [*variants, *(["openvino_bf16"] if args.bf16 else [])]:
        for b in (1, 32):
            ratios = [o / r for o, r in zip(rates[vname][b], rates["ort"][b])]
            out[f"{vname}/b{b}"] = {"ratio_median": round(statistics.median(ratios), 3),
                                    "ratio_min": round(min(ratios), 3), "ratio_max": round(max(ratios), 3),
                                    "paddle_img_per_s": round(statistics.median(rates[vname][b]), 2),
                                    "ort_img_per_s": round(statistics.median(rates["ort"][b]), 2)}
    return out


def macs_per_s(gemm, seconds: float) -> float:
    run, x, macs = gemm
    return macs / statistics.median(time_runs(run, x, warmup=2, min_runs=2, min_seconds=seconds))


def conv_linear_macs(model, size: int) -> int:
    """Multiply-adds of one image through the model's convolutions and linear layers (what the engines spend
    their arithmetic on; attention's matrix products are not counted, the two default models have none)."""
    import paddle
    from paddle import nn

    total = [0]

    def count(layer, inputs, output):
        if isinstance(layer, nn.Conv2D):
            kh, kw = layer.weight.shape[2:]
            total[0] += output.numel().item() * layer.weight.shape[1] * kh * kw
        else:
            total[0] += output.numel().item() * layer.weight.shape[0]

    hooks = [m.register_forward_post_hook(count) for m in model.sublayers() if isinstance(m, (nn.Conv2D, nn.Linear))]
    model.eval()
    with paddle.no_grad():
        model(paddle.zeros([1, 3, size, size]))
    for h in hooks:
        h.remove()
    return total[0]


def ceiling_fractions(name: str, size: int, rates: dict, gemm_rates: list[float]) -> dict:
    """Per engine and batch size: achieved multiply-adds per second / the SGEMM rate of the same round (median
    over rounds), beside the SGEMM rate itself."""
    from ppipe.models import create_model

    macs = conv_linear_macs(create_model(name), size)
    out = {"model_gmacs_per_image": round(macs / 1e9, 3),
           "sgemm_gmacs_per_s": round(statistics.median(gemm_rates) / 1e9, 1)}
    for engine, by_batch in rates.items():
        for b, img_rates in by_batch.items():
            out[f"{engine}/b{b}"] = round(statistics.median(
                [i * macs / g for i, g in zip(img_rates, gemm_rates)]), 3)
    return out


def parse_variants(items: list[str], threads: int) -> dict[str, PredictorSettings]:
    variants = {"onednn": PredictorSettings(threads=threads),
                "openvino": PredictorSettings(threads=threads, engine="openvino")}
    for item in items:
        vname, _, text = item.partition("=")
        variants[vname] = PredictorSettings.from_dict({"threads": threads, **json.loads(text)}, f"--variant {vname}")
    return variants


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="ResNet50,MobileNetV3_large_x1_0")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per engine, batch size and round")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="another Paddle Inference predictor configuration (PredictorSettings fields)")
    ap.add_argument("--ceiling", action="store_true",
                    help="also time an FP32 matrix product each round and report each engine's share of its rate")
    ap.add_argument("--bf16", action="store_true",
                    help="also time the OpenVINO engine at bfloat16 precision (contestant openvino_bf16)")
    args = ap.parse_args()
    variants = parse_variants(args.variant, args.threads)
    report = {"cpu": cpu_model(), "load_avg_before": load_average(), "threads": args.threads,
              "rounds": args.rounds, "variants": {k: v.to_dict() for k, v in variants.items()}, "models": {}}
    t0 = time.time()
    for name in args.models.split(","):
        report["models"][name] = bench_model(name, args, variants)
        print(name, json.dumps(report["models"][name]), file=sys.stderr, flush=True)
    report.update(load_avg_after=load_average(), wall_s=round(time.time() - t0, 1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
