"""Export a trained `paddle.nn.Layer` to a Paddle Inference model and prove it computes the same logits.

    from ppipe.export import export_inference_model
    info = export_inference_model(model, "out/inference", (3, 224, 224))
    # out/inference/model.json + model.pdiparams (PIR), checked with a oneDNN predictor

The export is written to a temporary folder beside `out_dir` and renamed into place only after the predictor
check passed, so `out_dir` never holds a partial or unverified export.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ppipe import inference as _inference
from ppipe import storage
from ppipe.export.cpu_engine import tuned_cpu_target
from ppipe.export.logits_check import (ExportError, Float64Reference, LogitsCheck, compare_logits, first_output,
                                       max_relative_error)
from ppipe.export.measure import measure_speed
from ppipe.export.targets import TARGETS, ExportContext, TargetResult

__all__ = ["ExportError", "export_inference_model", "prepare_for_export", "reparameterize", "max_relative_error",
           "save_checked_export", "unfolded_float64_reference",
           "predictor_target", "shipped_settings", "run_with_fallback_passes", "FALLBACK_DELETED_PASSES"]

log = logging.getLogger(__name__)

PREDICTOR = "paddle-inference-mkldnn"


def reparameterize(model) -> int:
    """Fold training-time branches for inference: ``model.reparameterize()`` when the model has it, else
    PaddleClas's convention (every sublayer with ``re_parameterize()`` that is not ``is_repped`` yet).
    Returns how many calls were made."""
    fn = getattr(model, "reparameterize", None)
    if callable(fn):
        fn()
        return 1
    calls = 0
    for layer in [model, *model.sublayers()]:
        rp = getattr(layer, "re_parameterize", None)
        if callable(rp) and not getattr(layer, "is_repped", False):
            rp()
            calls += 1
    return calls


def prepare_for_export(model, input_shape: tuple[int, int, int], *, check_batch: int = 4,
                       seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    """(layer, check inputs, reference logits): `layer` is an eval-mode, reparameterized copy of `model` (the
    caller's layer is left as it was when it can be deep-copied; otherwise it is changed in place); the check
    inputs are `check_batch` standard-normal images drawn with `seed`, and the reference logits are the eval-mode
    dygraph model's on them, computed *before* reparameterization so that a fold that changes the function is
    caught by every target's check."""
    import paddle

    if len(tuple(input_shape)) != 3 or any(int(d) <= 0 for d in input_shape):
        raise ExportError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape!r}")
    c, h, w = (int(d) for d in input_shape)
    if check_batch < 1:
        raise ExportError(f"check_batch must be >= 1, got {check_batch}")
    try:
        layer = copy.deepcopy(model)
    except Exception as e:  # noqa: BLE001 - some layers hold uncopyable state
        log.warning("export: cannot deep-copy the model (%s); exporting it in place", e)
        layer = model
    layer.eval()
    x = np.random.default_rng(seed).standard_normal((check_batch, c, h, w)).astype(np.float32)
    try:
        with paddle.no_grad():
            reference = first_output(layer(paddle.to_tensor(x))).numpy()
    except ExportError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"the model fails on a [{check_batch}, {c}, {h}, {w}] float32 input: {e}") from e
    n_rep = reparameterize(layer)
    if n_rep:
        log.info("export: reparameterized (%d call(s))", n_rep)
    layer.eval()
    return layer, x, reference


def export_inference_model(model, out_dir: str, input_shape: tuple[int, int, int], *, check_batch: int = 4,
                           rtol: float = 1e-4, seed: int = 0, threads: int = 1) -> dict:
    """Export `model` to ``out_dir/model.json`` + ``out_dir/model.pdiparams`` and verify it.

    Steps: a copy of `model` (the caller's layer is left as it was when it can be deep-copied; otherwise it is
    changed in place) is put in eval mode and reparameterized when it supports it (`reparameterize`); it is
    converted with ``paddle.jit.to_static`` under ``InputSpec([None, C, H, W], 'float32', name='x')`` and
    saved with ``paddle.jit.save`` into a temporary folder beside `out_dir`. A Paddle Inference predictor with
    oneDNN (`threads` CPU math threads) then runs a random float32 batch of `check_batch` images (standard
    normal, drawn with `seed`), and its logits ``a`` are compared with the eval-mode dygraph logits ``b``
    computed *before* reparameterization::

        max_rel_err = max|a - b| / max|b|

    If ``max_rel_err > rtol``, a float64 copy of `model` arbitrates (`ppipe.export.logits_check`: the export is
    accepted when it is no further from the float64 logits than `FLOAT64_FACTOR` times the float32 dygraph logits
    are, and the returned ``"float64"`` holds both errors). If it still fails (or the predictor fails)
    `ExportError` is raised with the numbers and nothing is left at `out_dir`. Otherwise the folder is renamed
    to `out_dir` (replacing an earlier export there). A model that runs only with one of
    `FALLBACK_DELETED_PASSES` deleted gets a `predictor.json` naming them, which
    `ppipe.inference.create_predictor(out_dir)` applies.

    Returns ``{"model_file", "params_file", "input_shape": [C, H, W], "max_rel_err", "predictor":
    "paddle-inference-mkldnn", "check_batch", "rtol", "output_shape", "deleted_passes"}`` (+ ``"float64"``).
    """
    layer, x, reference = prepare_for_export(model, input_shape, check_batch=check_batch, seed=seed)
    return save_checked_export(layer, x, reference, out_dir, rtol=rtol, threads=threads, seed=seed,
                               float64_reference=unfolded_float64_reference(model, layer, x))


