"""The check of a legacy program (``model.pdmodel``, `ppipe.export.legacy`) before a target ships or converts it:
Paddle Inference runs it on the CPU without its graph passes, and its logits must match the dygraph model's.

Shared by the targets that hand the legacy program on: Paddle-Lite converts it for ARM, and the tensorrt target
ships it for Paddle-TRT (Paddle Inference builds TensorRT subgraphs of legacy programs only).
"""

from __future__ import annotations

from ppipe.export.paddle_inference import max_relative_error
from ppipe.export.target_outcome import DEFAULT_RTOL, TargetFailed

__all__ = ["check_legacy_model"]


def _unoptimized_predictor(model_dir: str):
    from paddle import inference as pi

    from ppipe.inference import find_model_files

    config = pi.Config(*find_model_files(model_dir))
    config.disable_gpu()
    config.disable_glog_info()
    # the program as written, not as Paddle Inference's passes rewrite it: with the extra attributes kept for
    # Paddle-Lite (clip_extra=False) those passes mis-shape ShuffleNetV2's convolutions
    config.switch_ir_optim(False)
    return pi.create_predictor(config)


def check_legacy_model(model_dir: str, check_inputs, reference_logits, rtol: float = DEFAULT_RTOL) -> dict:
    """The legacy program's logits, run by Paddle Inference without its graph passes, against the dygraph ones:
    ``{"max_rel_err", "rtol"}``; TargetFailed when they disagree."""
    from ppipe.inference import predict

    err = max_relative_error(predict(_unoptimized_predictor(model_dir), check_inputs), reference_logits)
    if not err <= rtol:
        raise TargetFailed(f"the legacy program disagrees with the dygraph model: max_rel_err {err:.3e} > rtol "
                           f"{rtol:.1e}")
    return {"max_rel_err": float(err), "rtol": rtol}
