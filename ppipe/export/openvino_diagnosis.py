"""Which operators OpenVINO's Paddle front end could not convert, for the reason a failed OpenVINO candidate gives.

Paddle Inference's OpenVINO engine fails with "Can't convert paddle model to openvino model ... check if the model
is supported" and names the operators only in its verbose log (``VLOG(3)`` in its engine.cc), which predictors in
ppipe's processes never print: `ppipe.inference` turns glog's info lines off, and glog reads its verbosity when it
starts. So a child process builds the same predictor with that one log module at level 3, and the parent reads the
operators from its stderr (the candidate folder's predictor.json configures it as the export did). The log names each node by its first output (``unfold_0.tmp_0``); Paddle names those
``<operator type>_<n>.tmp_<k>``, which gives the type. The front end lists nodes in graph order, so the first type
is where conversion stops; later ones may only be downstream of it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys

__all__ = ["CONVERSION_FAILURE", "unconverted_operators", "describe_unconverted"]

CONVERSION_FAILURE = "Can't convert paddle model to openvino model"
_NODE_LINE = re.compile(r"Can't convert op:(\S+) to openvino op")
_OUTPUT_NAME = re.compile(r"^(.+?)_\d+(?:\.tmp_\d+)?$")


def unconverted_operators(model_dir: str, *, timeout: float = 300) -> dict[str, int] | None:
    """{operator type: nodes left unconverted} for the legacy program in `model_dir`, in the order the front end
    met them; ``{}`` when it converted everything, None when the child process could not tell (it failed to
    start, timed out, or printed nothing the log format explains)."""
    # glog INFO on (a ppipe console sets GLOG_minloglevel=2 for the processes it starts), verbose in engine.cc only
    env = {**os.environ, "GLOG_minloglevel": "0", "GLOG_vmodule": "engine=3", "GLOG_logtostderr": "1"}
    try:
        out = subprocess.run([sys.executable, "-m", __name__, model_dir], env=env, capture_output=True, text=True,
                             timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    nodes = _NODE_LINE.findall(out.stderr)
    if not nodes:
        return {} if out.returncode == 0 else None
    counts: dict[str, int] = {}
    for node in nodes:
        match = _OUTPUT_NAME.match(node)
        op_type = match.group(1) if match else node
        counts[op_type] = counts.get(op_type, 0) + 1
    return counts


def describe_unconverted(counts: dict[str, int] | None) -> str:
    """The reason for a failed conversion that names the operators; empty when `counts` names none."""
    if not counts:
        return ""
    listed = ", ".join(f"{t} ({n} node{'s' if n > 1 else ''})" for t, n in counts.items())
    return (f"OpenVINO's Paddle front end cannot convert the program: it left unconverted, in graph order, "
            f"{listed}; the first is where conversion stops")


def _main(model_dir: str) -> int:
    """Build the OpenVINO predictor of the legacy program in `model_dir` (with a candidate folder's
    predictor.json, as the export did) with glog's info lines on; 0 when it builds."""
    from ppipe.inference import InferenceError, create_predictor, load_settings

    try:
        create_predictor(model_dir, settings=dataclasses.replace(load_settings(model_dir), engine="openvino"),
                         glog_info=True)
    except InferenceError:  # the reason is what the parent reads from the log
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1]))
