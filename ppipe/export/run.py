"""Build a model's deployment targets: the FP32 reference export first, then every requested target.

    from ppipe.export.run import export_targets
    summary = export_targets(model, "run/export", (3, 224, 224))
    # run/export/<target>/... for each built target, run/export/export.json = summary:
    # {"input_shape", "reference": {...}, "targets": {name: {"status", "reason", "files", "check", "measurements"}}}

A target that raises is recorded as failed and one that cannot be built here as skipped, each with the reason,
and the others go on. The whole folder is staged and renamed into place at the end, so `out_root` only ever
holds a finished export; a target that failed leaves nothing of itself in it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ppipe import storage
from ppipe.config.schema import ExportSection
from ppipe.export.paddle_inference import prepare_for_export, save_checked_export, unfolded_float64_reference
from ppipe.export.targets import LEGACY_DIR, TARGETS, ExportContext, TargetResult

__all__ = ["SUMMARY_FILE", "export_targets", "requested_targets"]

log = logging.getLogger(__name__)

SUMMARY_FILE = "export.json"
_REFERENCE = ".reference"


def requested_targets(targets: Sequence[str] | str | None) -> list[str]:
    """The target names to build, in the registry's order; None: all. A comma-separated string is accepted
    (`--targets onnx,tensorrt`); an unknown name is an error naming the closest known ones."""
    if targets is None:
        return TARGETS.names()
    names = [t.strip() for t in targets.split(",")] if isinstance(targets, str) else [str(t) for t in targets]
    names = [n for n in names if n]
    if not names:
        raise ValueError("no export target named: give one or more of " + ", ".join(TARGETS.names()))
    for n in names:
        TARGETS.get(n, "export targets")
    return [n for n in TARGETS.names() if n in names]


def _build_one(name: str, ctx: ExportContext) -> TargetResult:
    try:
        result = TARGETS.get(name)(ctx)
    except Exception as e:  # noqa: BLE001 - one target's failure must not stop the others
        # an error may carry the record of what it measured (the INT8 accuracy gate's figures)
        result = TargetResult(name, "failed", reason=f"{type(e).__name__}: {e}", check=dict(getattr(e, "check", {})))
    if result.status != "built":
        # whatever a failed or skipped target left behind is not a deployable artifact
        shutil.rmtree(os.path.join(ctx.out_root, name), ignore_errors=True)
        result.files = []
    # One line a target; the whole reason (a converter's traceback, the accuracy numbers) is in export.json.
    first_line = result.reason.strip().splitlines()[0][:300] if result.reason.strip() else ""
    (log.warning if result.status == "failed" else log.info)(
        "export target %s: %s%s", name, result.status, f" ({first_line})" if first_line else "")
    return result


def export_targets(model, out_root: str, input_shape: tuple[int, int, int],
                   targets: Sequence[str] | str | None = None,
                   calibration: Callable[[], Iterator[np.ndarray]] | None = None,
                   settings: ExportSection | None = None, *,
                   evaluation: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]] | None = None,
                   quantization: Any = None, qat_model: Any = None, check_batch: int = 4,
                   seed: int = 0) -> dict[str, Any]:
    """Export `model` (a dygraph `paddle.nn.Layer`) to `targets` (None: every registered one) under `out_root`.

    The model is put in eval mode and reparameterized (on a copy) once; the FP32 PIR export is checked against
    its logits on `check_batch` random images and handed to every target as `ExportContext.reference_dir`.
    `calibration` yields float32 image batches for the INT8 targets (`calibration.calibration_batches`),
    `evaluation` labelled val batches they measure their accuracy change on, `quantization` the config's
    `Quantization` section, `qat_model` the QAT-trained model whose learnt scales they use (`model` then holds
    its float weights, `ppipe.quantization.load_qat_weights`).
    Returns the JSON-able summary that is also written to ``out_root/export.json``.
    """
    settings = settings or ExportSection()
    names = requested_targets(targets)
    layer, x, reference = prepare_for_export(model, tuple(input_shape), check_batch=check_batch, seed=seed)
    out_root = os.path.abspath(os.fspath(out_root))
    with storage.staged_directory(out_root, "export") as tmp:
        # jit.to_static turns the layer it is given into a static one: the targets get an untouched copy
        ref = save_checked_export(copy.deepcopy(layer), x, reference, os.path.join(tmp, _REFERENCE), rtol=settings.rtol,
                                  threads=settings.threads, seed=seed,
                                  float64_reference=unfolded_float64_reference(model, layer, x))
        ctx = ExportContext(model=layer, input_shape=tuple(int(d) for d in input_shape), out_root=tmp,
                            reference_dir=os.path.join(tmp, _REFERENCE), check_inputs=x,
                            reference_logits=reference, calibration=calibration, settings=settings,
                            evaluation=evaluation, quantization=quantization, qat_model=qat_model)
        results = {name: dataclasses.asdict(_build_one(name, ctx)) for name in names}
        shutil.rmtree(ctx.reference_dir)
        shutil.rmtree(os.path.join(tmp, LEGACY_DIR), ignore_errors=True)  # written only if a target asked
        summary = {"input_shape": list(ctx.input_shape),
                   "reference": {"max_rel_err": ref["max_rel_err"], "rtol": ref["rtol"],
                                 "check_batch": ref["check_batch"], "output_shape": ref["output_shape"]},
                   "targets": results}
        storage.write_bytes_atomic(os.path.join(tmp, SUMMARY_FILE),
                                   json.dumps(summary, indent=1, default=_jsonable).encode())
    return json.loads(json.dumps(summary, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def val_batches(prepared: str, cfg, limit: int | None, batch: int = 64) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The first `limit` images (None: all) of the val split, eval transforms, in labelled batches."""
    from ppipe.data import iter_batches
    from ppipe.evaluate import eval_transform_ops

    left = limit
    for images, labels in iter_batches(prepared, "val", eval_transform_ops(cfg), batch, shuffle=False,
                                       drop_last=False, pad=False):
        if left is not None:
            images, labels = images[:left], labels[:left]
            left -= len(labels)
        if len(labels):
            yield images, labels
        if left is not None and left <= 0:
            return


