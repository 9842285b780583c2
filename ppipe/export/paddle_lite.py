"""The `paddle-lite` export target: a Paddle-Lite model (``paddle-lite/model.nb``, naive buffer, ARM kernels) for
phones and ARM boards.

Paddle-Lite's optimizer `opt` reads only legacy programs, so it reads the export's ``model.pdmodel``
(`ExportContext.legacy_program`: `ppipe.export.legacy`, a subprocess running Paddle's legacy tracer), and that
program is checked with Paddle Inference against the dygraph logits; `opt` then runs in ppipe's Python 3.10 environment
(`ppipe.export.lite_env`). The ARM ``.nb`` cannot run on this x86 host (and `opt --valid_targets=x86` writes no
model with the published wheel), so the check is the legacy program's, before conversion, and the target is not
measured here. A model with an operator `opt` lacks for ARM is skipped with the operators' names.
"""

from __future__ import annotations

import os
import re
import subprocess

from ppipe.export.legacy import LegacyExportError
from ppipe.export.legacy_check import check_legacy_model
from ppipe.export.lite_env import LITE_PACKAGE, LiteUnavailable, lite_optimizer
from ppipe.export.target_outcome import NotApplicable, TargetFailed, build_target, check_rtol
from ppipe.export.targets import TARGETS, ExportContext, TargetResult

__all__ = ["VALID_TARGETS", "optimize_for_lite", "paddle_lite_target"]

VALID_TARGETS = "arm"
_UNSUPPORTED = re.compile(r"not supported|unsupported", re.IGNORECASE)


def optimize_for_lite(opt: str, model_dir: str, out_prefix: str, *, timeout: int = 1800) -> str:
    """Run Paddle-Lite's `opt` on the legacy program in `model_dir`; returns the ``.nb`` path. NotApplicable when
    `opt` lacks an operator of the model, TargetFailed for any other failure."""
    cmd = [opt, "--model_file", os.path.join(model_dir, "model.pdmodel"),
           "--param_file", os.path.join(model_dir, "model.pdiparams"), "--optimize_out_type", "naive_buffer",
           "--optimize_out", out_prefix, "--valid_targets", VALID_TARGETS]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TargetFailed(f"paddle_lite_opt took longer than {timeout} s") from None
    log = f"{out.stdout}\n{out.stderr}"
    nb = out_prefix + ".nb"
    if out.returncode == 0 and os.path.isfile(nb):
        return nb
    reasons = [ln.strip() for ln in log.splitlines() if _UNSUPPORTED.search(ln)]
    if reasons:
        raise NotApplicable(f"Paddle-Lite's opt cannot convert this model for {VALID_TARGETS}: "
                            f"{' | '.join(reasons[-3:])[:400]}")
    tail = " | ".join(ln.strip() for ln in log.strip().splitlines()[-3:])
    raise TargetFailed(f"paddle_lite_opt failed (exit {out.returncode}): {tail[:400]}")


def build_lite(ctx: ExportContext, folder: str) -> TargetResult:
    try:
        opt = lite_optimizer()
    except LiteUnavailable as e:
        raise NotApplicable(f"Paddle-Lite's converter is unavailable here: {e}") from None
    try:
        legacy_dir = ctx.legacy_program()
    except LegacyExportError as e:
        raise NotApplicable(f"no legacy program for Paddle-Lite: {e}") from None
    check = check_legacy_model(legacy_dir, ctx.check_inputs, ctx.reference_logits, check_rtol(ctx))
    check["checked"] = ("the legacy program (model.pdmodel) with Paddle Inference before conversion; the ARM "
                        "model.nb is not run on this x86 host")
    optimize_for_lite(opt, legacy_dir, os.path.join(folder, "model"))
    check.update(valid_targets=VALID_TARGETS, converter=LITE_PACKAGE)
    return TargetResult(name="paddle-lite", status="built", check=check,
                        measurements={"note": f"not measured: model.nb holds {VALID_TARGETS} kernels, this host is "
                                              f"x86"})


@TARGETS.register(name="paddle-lite")
def paddle_lite_target(ctx: ExportContext) -> TargetResult:
    """Paddle-Lite naive-buffer model for ARM, converted from the checked legacy program."""
    return build_target("paddle-lite", ctx, lambda folder: build_lite(ctx, folder))
