"""Training losses as PaddleClas's `Loss` section names them: classification (`CELoss`, `GoogLeNetLoss`) and
distillation (`Distillation*Loss`: SSLD's, later papers' over logits, and over feature maps, some with layers of
their own to train: `ppipe.losses.trainable`, among them AFD's `AFDLoss`), all in one `LOSSES` registry;
`CombinedLoss` is a recipe's weighted sum."""

from ppipe.losses.classification import LOSSES, CELoss, CombinedLoss, GoogLeNetLoss, Loss, cross_entropy
# imported for their registrations in LOSSES
from ppipe.losses import afd as _afd  # noqa: F401
from ppipe.losses import distillation as _distillation  # noqa: F401
from ppipe.losses import feature_distillation as _feature_distillation  # noqa: F401
from ppipe.losses import logit_distillation as _logit_distillation  # noqa: F401
from ppipe.losses import pair_loss as _pair_loss  # noqa: F401

__all__ = ["LOSSES", "CELoss", "CombinedLoss", "GoogLeNetLoss", "Loss", "cross_entropy"]
