"""The model a recipe trains (`Arch`): one zoo architecture, or a `DistillationModel` of several; and the
single architecture that is evaluated, exported and published from it (`infer_arch`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ppipe.config import Config
from ppipe.models.distillation import DISTILLATION


@dataclass(frozen=True)
class InferArch:
    name: str
    num_classes: int
    kwargs: dict[str, Any]


def infer_arch(cfg: Config) -> InferArch:
    """The architecture whose weights a run publishes: Arch itself, or a DistillationModel's infer model."""
    if cfg.Arch.name != DISTILLATION:
        return InferArch(cfg.Arch.name, cfg.num_classes, dict(cfg.Arch.kwargs))
    from ppipe.models.distillation import parse_models

    specs = dict(parse_models(cfg.Arch.kwargs, cfg.Arch.class_num or cfg.Global.class_num))
    key = cfg.Arch.kwargs.get("infer_model_name") or list(specs)[-1]
    s = specs[key]
    return InferArch(s["name"], s["class_num"] or cfg.num_classes, s["kwargs"])


def inference_kwargs(kwargs: dict) -> dict:
    """Architecture arguments of the exported (inference) model: a channels-last training layout
    (`data_format: NHWC`, PaddleClas's float16 GPU recipes) exports as NCHW. The parameters are the same in both
    layouts; Paddle Inference's oneDNN convolutions misread NHWC input, and TensorRT chooses its own layouts."""
    if kwargs.get("data_format") == "NHWC":
        return {**kwargs, "data_format": "NCHW"}
    return dict(kwargs)


def build_model(cfg: Config, pretrained: str | None = None):
    """The training model of `cfg` (`pretrained`: PaddleClas weights for a single architecture), on the CPU
    kernels `Global.cpu_kernels` asks for; with `Quantization.mode: qat`, fake-quantized for training
    (`ppipe.quantization.quantize_for_training`, after the pretrained weights are loaded)."""
    import logging

    from ppipe.models import create_model
    from ppipe.ops.onednn import accelerate_for_cpu_training
    from ppipe.quantization import qat_enabled, quantize_for_training

    if cfg.Arch.name == DISTILLATION:
        from ppipe.models.distillation import build_distillation_model

        model = build_distillation_model(cfg.Arch.kwargs, cfg.Arch.class_num or cfg.Global.class_num)
    else:
        model = create_model(cfg.Arch.name, num_classes=cfg.num_classes, pretrained=pretrained, **cfg.Arch.kwargs)
    if qat_enabled(cfg.Quantization):
        # before the CPU kernels: Paddle's QAT wraps nn.Conv2D/nn.Linear by exact class, which they change
        model = quantize_for_training(model, cfg.Quantization)
    kernels = accelerate_for_cpu_training(model, cfg.Global.cpu_kernels)
    logging.getLogger(__name__).info("%s: %s", cfg.Arch.name, kernels)
    return model


def exported_model(model):
    """The part of a training model that is evaluated, exported and published."""
    return getattr(model, "infer_model", model)
