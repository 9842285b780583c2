"""Deployment targets of a trained model: each a folder of the exported artifact, built from the FP32 Paddle
Inference export, checked against the dygraph logits, and measured (`ppipe.export.targets` holds the contract,
`ppipe.export.run.export_targets` builds them).

Each target module registers itself in `TARGETS` when imported. Modules whose optional dependency is missing
(ONNX, TensorRT, Paddle-Lite) must still import: they check their dependency inside the target and return
`status="skipped"` with the reason. A module that fails to import anyway is logged and its targets are absent.
"""

import importlib
import logging

from ppipe.export.paddle_inference import ExportError, export_inference_model, max_relative_error, reparameterize
from ppipe.export.targets import TARGETS, ExportContext, TargetResult

# The modules that register targets, in the order their targets are built. Add a target module here.
TARGET_MODULES = [
    "ppipe.export.paddle_inference",   # paddle-inference-mkldnn
    "ppipe.export.int8",               # paddle-inference-mkldnn-int8
    "ppipe.export.onnx",               # onnx
    "ppipe.export.tensorrt",           # tensorrt
    "ppipe.export.paddle_lite",        # paddle-lite
]

# module -> why it could not be imported (reported by `ppipe export` when its target is asked for)
UNAVAILABLE: dict[str, str] = {}

for _module in TARGET_MODULES:
    try:
        importlib.import_module(_module)
    except ImportError as _e:
        UNAVAILABLE[_module] = f"{type(_e).__name__}: {_e}"
        logging.getLogger(__name__).debug("export target module %s not available: %s", _module, _e)

__all__ = ["ExportContext", "ExportError", "TARGETS", "TargetResult", "UNAVAILABLE", "export_inference_model",
           "max_relative_error", "reparameterize"]
