"""Which oneDNN implementation ran each primitive of a Paddle Inference oneDNN predictor: `ONEDNN_VERBOSE=1`
prints one line per executed primitive (kind, implementation, shapes, milliseconds). The predictor runs in a child
process, since oneDNN reads the variable once, and twice: loading runs primitives of its own (batch norm folded
into weights), so only the second run is read."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

_RUN_TWICE = """
import os, sys
import numpy as np
from ppipe.inference import create_predictor, predict
predictor = create_predictor(sys.argv[1], threads=int(sys.argv[2]))
x = np.random.default_rng(0).standard_normal([int(d) for d in sys.argv[3].split(",")]).astype(np.float32)
predict(predictor, x)
os.write(1, b"=== second run\\n")
predict(predictor, x)
"""
_MARK = "=== second run"


@dataclasses.dataclass(frozen=True)
class Primitive:
    kind: str            # "convolution", "binary", "concat", ...
    implementation: str  # "brg_conv_fwd:avx512_core", "jit:uni", "ref:any", ...
    line: str            # the whole verbose line
    ms: float

    @property
    def reference(self) -> bool:
        """oneDNN's reference implementation: plain loops, the fallback where no optimised kernel applies."""
        return self.implementation.startswith("ref")


def executed_primitives(model_dir: str, input_shape: tuple[int, ...], threads: int = 1) -> list[Primitive]:
    """The primitives of the second run of the predictor for `model_dir` (configured by its `predictor.json`,
    as users load it) on a random float32 batch of `input_shape`."""
    out = subprocess.run([sys.executable, "-c", _RUN_TWICE, model_dir, str(threads), ",".join(map(str, input_shape))],
                         capture_output=True, text=True, timeout=600, env={**os.environ, "ONEDNN_VERBOSE": "1"})
    assert out.returncode == 0 and _MARK in out.stdout, (out.stdout[-1000:], out.stderr[-2000:])
    primitives = []
    for line in out.stdout.split(_MARK, 1)[1].splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose") and len(fields) > 7 and fields[3] == "exec":
            primitives.append(Primitive(kind=fields[5], implementation=fields[6], line=line, ms=float(fields[-1])))
    return primitives
