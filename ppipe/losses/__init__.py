"""Training losses as PaddleClas's `Loss` section names them: classification (`CELoss`, `GoogLeNetLoss`) and
SSLD distillation (`Distillation*Loss`), all in one `LOSSES` registry; `CombinedLoss` is a recipe's weighted sum."""

from ppipe.losses.classification import LOSSES, CELoss, CombinedLoss, GoogLeNetLoss, Loss, cross_entropy
from ppipe.losses import distillation as _distillation  # noqa: F401  (registers the Distillation*Loss)

__all__ = ["LOSSES", "CELoss", "CombinedLoss", "GoogLeNetLoss", "Loss", "cross_entropy"]
