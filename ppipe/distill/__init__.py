"""Knowledge distillation as PaddleClas's SSLD does it: a `DistillationModel` holding named models (a frozen
teacher, a student), and losses over pairs of their outputs (`Distillation*Loss`)."""

from ppipe.distill.model import DistillationModel, build_distillation_model
from ppipe.distill import losses as _losses  # noqa: F401  (registers the distillation losses)

__all__ = ["DistillationModel", "build_distillation_model"]
