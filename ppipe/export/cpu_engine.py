"""Which of Paddle Inference's two CPU engines the FP32 x86 target (`paddle-inference-mkldnn`) ships, chosen by
timing both on the machine that exports.

- `onednn`: the checked PIR export (``model.json``) on Paddle's operators with oneDNN kernels.
- `openvino`: the same model as a legacy program (``model.pdmodel``, `ppipe.export.legacy`) in Paddle Inference's
  OpenVINO engine, which hands the whole program to OpenVINO's CPU plugin (graph compiler on oneDNN kernels).

Why both: on the 2-vCPU Xeon this project runs on, Paddle's oneDNN predictor reached 0.53-0.84x of ONNX Runtime,
and at batch 1 about half of its time is Paddle's per-operator work around oneDNN's kernels; the OpenVINO engine of
the same Paddle wheel, one compiled graph, ran the same models faster (figures: benchmarks/README.md). Which wins
depends on the model and the CPU, so `Export.cpu_engine: auto` (the default) builds and checks each, measures
each with the export's own measurement (batch 1 latency, batch 32 throughput), and ships the faster (the
geometric mean of the two speed ratios decides); the legacy program is the export's one
(`ExportContext.legacy_program`), which Paddle-Lite reads too; the target's check record names the engine
shipped and keeps every candidate's figures or the reason it could not be one. `onednn` or `openvino` ships that
engine only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import statistics
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from ppipe import inference as _inference
from ppipe import storage
from ppipe.export import openvino_diagnosis
from ppipe.export.logits_check import ExportError
from ppipe.export.targets import ExportContext, TargetResult

__all__ = ["ENGINE_CHOICES", "CHOICE_ROUNDS", "requested_engines", "faster_engine", "timed_in_rounds",
           "tuned_cpu_target"]

ENGINE_CHOICES = ("auto", *_inference.ENGINES)
CHOICE_ROUNDS = 3  # interleaved timing rounds when engines compete (`timed_in_rounds`)


def requested_engines(settings: Any) -> tuple[str, ...]:
    """The engines `Export.cpu_engine` asks for: the one named, or for `auto` (the default) both, unless nothing
    is timed (`Export.measure_seconds: 0`), when there is nothing to choose by and oneDNN alone is built."""
    choice = str(getattr(settings, "cpu_engine", "auto") or "auto")
    if choice not in ENGINE_CHOICES:
        raise ExportError(f"Export.cpu_engine must be one of {list(ENGINE_CHOICES)}, got {choice!r}")
    if choice != "auto":
        return (choice,)
    timed = float(getattr(settings, "measure_seconds", 1.0)) > 0
    return _inference.ENGINES if timed else _inference.ENGINES[:1]


def faster_engine(measured: dict[str, dict]) -> str:
    """The engine of `measured` ({engine: measure_speed record}) with the best geometric mean of batch 32
    throughput and inverse batch 1 latency, relative to the first one; the first when they were not timed."""
    first = next(iter(measured))

    def score(m: dict) -> float | None:
        base = measured[first]
        try:
            return math.sqrt(m["throughput_b32"] / base["throughput_b32"] * base["latency_ms_b1"] / m["latency_ms_b1"])
        except (KeyError, TypeError, ZeroDivisionError):
            return None

    scores = {e: score(m) for e, m in measured.items()}
    timed = {e: s for e, s in scores.items() if s is not None}
    return max(timed, key=timed.get) if timed else first


def _candidate_folder(ctx: ExportContext, engine: str, folder: str, settings: _inference.PredictorSettings) -> None:
    """Fill `folder` with `engine`'s program and its `predictor.json`."""
    if engine == "openvino":
        from ppipe.export.legacy import LegacyExportError

        if not _inference.openvino_available():
            raise ExportError("this Paddle build has no OpenVINO engine (no libopenvino_paddle_frontend in "
                              "paddle/libs)")
        try:
            source = ctx.legacy_program()
        except LegacyExportError as e:
            raise ExportError(f"no legacy program for the OpenVINO engine: {e}") from None
        # the oneDNN fallback passes were chosen for the PIR program; the legacy one runs without them
        settings = dataclasses.replace(settings, engine="openvino", deleted_passes=())
    else:
        source, settings = ctx.reference_dir, dataclasses.replace(settings, engine="onednn")
    os.makedirs(folder)
    for path in _inference.find_model_files(source):
        shutil.copy2(path, folder)
    with open(os.path.join(folder, _inference.PREDICTOR_FILE), "w") as f:
        json.dump(settings.to_dict(), f, indent=1)


