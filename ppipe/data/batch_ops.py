"""PaddleClas-compatible batch operators (a config's `batch_transform_ops`): MixupOperator, CutmixOperator and
OpSampler.

Semantics follow PaddleClas 2.6 (`ppcls/data/preprocess/batch_ops/batch_operators.py`); this is our own code.
They are registered in `ppipe.data.operators.BATCH_OPERATORS` and built with `create_batch_operators`; names and
parameters are validated as the per-sample operators' are, and each list refuses the other's operators with an
error saying where they belong.

* `class_num` is injected as PaddleClas injects `Arch.class_num` into every operator that takes it; a value
  given in the op's own parameters must agree with it.
* `op(batch)` takes PaddleClas's batch, a list of (CHW float image, int label), and returns PaddleClas's
  output, a list of (image, soft target float32 [class_num]).
* `op.apply(images [N,C,H,W], labels [N] int or [N, class_num] soft, rng)` is the array form the reader
  uses; it returns (images float32, soft targets float32 [N, class_num]) whose rows sum to 1.
* Unlike PaddleClas, OpSampler's "no operator" outcome returns one-hot targets (PaddleClas returns the int
  labels), so every batch of a run has the same label format.

Randomness comes from a numpy Generator passed to `apply` (`BatchCompose` seeds one per batch), never from
global state.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ppipe.data.operators import (BATCH_OPERATORS, OperatorParamError, build_operators, check_listed_in,
                                  register_batch_operator)
from ppipe.registry import accepted_params

__all__ = ["BatchOperator", "MixupOperator", "CutmixOperator", "OpSampler", "BatchCompose",
           "create_batch_operators"]


def _check_class_num(name: str, class_num: Any) -> int:
    if isinstance(class_num, bool) or not isinstance(class_num, (int, np.integer)) or class_num < 1:
        raise OperatorParamError(f"{name}: class_num must be a positive integer (PaddleClas takes it from "
                                 f"Arch.class_num), got {class_num!r}")
    return int(class_num)


def _check_alpha(name: str, alpha: Any) -> float:
    if not isinstance(alpha, (int, float)) or alpha <= 0:
        raise OperatorParamError(f"{name}: alpha must be > 0, got {alpha!r}")
    return float(alpha)


class BatchOperator:
    """Base class of batch operators: `apply` on arrays, `__call__` on a PaddleClas list of (image, label)."""

    is_batch_operator = True

    def __init__(self, class_num: int) -> None:
        self.class_num = _check_class_num(type(self).__name__, class_num)
        self.rng = np.random.default_rng()  # used by __call__; reseed() or pass a Generator to apply()

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def soft_targets(self, labels: np.ndarray) -> np.ndarray:
        """Int labels [N] -> one-hot float32 [N, class_num]; soft targets [N, class_num] pass through."""
        labels = np.asarray(labels)
        if labels.ndim == 2:
            if labels.shape[1] != self.class_num:
                raise ValueError(f"{type(self).__name__}: soft targets have {labels.shape[1]} classes, "
                                 f"class_num is {self.class_num}")
            return labels.astype(np.float32, copy=False)
        labels = labels.reshape(-1).astype(np.int64, copy=False)
        bad = labels[(labels < 0) | (labels >= self.class_num)]
        if bad.size:
            raise ValueError(f"{type(self).__name__}: label {int(bad[0])} is outside [0, class_num="
                             f"{self.class_num})")
        return np.eye(self.class_num, dtype=np.float32)[labels]

    def mix_targets(self, labels: np.ndarray, perm: np.ndarray, lam: float) -> np.ndarray:
        """lam * targets + (1 - lam) * targets[perm], float32 [N, class_num]."""
        t = self.soft_targets(labels)
        return (t * np.float32(lam) + t[perm] * np.float32(1.0 - lam)).astype(np.float32)

    def apply(self, images: np.ndarray, labels: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, batch: list) -> list:
        if not isinstance(batch, list) or not batch:
            raise ValueError(f"{type(self).__name__}: the batch must be a non-empty list of (image, label)")
        images = np.array([item[0] for item in batch])
        labels = np.array([item[1] for item in batch])
        images, targets = self.apply(images, labels, self.rng)
        return list(zip(images, targets))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(class_num={self.class_num})"


@register_batch_operator
class MixupOperator(BatchOperator):
    """Mixup (Zhang et al. 2018): lam ~ Beta(alpha, alpha), images lam * x + (1 - lam) * x[perm] with a random
    permutation of the batch, targets mixed the same way."""

    def __init__(self, class_num: int, alpha: float = 1.0) -> None:
        super().__init__(class_num)
        self.alpha = _check_alpha("MixupOperator", alpha)

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """(permutation, lambda) for a batch of n, in PaddleClas's draw order."""
        perm = rng.permutation(n)
        return perm, float(rng.beta(self.alpha, self.alpha))

    def apply(self, images, labels, rng):
        images = np.asarray(images, dtype=np.float32)
        perm, lam = self.draw(len(images), rng)
        mixed = (np.float32(lam) * images + np.float32(1.0 - lam) * images[perm]).astype(np.float32)
        return mixed, self.mix_targets(labels, perm, lam)

    def __repr__(self) -> str:
        return f"MixupOperator(class_num={self.class_num}, alpha={self.alpha})"


