"""Knowledge-distillation losses over a student's and a teacher's logits, as PaddleClas implements them
(ppcls/loss/kldivloss.py, dkdloss.py, dist_loss.py, skdloss.py, wslloss.py), each over `model_name_pairs` of a
`DistillationModel`'s named outputs.

* `DistillationKLDivLoss`: Hinton's KD (Hinton et al. 2015, arXiv:1503.02531), KL(teacher || student) at `temperature`.
* `DistillationDKDLoss`: decoupled KD (Zhao et al. 2022, arXiv:2203.08679).
* `DistillationDISTLoss`: DIST (Huang et al. 2022, arXiv:2205.10536), correlation of the class probabilities.
* `DistillationSKDLoss`: spherical KD (Guo et al. 2020, arXiv:2010.07485), KD on layer-normalised logits.
* `DistillationWSLLoss`: weighted soft labels (Zhou et al. 2021, arXiv:2102.00650).

DKD, SKD and WSL need each row's target class: the label, as PaddleClas passes the batch's labels to every loss,
or the teacher's top class with `use_target_as_gt` (`ppipe.losses.distillation.target_classes`).
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ppipe.losses.classification import LOSSES
from ppipe.losses.distillation import PairLoss, target_classes


def soft_cross_entropy(student_logits, teacher_logits, temperature: float):
    """Per row: cross entropy of softmax(student / T) against softmax(teacher / T), Hinton's KD term."""
    return -(F.softmax(teacher_logits / temperature, axis=-1)
             * F.log_softmax(student_logits / temperature, axis=-1)).sum(axis=-1)


def label_cross_entropy(logits, target, num_classes: int):
    """Per row: cross entropy of `logits` against class ids `target` (all of them valid)."""
    return -(F.one_hot(target, num_classes).astype(logits.dtype) * F.log_softmax(logits, axis=-1)).sum(axis=-1)


