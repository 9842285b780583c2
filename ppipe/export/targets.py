"""The export targets' common contract: what a target receives (`ExportContext`), what it returns
(`TargetResult`), and the `TARGETS` registry the export stage runs them from.

A target builds `<out_root>/<name>/` (staged, renamed into place only when its check passed), proves it computes
what the dygraph model computes on `ctx.check_inputs`, and measures itself. A target that cannot be built on
this machine or does not apply to the model (no GPU for TensorRT, an operator the converter lacks) returns
`status="skipped"` with the reason; the rest of the export goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ppipe.registry import Registry


LEGACY_DIR = ".legacy"  # ExportContext.legacy_program's folder in out_root; not a target, removed with the reference


@dataclass(frozen=True)
class ExportContext:
    """What every target is built from."""

    model: Any                           # eval-mode, reparameterized paddle.nn.Layer (do not modify it)
    input_shape: tuple[int, int, int]    # (C, H, W)
    out_root: str                        # each target writes out_root/<target name>/
    reference_dir: str                   # the checked FP32 PIR export (model.json + model.pdiparams)
    check_inputs: np.ndarray             # float32 [N, C, H, W]
    reference_logits: np.ndarray         # the dygraph model's logits on check_inputs
    calibration: Callable[[], Iterator[np.ndarray]] | None = None  # float32 batches, eval transforms, train split
    settings: Any = None                 # the config's Export section
    # (images float32 [N, C, H, W], labels int64 [N]) batches of the val split, eval transforms: the INT8
    # targets record their top-1/top-5 change on them
    evaluation: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]] | None = None
    quantization: Any = None             # the config's Quantization section (None: PTQ at 8 bits)
    # a `Quantization.mode: qat` run's trained model with its fake quanters (`ppipe.quantization`): the INT8
    # targets convert it with the scales it learnt instead of calibrating `model`
    qat_model: Any = None
    # `legacy_program`'s one outcome: its folder, or the error writing it raised
    _legacy: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def legacy_program(self) -> str:
        """The folder holding `model` as a legacy program (``model.pdmodel`` + ``model.pdiparams``,
        `ppipe.export.legacy`), written once, on first use, under ``out_root/.legacy`` and shared by the targets
        that read one (the OpenVINO engine, Paddle-Lite); read it, do not write into it. Raises the same
        `LegacyExportError` on every call when the program cannot be written."""
        if not self._legacy:
            from ppipe.export.legacy import LegacyExportError, export_legacy_model

            folder = os.path.join(self.out_root, LEGACY_DIR)
            try:
                export_legacy_model(self.model, folder, self.input_shape)
                self._legacy["folder"] = folder
            except LegacyExportError as e:
                self._legacy["error"] = e
        if "error" in self._legacy:
            raise self._legacy["error"]
        return self._legacy["folder"]


@dataclass
class TargetResult:
    """One target's outcome, recorded under `targets.<name>` in the artifact's manifest."""

    name: str
    status: Literal["built", "skipped", "failed"]
    reason: str = ""                                   # why skipped/failed; empty when built
    files: list[str] = field(default_factory=list)     # relative to out_root
    check: dict[str, Any] = field(default_factory=dict)         # e.g. {"max_rel_err": 1e-6, "rtol": 1e-4}
    measurements: dict[str, Any] = field(default_factory=dict)  # {"latency_ms_b1", "throughput_b32", "cpu", ...}


TARGETS: Registry[Callable[[ExportContext], TargetResult]] = Registry("export target")