def export_run(cfg, weights: str, prepared: str | None, rdir: str,
               targets: Sequence[str] | str | None = None) -> dict[str, Any]:
    """The export stage of a trained run: `weights` of `cfg`'s architecture to `targets` (None:
    `cfg.Export.targets`, else all) under ``rdir/export``; the INT8 targets calibrate on and are scored against
    `prepared` (None: they are skipped). The FP32 target is also placed at ``rdir/inference``. Returns the
    summary, with the FP32 check's ``max_rel_err`` also at its top level."""
    from ppipe.build import infer_arch, inference_kwargs
    from ppipe.export.calibration import calibration_batches
    from ppipe.export.paddle_inference import PREDICTOR
    from ppipe.models import create_model
    from ppipe.quantization import load_qat_weights, qat_enabled

    ex = cfg.Export
    arch = infer_arch(cfg)
    qat = qat_enabled(cfg.Quantization)  # the weights carry the learnt scales too: re-wrap to read them
    model = create_model(arch.name, num_classes=arch.num_classes, pretrained=None if qat else weights,
                         **inference_kwargs(arch.kwargs))
    qat_model = load_qat_weights(model, weights, cfg.Quantization) if qat else None
    calibration = evaluation = None
    if prepared:
        def calibration():
            return calibration_batches(prepared, cfg, n=ex.calibration_images, batch=ex.calibration_batch)

        def evaluation():
            return val_batches(prepared, cfg, ex.int8_eval_images)
    summary = export_targets(model, os.path.join(rdir, "export"), tuple(ex.input_shape or cfg.Global.image_shape),
                             targets if targets is not None else ex.targets, calibration, ex,
                             evaluation=evaluation, quantization=cfg.Quantization, qat_model=qat_model)
    fp32 = summary["targets"].get(PREDICTOR, {})
    if fp32.get("status") == "built":
        with storage.staged_directory(os.path.join(rdir, "inference"), "export") as tmp:
            for rel in fp32["files"]:
                shutil.copy2(os.path.join(rdir, "export", rel), tmp)
    return {**summary, "max_rel_err": summary["reference"]["max_rel_err"]}