class DistillationKLDivLoss(PairLoss):
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), summed over the classes, averaged over the batch."""

    params = PairLoss.params + ("temperature",)

    def __init__(self, weight=1.0, model_name_pairs=None, key=None, temperature=4.0, name=None):
        super().__init__(weight, model_name_pairs, key, name)
        self.t = float(temperature)

    def pair_loss(self, student, teacher, labels):
        log_p_t = F.log_softmax(teacher / self.t, axis=-1)
        kl = (paddle.exp(log_p_t) * (log_p_t - F.log_softmax(student / self.t, axis=-1))).sum(axis=-1)
        return kl.mean() * self.t ** 2


class DistillationDKDLoss(PairLoss):
    """alpha * TCKD + beta * NCKD at `temperature`: KL of the binary (target class, rest) distributions, and KL
    of the distributions over the non-target classes, each times T^2 and averaged over the batch."""

    params = PairLoss.params + ("temperature", "alpha", "beta", "use_target_as_gt")

    def __init__(self, weight=1.0, model_name_pairs=None, key=None, temperature=1.0, alpha=1.0, beta=1.0,
                 use_target_as_gt=False, name=None):
        super().__init__(weight, model_name_pairs, key, name)
        self.t, self.alpha, self.beta = float(temperature), float(alpha), float(beta)
        self.use_target_as_gt = bool(use_target_as_gt)

    def pair_loss(self, student, teacher, labels):
        target = target_classes(labels, teacher, self.use_target_as_gt)
        gt = F.one_hot(target, student.shape[-1]).astype(student.dtype)
        t = self.t
        p_s, p_t = F.softmax(student / t, axis=-1), F.softmax(teacher / t, axis=-1)
        # target-class KD: binary (target, rest) distributions
        b_s = paddle.stack([(p_s * gt).sum(-1), (p_s * (1 - gt)).sum(-1)], axis=-1)
        b_t = paddle.stack([(p_t * gt).sum(-1), (p_t * (1 - gt)).sum(-1)], axis=-1)
        n = student.shape[0]
        eps = 1e-12
        tckd = (b_t * (paddle.log(b_t + eps) - paddle.log(b_s + eps))).sum() * t * t / n
        # non-target-class KD: distributions over the other classes only (PaddleClas masks the target with -1000)
        q_t = F.softmax(teacher / t - 1000.0 * gt, axis=-1)
        log_q_s = F.log_softmax(student / t - 1000.0 * gt, axis=-1)
        nckd = (q_t * (paddle.log(q_t + eps) - log_q_s)).sum() * t * t / n
        return self.alpha * tckd + self.beta * nckd


def _mean_pearson(a, b, eps: float = 1e-8):
    """Mean over rows of the Pearson correlation of `a`'s and `b`'s rows (PaddleClas's eps in the denominator)."""
    a = a - a.mean(axis=1, keepdim=True)
    b = b - b.mean(axis=1, keepdim=True)
    return ((a * b).sum(axis=1) / (a.norm(axis=1) * b.norm(axis=1) + eps)).mean()


class DistillationDISTLoss(PairLoss):
    """beta * (1 - inter-class relation) + gamma * (1 - intra-class relation): the mean Pearson correlation of the
    two models' softmax probabilities per image (rows), and per class across the batch (columns)."""

    params = PairLoss.params + ("beta", "gamma")

    def __init__(self, weight=1.0, model_name_pairs=None, key=None, beta=1.0, gamma=1.0, name=None):
        super().__init__(weight, model_name_pairs, key, name)
        self.beta, self.gamma = float(beta), float(gamma)

    def pair_loss(self, student, teacher, labels):
        y_s, y_t = F.softmax(student, axis=-1), F.softmax(teacher, axis=-1)
        inter = 1.0 - _mean_pearson(y_s, y_t)
        intra = 1.0 - _mean_pearson(y_s.transpose([1, 0]), y_t.transpose([1, 0]))
        return self.beta * inter + self.gamma * intra


def _spherical(logits, multiplier: float):
    """Logits layer-normalised over the classes (no affine; epsilon 1e-7 as PaddleClas), times `multiplier`."""
    mean = logits.mean(axis=-1, keepdim=True)
    var = ((logits - mean) ** 2).mean(axis=-1, keepdim=True)
    return (logits - mean) / paddle.sqrt(var + 1e-7) * multiplier


class DistillationSKDLoss(PairLoss):
    """alpha * T^2 * KD(T) + (1 - alpha) * CE(target), both on the layer-normalised logits times `multiplier`."""

    params = PairLoss.params + ("temperature", "multiplier", "alpha", "use_target_as_gt")

    def __init__(self, weight=1.0, model_name_pairs=None, key=None, temperature=1.0, multiplier=2.0, alpha=0.9,
                 use_target_as_gt=False, name=None):
        super().__init__(weight, model_name_pairs, key, name)
        self.t, self.multiplier, self.alpha = float(temperature), float(multiplier), float(alpha)
        self.use_target_as_gt = bool(use_target_as_gt)

    def pair_loss(self, student, teacher, labels):
        target = target_classes(labels, teacher, self.use_target_as_gt)
        s, t = _spherical(student, self.multiplier), _spherical(teacher, self.multiplier)
        kd = soft_cross_entropy(s, t, self.t).mean() * self.t ** 2
        ce = label_cross_entropy(s, target, s.shape[-1]).mean()
        return kd * self.alpha + ce * (1.0 - self.alpha)


class DistillationWSLLoss(PairLoss):
    """T^2 * mean over rows of KD(T) * (1 - exp(-r)), r = max(0, CE_student / CE_teacher) against the target class:
    rows the teacher gets right and the student does not weigh most. The weights carry no gradient."""

    params = PairLoss.params + ("temperature",)

    def __init__(self, weight=1.0, model_name_pairs=None, key=None, temperature=2.0, name=None):
        super().__init__(weight, model_name_pairs, key, name)
        self.t = float(temperature)

    def pair_loss(self, student, teacher, labels):
        target = target_classes(labels, teacher)
        num_classes = student.shape[-1]
        ce_s = label_cross_entropy(student.detach(), target, num_classes)
        ce_t = label_cross_entropy(teacher.detach(), target, num_classes)
        ratio = paddle.clip(ce_s / (ce_t + 1e-7), min=0.0)
        weight = 1.0 - paddle.exp(-ratio)
        return self.t ** 2 * (soft_cross_entropy(student, teacher, self.t) * weight).mean()


for _cls in (DistillationKLDivLoss, DistillationDKDLoss, DistillationDISTLoss, DistillationSKDLoss,
             DistillationWSLLoss):
    LOSSES.register(_cls)
