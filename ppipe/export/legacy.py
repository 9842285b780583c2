"""Export a model as a legacy Paddle program (``model.pdmodel`` + ``model.pdiparams``), the form Paddle-Lite's `opt`
and PaddleSlim read, from Paddle 3.3.1 whose default is the PIR ``model.json``.

    from ppipe.export.legacy import export_legacy_model
    export_legacy_model(model, "out/legacy", (3, 224, 224))   # out/legacy/model.pdmodel + model.pdiparams

The legacy tracer is selected with ``FLAGS_enable_pir_api=0``, which Paddle reads once at import, so the export runs
in a subprocess (``python -m ppipe.export.legacy``) that receives the model pickled.

Why the subprocess also patches Paddle: Paddle 3.3.1 moved about fifty functions (`paddle.multiply`,
`paddle.matmul`, `paddle.sum`, `F.sigmoid`, `F.gelu`, ...; the `funcs_map`/`methods_map`/`nn_funcs_map` lists of
`paddle.base.dygraph.generated_tensor_methods_patch`) to direct `_C_ops` calls, which accept eager tensors and PIR
Values only: traced in the legacy mode they fail with "multiply(): argument (position 1) must be Value, but got
Variable". `patch_sunk_ops` gives those the zoo uses a legacy branch that appends the legacy operator
(`elementwise_mul`, `matmul_v2`, `reduce_sum`, ...) with `LayerHelper`, as Paddle 2.6 did; eager and PIR calls go
to the original function. A model needing an unpatched one still fails, with Paddle's own message.
The program is saved with ``clip_extra=False``: by default Paddle 3 strips the operators' "extra" attributes and
outputs, which Paddle-Lite 2.13's `opt` still reads (it aborts on ``relu6`` without ``threshold`` and crashes on
``flatten_contiguous_range`` without ``XShape``).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile

__all__ = ["LegacyExportError", "export_legacy_model", "patch_sunk_ops"]

LEGACY_FLAG = "FLAGS_enable_pir_api"


class LegacyExportError(Exception):
    """The legacy program could not be written; the message carries Paddle's own last error line."""


# --- the legacy branches ------------------------------------------------------------------------------------------

# unary operators whose legacy operator has the same name and only an X input
_UNARY = ("sigmoid", "tanh", "exp", "expm1", "sqrt", "rsqrt", "log", "log1p", "log2", "log10", "abs", "floor",
          "ceil", "round", "sign", "sin", "cos", "sinh", "cosh", "asin", "acos", "atanh", "acosh")
_BINARY = {"multiply": "elementwise_mul", "maximum": "elementwise_max", "minimum": "elementwise_min"}


def _append(op_type: str, inputs: dict, attrs: dict, dtype=None):
    from paddle.base.layer_helper import LayerHelper

    helper = LayerHelper(op_type)
    first = next(iter(inputs.values()))
    out = helper.create_variable_for_type_inference(dtype=dtype or first.dtype)
    helper.append_op(type=op_type, inputs=inputs, outputs={"Out": out}, attrs=attrs)
    return out


def _binary(op_type: str):
    def legacy(x, y, name=None):
        return _append(op_type, {"X": x, "Y": y}, {"axis": -1})
    return legacy


def _matmul(x, y, transpose_x=False, transpose_y=False, name=None):
    return _append("matmul_v2", {"X": x, "Y": y}, {"trans_x": bool(transpose_x), "trans_y": bool(transpose_y)})


def _sum(x, axis=None, dtype=None, keepdim=False, name=None):
    import paddle

    if dtype is not None:
        x = paddle.cast(x, dtype)
    dims = [] if axis is None else [int(a) for a in (axis if isinstance(axis, (list, tuple)) else [axis])]
    return _append("reduce_sum", {"X": x}, {"dim": dims or [0], "keep_dim": bool(keepdim), "reduce_all": not dims})


def _gelu(x, approximate=False, name=None):
    return _append("gelu", {"X": x}, {"approximate": approximate in (True, "tanh")})


def _softplus(x, beta=1, threshold=20, name=None):
    return _append("softplus", {"X": x}, {"beta": float(beta), "threshold": float(threshold)})


