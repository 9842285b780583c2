"""Whether an export computes what the dygraph model computes: its logits ``a`` against the eval-mode float32
dygraph logits ``b`` on the same inputs, ``max_rel_err = max|a - b| / max|b|`` within ``rtol`` (1e-4).

    check = compare_logits(got, reference, rtol, float64=Float64Reference(model, inputs))
    if not check.passed:
        raise ExportError(check.explain("exported model"))
    record = check.record()   # {"max_rel_err", "rtol"} (+ "float64": {...} where float64 decided)

Some models' float32 logits are that far from the exact ones themselves: float32 rounding, accumulated in another
order by the export's kernels than by dygraph's, exceeds 1e-4 on both sides (ReXNet, RedNet, ResNeSt at 32 with
random weights; docs/export.md, "paddle-inference-mkldnn"). Only then, and only where the caller gives a
`Float64Reference`, the same model runs once more in float64 on the same inputs, and the export is accepted when it
is no further from those logits than `FLOAT64_FACTOR` times the float32 dygraph logits are (`float64_accepts`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ExportError", "max_relative_error", "first_output", "float64_logits", "Float64Reference",
           "float64_accepts", "record_passes", "compare_logits", "LogitsCheck", "FLOAT64_FACTOR", "FLOAT64_MAX_EXCESS"]

# How much further from the float64 logits the export may be than the float32 dygraph logits are. Two float32
# computations of one model that sum in different orders each carry their own rounding; neither is the better
# one (RedNet's oneDNN logits are 3x closer to float64 than dygraph's, ReXNet's 2x further), so the export must
# be as accurate as dygraph up to this factor, not more accurate.
FLOAT64_FACTOR = 3.0
# The float64 arbitration never accepts an export more than this many times `rtol` off the float32 logits: it
# explains rounding (at most 2.6x rtol in the zoo sweep), not a reference that another function computed (a fold
# that changed the model, logits of other inputs).
FLOAT64_MAX_EXCESS = 10.0


class ExportError(Exception):
    """The model could not be exported, or the exported model does not reproduce the dygraph logits."""


def max_relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    """``max|actual - reference| / max|reference|`` in float64 (the absolute error when the reference is all 0;
    NaN/inf anywhere gives inf)."""
    a = np.asarray(actual, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ExportError(f"predictor output shape {list(a.shape)} != dygraph output shape {list(b.shape)}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return float("inf")
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    scale = float(np.max(np.abs(b))) if b.size else 0.0
    return diff / scale if scale > 0 else diff


def first_output(out: Any):
    """The logits of a model's output: the output itself, or the first of a list/tuple (distillation heads)."""
    if isinstance(out, (list, tuple)):
        if not out:
            raise ExportError("the model returned an empty list/tuple")
        return out[0]
    if isinstance(out, dict):
        raise ExportError(f"the model returned a dict ({sorted(out)}); export a model whose forward returns logits")
    return out


def float64_logits(model, inputs: np.ndarray) -> np.ndarray:
    """The logits of a float64 copy of `model` (eval mode; `model` is left as it is) on `inputs` in float64."""
    import paddle

    twin = copy.deepcopy(model)
    # Layer.to(dtype)/double() would cast integer buffers too (Swin's and LeViT's index tables): floats only.
    twin._to_impl(dtype=paddle.float64, floating_only=True)
    twin.eval()
    previous = paddle.get_default_dtype()
    paddle.set_default_dtype("float64")  # tensors the forward creates itself follow the parameters' precision
    try:
        with paddle.no_grad():
            out = first_output(twin(paddle.to_tensor(np.asarray(inputs, dtype=np.float64))))
    finally:
        paddle.set_default_dtype(previous)
    return np.asarray(out.numpy(), dtype=np.float64)


class Float64Reference:
    """`float64_logits(model, inputs)`, computed on first use and kept: checks that pass in float32 never pay for
    it. `model` must compute the float32 reference logits the check compares against (before any
    reparameterization of it), so that float64 arbitrates rounding only."""

    def __init__(self, model, inputs: np.ndarray):
        self._model = model
        self._inputs = inputs
        self._logits: np.ndarray | None = None

    @classmethod
    def of_context(cls, ctx) -> Float64Reference:
        """The float64 reference of an export target (`ExportContext`): its model on its check inputs. That model
        is already reparameterized, which the float32 reference logits were computed before; the checked
        reference export every target starts from has proved the fold keeps the function (within rtol, or
        float64-arbitrated against the model before the fold), so what is left to arbitrate is rounding."""
        return cls(ctx.model, ctx.check_inputs)

    def logits(self) -> np.ndarray:
        if self._logits is None:
            self._logits = float64_logits(self._model, self._inputs)
        return self._logits