def _failure_reason(engine: str, folder: str, error: Exception) -> str:
    """`error`'s message, or, where OpenVINO could not convert the program (a message that names no operator),
    the operators it could not convert."""
    reason = str(error)
    if engine == "openvino" and openvino_diagnosis.CONVERSION_FAILURE in reason:
        return openvino_diagnosis.describe_unconverted(openvino_diagnosis.unconverted_operators(folder)) or reason
    return reason


def timed_in_rounds(ctx: ExportContext, predictors: dict[str, Any],
                    measure: Callable[..., dict]) -> tuple[dict[str, dict], dict[str, str]]:
    """({engine: its measurements}, {engine: why it failed while timed}) of `predictors`. One engine is measured
    once; competing engines are measured in `CHOICE_ROUNDS` interleaved rounds (A B, B A, A B), each with that
    share of the measuring time, and keep the median of their rounds' figures: a burst of load on a shared machine
    then skews one round of each engine rather than all of one engine's timing, which would choose the slower."""
    rounds: dict[str, list[dict]] = {e: [] for e in predictors}
    failed: dict[str, str] = {}
    n = 1 if len(predictors) == 1 else CHOICE_ROUNDS
    for r in range(n):
        for engine in list(predictors) if r % 2 == 0 else list(reversed(predictors)):
            if engine in failed:
                continue
            run = (lambda p: lambda batch: _inference.predict(p, batch))(predictors[engine])
            try:
                rounds[engine].append(measure(ctx, run, 1 / n))
            except _inference.InferenceError as e:
                failed[engine] = f"failed while timed: {e}"
    return {e: _median_of_rounds(rs) for e, rs in rounds.items() if e not in failed}, failed


def _median_of_rounds(records: list[dict]) -> dict:
    """The last round's record with each speed figure the median of the rounds' ({} when not timed)."""
    if not records[-1]:
        return {}
    merged = dict(records[-1])
    for key, value in records[-1].items():
        if key.startswith(("latency_ms_b", "throughput_b")) and isinstance(value, (int, float)):
            merged[key] = round(statistics.median(r[key] for r in records), 3)
    merged["rounds"] = len(records)
    return merged


def _none_passed(failed: dict[str, str]) -> ExportError:
    return ExportError("no CPU engine passed: " + "; ".join(f"{e}: {r}" for e, r in failed.items()))


def tuned_cpu_target(ctx: ExportContext, name: str, settings: _inference.PredictorSettings,
                     check: Callable[[Any], dict],
                     measure: Callable[..., dict]) -> TargetResult:
    """Build and check (``check(predictor)`` returns the record or raises `ExportError`) each requested engine's
    folder, measure those that pass (``measure(ctx, run, share of the measuring time)``, `timed_in_rounds`), and
    stage the faster one as ``ctx.out_root/name``. A candidate that fails is noted in the record; the target fails
    only when none passes."""
    engines = requested_engines(ctx.settings)
    built: dict[str, tuple[str, dict, Any]] = {}   # engine -> (folder, check record, predictor)
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="ppipe-cpu-engine-") as work:
        for engine in engines:
            folder = os.path.join(work, engine)
            try:
                _candidate_folder(ctx, engine, folder, settings)
                predictor = _inference.create_predictor(folder)
                built[engine] = (folder, check(predictor), predictor)
            except (ExportError, _inference.InferenceError) as e:
                failed[engine] = _failure_reason(engine, folder, e)
        if not built:
            raise _none_passed(failed)
        timed, timing_failed = timed_in_rounds(ctx, {e: p for e, (_, _, p) in built.items()}, measure)
        failed.update(timing_failed)
        if not timed:
            raise _none_passed(failed)
        built = {e: (folder, record, timed[e]) for e, (folder, record, _) in built.items() if e in timed}
        chosen = faster_engine({e: m for e, (_, _, m) in built.items()})
        folder, record, measured = built[chosen]
        dest = os.path.join(ctx.out_root, name)
        with storage.staged_directory(dest, name) as tmp:
            for f in sorted(os.listdir(folder)):
                shutil.copy2(os.path.join(folder, f), tmp)
    engines_record = {e: {"status": "built", **{k: m.get(k) for k in ("latency_ms_b1", "throughput_b32")}}
                      for e, (_, _, m) in built.items()}
    engines_record.update({e: {"status": "failed", "reason": r} for e, r in failed.items()})
    record = {**record, "engine": chosen, "engines": engines_record}
    files = sorted(os.path.join(name, f) for f in os.listdir(dest))
    return TargetResult(name, "built", files=files, check=record, measurements=measured)