def unfolded_float64_reference(model, layer, x: np.ndarray) -> Float64Reference | None:
    """The float64 reference of `prepare_for_export(model, ...)`'s check: `model` on `x`, the layer *before*
    reparameterization, so that the arbitration cannot excuse a fold that changed the function; None when
    `model` could not be copied (it is then `layer` itself, folded and about to be made static)."""
    return Float64Reference(model, x) if layer is not model else None


def check_logits(got: np.ndarray, reference: np.ndarray, rtol: float, *, seed: int = 0,
                 float64: Float64Reference | None = None) -> LogitsCheck:
    """`compare_logits` of `got` against the dygraph `reference` (float64-arbitrated where `float64` is given);
    `ExportError` with the numbers when it does not pass."""
    check = compare_logits(got, reference, rtol, float64)
    if not check.passed:
        batch = f"{'x'.join(map(str, reference.shape[:1]))}x{'x'.join(map(str, np.shape(got)[1:]))}"
        raise ExportError(f"{check.explain('exported model')} (batch {batch}, seed {seed})")
    return check


def save_checked_export(layer, x: np.ndarray, reference: np.ndarray, out_dir: str, *, rtol: float = 1e-4,
                        threads: int = 1, seed: int = 0, float64_reference: Float64Reference | None = None) -> dict:
    """Save the prepared `layer` (`prepare_for_export`) as PIR into a staged folder, check that a oneDNN
    predictor reproduces `reference` on `x` (float64-arbitrated by `float64_reference`, the model *before*
    reparameterization on `x`, where given), and rename the folder to `out_dir`; see `export_inference_model`."""
    import paddle

    check_batch, c, h, w = (int(d) for d in x.shape)
    out_dir = os.path.abspath(os.fspath(out_dir))
    with storage.staged_directory(out_dir, "export") as tmp:
        spec = paddle.static.InputSpec([None, c, h, w], "float32", name="x")
        try:
            static = paddle.jit.to_static(layer, input_spec=[spec], full_graph=True)
            paddle.jit.save(static, os.path.join(tmp, "model"))
        except Exception as e:  # noqa: BLE001
            raise ExportError(f"paddle.jit.save failed for input [None, {c}, {h}, {w}]: {e}") from e
        model_file, params_file = _inference.find_model_files(tmp)
        got, settings = run_with_fallback_passes(tmp, x, threads)
        if settings.deleted_passes:  # users' create_predictor(out_dir) gets the configuration that works
            with open(os.path.join(tmp, _inference.PREDICTOR_FILE), "w") as f:
                json.dump(settings.to_dict(), f, indent=1)
        if got.shape != reference.shape:
            raise ExportError(f"predictor output shape {list(got.shape)} != dygraph output shape "
                              f"{list(reference.shape)}")
        check = check_logits(got, reference, rtol, seed=seed, float64=float64_reference)
    return {**check.record(),
        "model_file": os.path.join(out_dir, os.path.basename(model_file)),
        "params_file": os.path.join(out_dir, os.path.basename(params_file)),
        "input_shape": [c, h, w],
        "predictor": PREDICTOR,
        "check_batch": check_batch,
        "output_shape": [None, *list(reference.shape[1:])],
        "deleted_passes": list(settings.deleted_passes),
    }


# oneDNN IR passes of Paddle 3.3.1 that break some programs, each tried alone (in this order) when the predictor
# with every pass fails; the first that makes it run is recorded in the export's `predictor.json`:
# - operator_reshape_onednn_fuse_pass folds a reshape into the fc before it and mis-shapes a dynamic batch under
#   window reshapes (SwinTransformer, Twins at 224: "input [-8, 37632] against weight [96, 288]");
# - onednn_placement_pass places interpolation on oneDNN with an attribute its runtime cannot convert (HRNet at
#   32, MobileViT at 32: "ConvertPirAttribute2RuntimeAttribute not support ArrayAttribute<Double>"); without it
#   the conv/matmul kernels are still oneDNN's.
FALLBACK_DELETED_PASSES = (("operator_reshape_onednn_fuse_pass",), ("onednn_placement_pass",))