def float64_accepts(max_rel_err: float, export_err: float, dygraph_err: float, rtol: float,
                    factor: float = FLOAT64_FACTOR, max_excess: float = FLOAT64_MAX_EXCESS) -> bool:
    """Whether an export `max_rel_err` off the float32 dygraph logits (beyond `rtol`) is float32 rounding: it is
    `export_err` off the float64 logits, no more than `factor` times the float32 dygraph logits' own
    `dygraph_err`, and `max_rel_err` is within `max_excess` times `rtol`."""
    finite = all(math.isfinite(v) for v in (max_rel_err, export_err, dygraph_err))
    return finite and export_err <= factor * dygraph_err and max_rel_err <= max_excess * rtol


def record_passes(record: dict[str, Any]) -> bool:
    """Whether a target's check record (`LogitsCheck.record`) passed: within its rtol, or float64-arbitrated."""
    if record["max_rel_err"] <= record["rtol"]:
        return True
    f = record.get("float64")
    return f is not None and float64_accepts(record["max_rel_err"], f["export_max_rel_err"],
                                             f["dygraph_max_rel_err"], record["rtol"], f["factor"])


@dataclass(frozen=True)
class LogitsCheck:
    """One comparison of an export's logits with the dygraph model's. `float64` holds the float64 arbitration's
    numbers where it ran (``{"export_max_rel_err", "dygraph_max_rel_err", "factor"}``), `float64_unavailable` why
    it could not run."""

    max_rel_err: float
    rtol: float
    max_abs_err: float
    max_abs_reference: float
    float64: dict[str, float] | None = None
    float64_unavailable: str = ""

    @property
    def passed(self) -> bool:
        return record_passes(self.record())

    def record(self) -> dict[str, Any]:
        """The target's check record: ``{"max_rel_err", "rtol"}``, plus ``"float64"`` where it decided."""
        record: dict[str, Any] = {"max_rel_err": float(self.max_rel_err), "rtol": float(self.rtol)}
        if self.float64 is not None:
            record["float64"] = dict(self.float64)
        return record

    def explain(self, subject: str) -> str:
        """Why the check failed, with the numbers, `subject` naming what was compared ("exported model")."""
        text = (f"{subject} disagrees with the dygraph model: max_rel_err = max|a-b|/max|b| = {self.max_rel_err:.3e} "
                f"> rtol {self.rtol:.1e} (max|a-b| = {self.max_abs_err}, max|b| = {self.max_abs_reference:.6g})")
        if self.float64 is not None:
            f = self.float64
            text += (f"; against a float64 run of the dygraph model it is {f['export_max_rel_err']:.3e} off and the "
                     f"float32 dygraph logits {f['dygraph_max_rel_err']:.3e} (float32 rounding accepts at most "
                     f"{f['factor']:g}x the latter, and max_rel_err <= {FLOAT64_MAX_EXCESS:g} x rtol)")
        elif self.float64_unavailable:
            text += f"; no float64 reference: {self.float64_unavailable}"
        return text


def compare_logits(got: np.ndarray, reference: np.ndarray, rtol: float,
                   float64: Float64Reference | None = None) -> LogitsCheck:
    """`got` against the float32 dygraph `reference` logits; where they differ beyond `rtol` and `float64` is
    given, both are also compared with its float64 logits (see the module's docstring)."""
    err = max_relative_error(got, reference)
    a, b = np.asarray(got, np.float64), np.asarray(reference, np.float64)
    check = LogitsCheck(err, float(rtol), float(np.max(np.abs(a - b))) if a.size else 0.0,
                        float(np.max(np.abs(b))) if b.size else 0.0)
    if err <= rtol or float64 is None:
        return check
    try:
        exact = float64.logits()
    except Exception as e:  # noqa: BLE001 - an op without a float64 kernel: the float32 verdict stands
        return dataclasses.replace(check, float64_unavailable=f"{type(e).__name__}: {e}"[:300])
    numbers = {"export_max_rel_err": max_relative_error(got, exact),
               "dygraph_max_rel_err": max_relative_error(reference, exact), "factor": FLOAT64_FACTOR}
    return dataclasses.replace(check, float64=numbers)
