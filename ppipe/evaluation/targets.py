"""The top-1 of each built deployment target (`<run>/export.json`) on the same val split as the model, scored
on the Ray workers like the model: Paddle Inference targets through `ppipe.inference`, ONNX through ONNX Runtime
where it is installed, and TensorRT through its explicitly quantized INT8 model in ONNX Runtime (`SCORED_AS`
says what such a stand-in measures). A target this machine cannot run is left out with the reason;
`target_table` lists every target, scored or not, built or not."""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ppipe.config import Config
from ppipe.evaluation.model_scoring import REPORT_KEY
from ppipe.evaluation.runner import Counts, run_sharded
from ppipe.export.int8 import INT8_TARGET
from ppipe.export.paddle_inference import PREDICTOR
from ppipe.export.tensorrt import TENSORRT_TARGET as TENSORRT
from ppipe.export.tensorrt_qdq import QDQ_ONNX
from ppipe.registry import Registry
from ppipe.report import EvalAccumulator

log = logging.getLogger("ppipe.evaluation")

Predict = Callable[[np.ndarray], np.ndarray]

# {target name: (target folder, math threads) -> predict(images) -> logits}
TARGET_RUNTIMES: Registry[Callable[[str, int], Predict]] = Registry("target runtime")

# What a target's top-1 is a measurement of, where that is not the target's own runtime (the report says it).
SCORED_AS = {
    TENSORRT: (f"its INT8 Q/DQ model ({QDQ_ONNX}) in ONNX Runtime on the CPU, the network TensorRT's explicit INT8 "
               "engine builds; the engines themselves are checked by `ppipe deploy tensorrt` on a GPU node"),
}


def _paddle_inference(directory: str, threads: int) -> Predict:
    from ppipe.inference import create_predictor, predict

    predictor = create_predictor(directory, threads=threads)  # the shipped predictor.json, more threads
    return lambda images: predict(predictor, images)


TARGET_RUNTIMES.register(_paddle_inference, name=PREDICTOR)
TARGET_RUNTIMES.register(_paddle_inference, name=INT8_TARGET)


def _onnx_runtime_session(path: str, threads: int) -> Predict:
    from ppipe.export.onnx import onnx_session, run_onnx

    session = onnx_session(path, threads)  # the session the export checked the model with
    return lambda images: run_onnx(session, images)


@TARGET_RUNTIMES.register(name="onnx")
def _onnx_runtime(directory: str, threads: int) -> Predict:
    models = sorted(glob.glob(os.path.join(directory, "*.onnx")))
    if len(models) != 1:
        raise FileNotFoundError(f"{directory}: expected one .onnx model, found {[os.path.basename(m) for m in models]}")
    return _onnx_runtime_session(models[0], threads)


@TARGET_RUNTIMES.register(name=TENSORRT)
def _tensorrt_int8_on_onnx_runtime(directory: str, threads: int) -> Predict:
    # No GPU on the CPU workers: ONNX Runtime runs the Q/DQ model TensorRT's INT8 engine is built from, which is
    # how the export checked it (ppipe.export.tensorrt_qdq) and the only TensorRT figure a CPU can give.
    return _onnx_runtime_session(os.path.join(directory, QDQ_ONNX), threads)


def _unavailable(target: str, directory: str) -> str | None:
    """Why `target` (built in `directory`) cannot be scored here (None: it can)."""
    if target not in TARGET_RUNTIMES:
        return f"no runtime to score {target} with on the CPU workers (scored: {', '.join(TARGET_RUNTIMES.names())})"
    if target in ("onnx", TENSORRT):
        import importlib.util

        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed"
    if target == TENSORRT and not os.path.isfile(os.path.join(directory, QDQ_ONNX)):
        return (f"the export shipped no INT8 Q/DQ model ({QDQ_ONNX}; its check.int8_explicit says why) for ONNX "
                "Runtime to score on the CPU workers; TensorRT's engines are checked by `ppipe deploy tensorrt` on "
                "a GPU node")
    return None


@dataclass(frozen=True)
class TargetScorer:
    """Scores the deployment target `target` in folder `directory` (readable from every worker, as run folders
    are) on `split`."""

    cfg: Config
    prepared: str
    split: str
    target: str
    directory: str
    num_classes: int
    threads: int

    def __call__(self, rank: int, world_size: int) -> Counts:
        from ppipe.evaluate import eval_batches, eval_transform_ops

        run = TARGET_RUNTIMES.get(self.target)(self.directory, self.threads)
        accumulator = EvalAccumulator.empty(self.num_classes)
        batch = (self.cfg.DataLoader.Eval or self.cfg.DataLoader.Train).sampler.batch_size
        for images, labels in eval_batches(self.prepared, self.split, eval_transform_ops(self.cfg), batch,
                                           rank=rank, world_size=world_size):
            accumulator.update(run(images), labels)
        return {REPORT_KEY: accumulator.to_flat()}


def score_targets(cfg: Config, built: Iterable[str], exports: str, prepared: str, class_names: list[str], *,
                  split: str = "val") -> tuple[dict[str, float], dict[str, str]]:
    """({target: top-1}, {target: why it was not scored}) of the `built` targets of a run
    (`RunDir.export_record().built()`), whose files lie under `exports/<target>/`. A target that fails to run is
    reported, not raised: the model's own evaluation must not be lost to it."""
    from ppipe.train.trainer import math_threads_per_worker

    threads = math_threads_per_worker(cfg)[0]
    scored, skipped = {}, {}
    for target in sorted(built):
        directory = os.path.join(exports, target)
        reason = unavailable = _unavailable(target, directory)
        if reason is None:
            scorer = TargetScorer(cfg, prepared, split, target, directory, len(class_names), threads)
            try:
                flat = run_sharded(scorer, cfg, use_gpu=False)[REPORT_KEY]
            except Exception as e:  # noqa: BLE001 - one target's failure must not stop the evaluation
                reason = f"scoring failed: {type(e).__name__}: {e}"
        if reason:
            skipped[target] = reason
            # no runtime here (an ARM or GPU target on CPU workers) is expected; a target that fails to run is not
            (log.info if unavailable else log.warning)("target %s not scored: %s", target, reason)
            continue
        scored[target] = EvalAccumulator.from_flat(flat, len(class_names)).finalize(class_names).top1
        log.info("target %s: top-1 %.4f on %s", target, scored[target], split)
    return scored, skipped