def run_with_fallback_passes(model_dir: str, x: np.ndarray, threads: int = 1
                             ) -> tuple[np.ndarray, _inference.PredictorSettings]:
    """(logits of `x`, the settings that ran): a oneDNN predictor for `model_dir` with every IR pass, else with
    the first of `FALLBACK_DELETED_PASSES` deleted that lets it run; `ExportError` with the first failure (and
    what was tried) when none does."""
    tried = []
    for deleted in ((), *FALLBACK_DELETED_PASSES):
        settings = _inference.PredictorSettings(mkldnn=True, threads=threads, deleted_passes=deleted)
        try:
            got = np.asarray(_inference.predict(_inference.create_predictor(model_dir, settings=settings), x))
        except Exception as e:  # noqa: BLE001 - a broken pass surfaces as any Paddle error
            tried.append((deleted, str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)))
            continue
        if deleted:
            log.warning("export: the oneDNN predictor fails with every IR pass (%s); it runs with %s deleted, "
                        "which predictor.json records", tried[0][1], list(deleted))
        return got, settings
    raise ExportError(f"the exported model does not run in Paddle Inference (oneDNN): {tried[0][1]} (also "
                      f"failed with each of {[list(d) for d, _ in tried[1:]]} deleted)")


def shipped_settings(export_settings: Any, reference_dir: str | None = None,
                     **overrides) -> _inference.PredictorSettings:
    """The predictor configuration a Paddle Inference target ships in its `predictor.json`: the export
    settings' `threads` and the IR passes the checked reference export in `reference_dir` had to delete
    (`run_with_fallback_passes`) on top of `PredictorSettings`' defaults (see benchmarks/README.md for how they
    were chosen)."""
    threads = int(getattr(export_settings, "threads", 1) or 1)
    deleted = _inference.load_settings(reference_dir).deleted_passes if reference_dir else ()
    return _inference.PredictorSettings(threads=threads, **{"deleted_passes": deleted, **overrides})


def predictor_target(ctx: ExportContext, name: str, source_dir: str, settings: _inference.PredictorSettings,
                     check: Callable[[Any], dict]) -> TargetResult:
    """A Paddle Inference target: `source_dir`'s model files plus `settings` as `predictor.json` in
    ``ctx.out_root/name``, staged until ``check(predictor)`` (which returns the check record or raises
    `ExportError`) passed; then measured with the shipped settings."""
    import shutil

    dest = os.path.join(ctx.out_root, name)
    with storage.staged_directory(dest, name) as tmp:
        for path in _inference.find_model_files(source_dir):
            shutil.copy2(path, tmp)
        with open(os.path.join(tmp, _inference.PREDICTOR_FILE), "w") as f:
            json.dump(settings.to_dict(), f, indent=1)
        predictor = _inference.create_predictor(tmp)
        record = check(predictor)
    files = sorted(os.path.join(name, f) for f in os.listdir(dest))
    return TargetResult(name, "built", files=files, check=record,
                        measurements=measure_target(ctx, lambda batch: _inference.predict(predictor, batch)))


def measure_target(ctx: ExportContext, run: Callable[[np.ndarray], Any], share: float = 1.0) -> dict:
    """`measure_speed` of `run` with the export settings' `measure_seconds` (0: not measured, {}), or that share
    of them (one of several rounds)."""
    seconds = float(getattr(ctx.settings, "measure_seconds", 1.0)) * share
    return measure_speed(run, ctx.input_shape, min_seconds=seconds) if seconds > 0 else {}


@TARGETS.register(name=PREDICTOR)
def paddle_inference_mkldnn(ctx: ExportContext) -> TargetResult:
    """The FP32 export with its tuned CPU predictor configuration (the engine, oneDNN or OpenVINO, timed and chosen
    on this machine: `ppipe.export.cpu_engine`), logits within `rtol` of dygraph (or float64-arbitrated:
    `ppipe.export.logits_check`)."""
    rtol = float(getattr(ctx.settings, "rtol", 1e-4))

    def check(predictor) -> dict:
        got = np.asarray(_inference.predict(predictor, ctx.check_inputs))
        record = check_logits(got, ctx.reference_logits, rtol, float64=Float64Reference.of_context(ctx)).record()
        return {**record, "check_batch": int(len(ctx.check_inputs))}

    return tuned_cpu_target(ctx, PREDICTOR, shipped_settings(ctx.settings, ctx.reference_dir), check, measure_target)
