"""How the converter targets (onnx, tensorrt, paddle-lite) turn their work into a `TargetResult`: the folder is built
staged and renamed into place only when the whole build returned; `NotApplicable` becomes "skipped" with its reason,
any other error "failed" with its message, so one target can never crash the export."""

from __future__ import annotations

import os
from collections.abc import Callable

from ppipe import storage
from ppipe.export.targets import ExportContext, TargetResult


__all__ = ["NotApplicable", "TargetFailed", "build_target", "relative_files", "check_rtol"]

DEFAULT_RTOL = 1e-4  # the Paddle Inference export's bound: max|a - b| / max|b| against the dygraph logits


class NotApplicable(Exception):
    """The target cannot be built here or for this model (no converter, an operator it lacks); the message says
    which."""


class TargetFailed(Exception):
    """The target was built but does not reproduce the dygraph logits, or a tool failed; the message has the
    numbers."""


def check_rtol(ctx: ExportContext) -> float:
    """The tolerance of a target's logits check: the config's ``Export.rtol`` (ctx.settings), else 1e-4."""
    rtol = getattr(ctx.settings, "rtol", None)
    return DEFAULT_RTOL if rtol is None else float(rtol)


def relative_files(folder: str, final: str, out_root: str) -> list[str]:
    """The files of the staged `folder`, named as they will be once it is renamed to `final` (relative to
    `out_root`)."""
    rel = os.path.relpath(final, out_root)
    return sorted(os.path.join(rel, os.path.relpath(os.path.join(d, f), folder))
                  for d, _, files in os.walk(folder) for f in files)


def build_target(name: str, ctx: ExportContext, build: Callable[[str], TargetResult]) -> TargetResult:
    """Run ``build(staging_folder)`` (which returns the built result, or raises) for target `name`; its folder
    becomes ``ctx.out_root/<name>/`` only when `build` returned. Returns the result, or a skipped/failed one with
    the reason."""
    final = os.path.join(ctx.out_root, name)
    try:
        with storage.staged_directory(final, name) as tmp:
            result = build(tmp)
            result.files = relative_files(tmp, final, ctx.out_root)
        return result
    except NotApplicable as e:  # logged once, by the export run, with every target's outcome
        return TargetResult(name=name, status="skipped", reason=str(e))
    except Exception as e:  # noqa: BLE001 - a target's failure is its result; the export goes on
        reason = str(e) if isinstance(e, TargetFailed) else f"{type(e).__name__}: {e}"
        return TargetResult(name=name, status="failed", reason=reason)
