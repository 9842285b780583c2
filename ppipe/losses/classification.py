"""Training losses, named and parameterised as in PaddleClas's `Loss` section.

A recipe lists weighted terms (`- CELoss: {weight: 1.0, epsilon: 0.1}`); the total loss is their weighted
sum. Each loss declares its parameters (`params`), so an unknown one is refused before training starts, and the
model outputs it reads (`accepts`, see `ppipe.model_outputs`): one logits tensor, or for models with auxiliary
heads in training (GoogLeNet's `[main, aux1, aux2]`) the list, which only a loss written for it
(`GoogLeNetLoss`) accepts; the config loader compares that with what the recipe's model gives.
"""

from __future__ import annotations

from typing import Any, ClassVar

import paddle
import paddle.nn.functional as F

from ppipe.errors import ConfigError
from ppipe.losses.trainable import build_loss_layers
from ppipe.model_outputs import HEADS, LOGITS, OutputKind
from ppipe.registry import Registry


class Loss:
    """One term of a recipe's loss. `params`: the keys a recipe may give it; `accepts`: the model outputs it reads."""

    params: ClassVar[tuple[str, ...]] = ("weight",)
    accepts: ClassVar[frozenset[OutputKind]] = frozenset({LOGITS})

    @classmethod
    def check_values(cls, params: dict[str, Any], where: str) -> None:
        """Refuse parameter values this loss cannot honour, before it is built (`Registry.check_params` calls it
        after checking the keys); `where` names the loss in the recipe."""

    def __init__(self, weight: float = 1.0):
        self.weight = float(weight)

    def __call__(self, logits: paddle.Tensor, labels: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError


def cross_entropy(logits, targets, epsilon: float = 0.0):
    """Mean cross entropy against class ids [N] or soft targets [N, C], with label smoothing `epsilon`.

    Rows whose class id is negative (unlabeled images, label -1) do not count; with none labeled it is 0.
    Half-precision logits (AMP) are cast to float32 first: log-softmax and the sum over classes lose too much
    in float16.
    """
    if logits.dtype in (paddle.float16, paddle.bfloat16):
        logits = logits.astype("float32")
    num_classes = logits.shape[-1]
    if targets.ndim == logits.ndim and targets.shape[-1] == num_classes:
        soft = targets.astype(logits.dtype)
        weight = None
    else:
        ids = targets.reshape([-1]).astype("int64")
        labeled = (ids >= 0).astype(logits.dtype)
        soft = F.one_hot(paddle.clip(ids, min=0), num_classes).astype(logits.dtype)
        weight = labeled
    if epsilon > 0:
        soft = soft * (1.0 - epsilon) + epsilon / num_classes
    per_row = -(soft * F.log_softmax(logits, axis=-1)).sum(axis=-1)
    if weight is None:
        return per_row.mean()
    return (per_row * weight).sum() / paddle.clip(weight.sum(), min=1.0)


class CELoss(Loss):
    """Cross entropy; `epsilon` > 0 applies label smoothing (Szegedy et al., 2016). Labels may be class ids
    [N] (negative ids, i.e. unlabeled images, are left out) or soft targets [N, C] (Mixup/Cutmix)."""

    params = ("weight", "epsilon")

    def __init__(self, weight: float = 1.0, epsilon: float | None = None):
        super().__init__(weight)
        self.epsilon = float(epsilon or 0.0)

    def __call__(self, logits, labels):
        if isinstance(logits, dict):
            raise ValueError("CELoss got the outputs of several models (a DistillationModel): use "
                             "DistillationGTCELoss with model_names to pick one")
        if isinstance(logits, (list, tuple)):
            raise ValueError(f"CELoss got {len(logits)} outputs (a model with auxiliary heads in training, e.g. "
                             "GoogLeNet's [main, aux1, aux2]): use the model's own loss (GoogLeNetLoss)")
        return cross_entropy(logits, labels, self.epsilon)


class GoogLeNetLoss(Loss):
    """GoogLeNet's training loss (Szegedy et al., 2014, arXiv:1409.4842, section 5), as PaddleClas's GoogLeNetLoss:
    CE(main) + 0.3 * CE(aux1) + 0.3 * CE(aux2) over the model's `[main, aux1, aux2]` training outputs.

    In eval mode ppipe's GoogLeNet returns the main logits alone and the loss is CE(main); PaddleClas's GoogLeNet
    also runs its auxiliary heads in evaluation, so its validation loss includes their terms and is higher.
    PaddleClas refuses label smoothing for it (epsilon in (0, 1)); so does this loss, when the recipe is loaded.
    """

    params = ("weight", "epsilon")
    accepts = frozenset({LOGITS, HEADS})
    AUX_WEIGHT = 0.3

    @classmethod
    def check_values(cls, params: dict[str, Any], where: str) -> None:
        epsilon = params.get("epsilon")
        if epsilon is not None and 0.0 < float(epsilon) < 1.0:
            raise ConfigError(f"{where}.epsilon: GoogLeNetLoss has no label smoothing (as in PaddleClas); "
                              f"got {epsilon}, expected null or 0")

    def __init__(self, weight: float = 1.0, epsilon: float | None = None):
        self.check_values({"epsilon": epsilon}, "GoogLeNetLoss")
        super().__init__(weight)

    def __call__(self, outputs, labels):
        if isinstance(outputs, paddle.Tensor):
            return cross_entropy(outputs, labels)
        if not isinstance(outputs, (list, tuple)) or len(outputs) != 3:
            raise ValueError(f"GoogLeNetLoss expects GoogLeNet's [main, aux1, aux2] logits (or the main logits "
                             f"alone in eval mode), got {type(outputs).__name__}"
                             + (f" of {len(outputs)}" if isinstance(outputs, (list, tuple, dict)) else ""))
        main, aux1, aux2 = (o["logits"] if isinstance(o, dict) else o for o in outputs)
        return cross_entropy(main, labels) + self.AUX_WEIGHT * (cross_entropy(aux1, labels) +
                                                                cross_entropy(aux2, labels))


LOSSES: Registry[type[Loss]] = Registry("loss")
LOSSES.register(CELoss)
LOSSES.register(GoogLeNetLoss)


class CombinedLoss:
    """The weighted sum of a recipe's loss terms."""

    def __init__(self, items: list[Any], where: str):
        self.terms = build_loss_layers(lambda: LOSSES.build_all(items, where))
        if not self.terms:
            raise ConfigError(f"{where}: at least one loss is needed")

    def trainable_layers(self) -> dict[str, paddle.nn.Layer]:
        """{term index: term} for the terms with parameters to train (`ppipe.losses.trainable`); empty for most."""
        return {str(i): term for i, term in enumerate(self.terms)
                if isinstance(term, paddle.nn.Layer) and any(not p.stop_gradient for p in term.parameters())}

    def __call__(self, logits, labels) -> paddle.Tensor:
        total = None
        for term in self.terms:
            value = term(logits, labels) * term.weight
            total = value if total is None else total + value
        return total