def _roll(x, shifts, axis=None, name=None):
    as_list = (lambda v: [int(i) for i in (v if isinstance(v, (list, tuple)) else [v])])
    return _append("roll", {"X": x}, {"shifts": as_list(shifts), "axis": [] if axis is None else as_list(axis)})


def _legacy_functions() -> dict:
    from paddle.tensor.layer_function_generator import generate_activation_fn

    fns = {name: generate_activation_fn(name) for name in _UNARY}
    fns.update({name: _binary(op) for name, op in _BINARY.items()})
    fns.update(matmul=_matmul, sum=_sum, gelu=_gelu, softplus=_softplus, roll=_roll)
    return fns


def _dispatching(original, legacy):
    import paddle
    from paddle.base.framework import Variable

    @paddle.jit.not_to_static  # the tracer must call it, not rewrite it
    def call(*args, **kwargs):
        tensors = [*args[:2], kwargs.get("x"), kwargs.get("y")]
        if any(isinstance(t, Variable) for t in tensors):
            return legacy(*args, **kwargs)
        return original(*args, **kwargs)

    call.__name__ = getattr(original, "__name__", "call")
    call.__doc__ = getattr(original, "__doc__", None)
    return call


def patch_sunk_ops() -> list[str]:
    """Give the sunk functions a legacy-program branch, wherever Paddle publishes them (`paddle.X`,
    `paddle.tensor.X`, `paddle.nn.functional.X`, the legacy `Variable.X` method). Returns the patched names."""
    import paddle
    import paddle.nn.functional as F
    from paddle.base.framework import Variable

    patched = []
    for name, legacy in _legacy_functions().items():
        for owner in (paddle, paddle.tensor, F, Variable):
            original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
            if original is not None:
                setattr(owner, name, _dispatching(original, legacy))
                patched.append(f"{getattr(owner, '__name__', owner)}.{name}")
    return patched


# --- the subprocess -----------------------------------------------------------------------------------------------

def _last_error(text: str) -> str:
    """Paddle's own error line from a traceback (the last 'SomethingError: ...' line), else the last line."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.split(":", 1)[0].endswith(("Error", "Exception"))]
    return (errors or lines or ["no output"])[-1][:400]


def export_legacy_model(model, out_dir: str, input_shape: tuple[int, int, int], *, timeout: int = 1800) -> dict:
    """Write `model` (an eval-mode, reparameterized layer) as ``out_dir/model.pdmodel`` + ``model.pdiparams`` with
    a dynamic batch, in a subprocess running Paddle's legacy tracer. Returns ``{"model_file", "params_file"}``;
    raises LegacyExportError with Paddle's error line when the program cannot be written."""
    c, h, w = (int(d) for d in input_shape)
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ppipe-legacy-") as tmp:
        pickled = os.path.join(tmp, "model.pkl")
        try:
            with open(pickled, "wb") as f:
                pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            raise LegacyExportError(f"the model cannot be handed to the legacy export subprocess (pickle: {e}); "
                                    f"its class must be importable") from None
        env = {**os.environ, LEGACY_FLAG: "0"}
        cmd = [sys.executable, "-m", "ppipe.export.legacy", pickled, os.path.join(out_dir, "model"), str(c), str(h),
               str(w)]
        try:
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LegacyExportError(f"legacy export took longer than {timeout} s") from None
    files = {"model_file": os.path.join(out_dir, "model.pdmodel"),
             "params_file": os.path.join(out_dir, "model.pdiparams")}
    if out.returncode != 0 or not all(os.path.isfile(f) for f in files.values()):
        raise LegacyExportError(f"legacy export failed: {_last_error(out.stderr or out.stdout)}")
    return files


def _main(argv: list[str]) -> None:
    if os.environ.get(LEGACY_FLAG) != "0":
        raise SystemExit(f"run with {LEGACY_FLAG}=0 (Paddle reads it at import)")
    pickled, prefix, c, h, w = argv
    import paddle

    patch_sunk_ops()
    with open(pickled, "rb") as f:
        model = pickle.load(f)  # written by export_legacy_model in the parent process, a moment ago
    model.eval()
    spec = paddle.static.InputSpec([None, int(c), int(h), int(w)], "float32", name="x")
    paddle.jit.save(paddle.jit.to_static(model, input_spec=[spec], full_graph=True), prefix, clip_extra=False)


if __name__ == "__main__":
    _main(sys.argv[1:])