@register_batch_operator
class CutmixOperator(BatchOperator):
    """CutMix (Yun et al. 2019): lam ~ Beta(alpha, alpha) sets a box of sides sqrt(1 - lam) * (H, W) centred
    uniformly (clipped to the image); the box is pasted from x[perm] and lam becomes 1 - box area / image area,
    which then mixes the targets."""

    def __init__(self, class_num: int, alpha: float = 0.2) -> None:
        super().__init__(class_num)
        self.alpha = _check_alpha("CutmixOperator", alpha)

    @staticmethod
    def rand_box(shape: tuple[int, ...], lam: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """(y1, x1, y2, x2) over the last two axes (H, W) of an NCHW `shape`, as PaddleClas's _rand_bbox."""
        h, w = shape[-2], shape[-1]
        cut_rat = np.sqrt(1.0 - lam)
        cut_h, cut_w = int(h * cut_rat), int(w * cut_rat)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y1, y2 = int(np.clip(cy - cut_h // 2, 0, h)), int(np.clip(cy + cut_h // 2, 0, h))
        x1, x2 = int(np.clip(cx - cut_w // 2, 0, w)), int(np.clip(cx + cut_w // 2, 0, w))
        return y1, x1, y2, x2

    def draw(self, shape: tuple[int, ...], rng: np.random.Generator):
        """(permutation, box (y1, x1, y2, x2), lambda adjusted to the box) for a batch of `shape`."""
        perm = rng.permutation(shape[0])
        lam = float(rng.beta(self.alpha, self.alpha))
        y1, x1, y2, x2 = self.rand_box(shape, lam, rng)
        lam = 1.0 - (y2 - y1) * (x2 - x1) / float(shape[-2] * shape[-1])
        return perm, (y1, x1, y2, x2), lam

    def apply(self, images, labels, rng):
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 4:
            raise ValueError(f"CutmixOperator: expected NCHW images, got shape {images.shape}")
        perm, (y1, x1, y2, x2), lam = self.draw(images.shape, rng)
        out = images.copy()
        out[:, :, y1:y2, x1:x2] = images[perm, :, y1:y2, x1:x2]
        return out, self.mix_targets(labels, perm, lam)

    def __repr__(self) -> str:
        return f"CutmixOperator(class_num={self.class_num}, alpha={self.alpha})"


def _inject_class_num(name: str, params: dict[str, Any], class_num: int | None) -> dict[str, Any]:
    """PaddleClas passes Arch.class_num to every operator that has a class_num parameter."""
    params = dict(params)
    takes_class_num = name in BATCH_OPERATORS and "class_num" in accepted_params(BATCH_OPERATORS.get(name))[0]
    if takes_class_num and class_num is not None:
        given = params.get("class_num")
        if given is not None and given != class_num:
            raise OperatorParamError(f"{name}: class_num {given!r} disagrees with the model's class_num "
                                     f"{class_num!r}")
        params["class_num"] = class_num
    return params


@register_batch_operator
class OpSampler(BatchOperator):
    """Picks one batch operator per batch: `{OpName: {prob: p, ...params}}`; with probability 1 - sum(p) none
    (the batch is returned with one-hot targets). An operator without `prob` gets 0, with a warning."""

    def __init__(self, class_num: int, **op_dict: Any) -> None:
        super().__init__(class_num)
        if not op_dict:
            warnings.warn("OpSampler has no operators: every batch is left unmixed", stacklevel=2)
        self.ops: list[tuple[BatchOperator, float]] = []
        total = 0.0
        for name, params in op_dict.items():
            op, prob = self._sampled_operator(name, params)
            total += prob
            self.ops.append((op, prob))
        if total > 1 + 1e-9:
            raise OperatorParamError(f"OpSampler: the probabilities of its operators sum to {total:g} > 1")
        self.none_prob = max(0.0, 1.0 - total)

    def _sampled_operator(self, name: str, params: Any) -> tuple[BatchOperator, float]:
        """(operator, probability) of one `{OpName: {prob: p, ...params}}` entry."""
        check_listed_in(BATCH_OPERATORS, name, "OpSampler")
        if name == "OpSampler":
            raise OperatorParamError("OpSampler: an OpSampler cannot sample another OpSampler")
        if params is not None and not isinstance(params, dict):
            raise OperatorParamError(f"OpSampler.{name}: parameters must be a mapping, got {params!r}")
        params = dict(params or {})
        if "prob" not in params:
            warnings.warn(f"OpSampler: {name} has no 'prob'; it is set to 0", stacklevel=3)
        prob = params.pop("prob", 0)
        if not isinstance(prob, (int, float)) or not 0 <= prob <= 1:
            raise OperatorParamError(f"OpSampler.{name}: prob must be in [0, 1], got {prob!r}")
        op = BATCH_OPERATORS.build(name, _inject_class_num(name, params, self.class_num), "OpSampler")
        return op, float(prob)

    def choose(self, rng: np.random.Generator) -> BatchOperator | None:
        """The operator for this batch (None: no mixing), drawn by probability."""
        u = rng.random()
        acc = 0.0
        for op, p in self.ops:
            acc += p
            if p > 0 and u < acc:
                return op
        return None

    def apply(self, images, labels, rng):
        op = self.choose(rng)
        if op is None:
            return np.asarray(images, dtype=np.float32), self.soft_targets(labels)
        return op.apply(images, labels, rng)

    def __repr__(self) -> str:
        return f"OpSampler({', '.join(f'{op!r}: {p}' for op, p in self.ops)}, none: {self.none_prob:g})"


class BatchCompose:
    """Batch operators applied in order on (images, labels) arrays, sharing one numpy Generator that
    `reseed` resets (the reader reseeds it from each batch's seed)."""

    def __init__(self, ops: list[BatchOperator], seed: int | None = None) -> None:
        self.ops = list(ops)
        self.rng = np.random.default_rng(seed)

    @property
    def class_num(self) -> int | None:
        return self.ops[-1].class_num if self.ops else None

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(images float32 [N,C,H,W], soft targets float32 [N, class_num])."""
        for op in self.ops:
            images, labels = op.apply(images, labels, self.rng)
        return images, labels

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        return f"BatchCompose({self.ops!r})"


def create_batch_operators(op_list: list[dict[str, Any]] | None, class_num: int | None = None,
                           seed: int | None = None) -> BatchCompose:
    """A PaddleClas `batch_transform_ops` list -> BatchCompose. `class_num` (PaddleClas: Arch.class_num) goes
    to every operator that takes it; unknown operators or parameters are errors naming them."""
    ops = build_operators(BATCH_OPERATORS, op_list, "batch_transform_ops",
                          params_of=lambda name, params: _inject_class_num(name, params, class_num))
    widths = {op.class_num for op in ops}
    if len(widths) > 1:
        raise OperatorParamError(f"batch operators disagree on class_num: {sorted(widths)}")
    return BatchCompose(ops, seed=seed)
