"""Optimizers and learning-rate schedules from PaddleClas's `Optimizer` section.

Schedules step once per iteration, as PaddleClas's do (`by_epoch: false`), so `warmup_epoch` and epoch-based
boundaries are converted to iterations with the number of steps each epoch takes on this worker.
"""

from __future__ import annotations

import paddle

from ppipe.config.schema import LRSection, OptimizerSection
from ppipe.config.typed import ConfigError


def build_lr(cfg: LRSection, epochs: int, steps_per_epoch: int):
    """A Paddle LRScheduler for `cfg`; `.step()` is to be called after every optimizer step."""
    steps_per_epoch = max(1, steps_per_epoch)
    total = epochs * steps_per_epoch
    warmup = cfg.warmup_epoch * steps_per_epoch
    base = cfg.learning_rate
    if cfg.name != "Piecewise" and isinstance(base, list):
        raise ConfigError(f"Optimizer.lr.learning_rate: a single number is expected for {cfg.name}")
    if cfg.name == "Cosine":
        sched = paddle.optimizer.lr.CosineAnnealingDecay(base, T_max=max(1, total - warmup), eta_min=cfg.eta_min)
    elif cfg.name == "Constant":
        sched = paddle.optimizer.lr.LambdaDecay(base, lambda _: 1.0)
    elif cfg.name == "Linear":
        sched = paddle.optimizer.lr.PolynomialDecay(base, decay_steps=max(1, total - warmup),
                                                    end_lr=cfg.end_lr, power=cfg.power)
    elif cfg.name == "Piecewise":
        if not cfg.decay_epochs or not cfg.values or len(cfg.values) != len(cfg.decay_epochs) + 1:
            raise ConfigError("Optimizer.lr: Piecewise needs decay_epochs and one more value than boundaries")
        sched = paddle.optimizer.lr.PiecewiseDecay([e * steps_per_epoch - warmup for e in cfg.decay_epochs],
                                                   cfg.values)
        base = cfg.values[0]
    elif cfg.name == "Step":
        if not cfg.step_size:
            raise ConfigError("Optimizer.lr.step_size: required for the Step schedule")
        sched = paddle.optimizer.lr.StepDecay(base, step_size=cfg.step_size * steps_per_epoch, gamma=cfg.gamma)
    elif cfg.name == "MultiStepDecay":
        if not cfg.milestones:
            raise ConfigError("Optimizer.lr.milestones: required for the MultiStepDecay schedule")
        sched = paddle.optimizer.lr.MultiStepDecay(base, milestones=[m * steps_per_epoch for m in cfg.milestones],
                                                   gamma=cfg.gamma)
    else:  # unreachable: the schema's Literal already limits the names
        raise ConfigError(f"Optimizer.lr.name: unknown schedule {cfg.name!r}")
    if warmup > 0:
        sched = paddle.optimizer.lr.LinearWarmup(sched, warmup_steps=warmup, start_lr=cfg.warmup_start_lr,
                                                 end_lr=base)
    return sched


def _no_decay_filter(cfg: OptimizerSection, model: paddle.nn.Layer):
    names = (cfg.no_weight_decay_name or "").split()
    one_dim = {p.name for p in model.parameters() if cfg.one_dim_param_no_weight_decay and len(p.shape) == 1}
    by_name = {p.name for n, p in model.named_parameters() if any(s in n for s in names)}
    skip = one_dim | by_name
    return (lambda pname: pname not in skip) if skip else None


def build_optimizer(cfg: OptimizerSection, model: paddle.nn.Layer, lr_scheduler) -> paddle.optimizer.Optimizer:
    params = model.parameters()
    decay_filter = _no_decay_filter(cfg, model)
    if cfg.name == "AdamW":
        coeff = cfg.weight_decay if cfg.weight_decay is not None else (cfg.regularizer.coeff if cfg.regularizer else 0.01)
        return paddle.optimizer.AdamW(lr_scheduler, parameters=params, beta1=cfg.beta1, beta2=cfg.beta2,
                                      epsilon=cfg.epsilon, weight_decay=coeff, apply_decay_param_fun=decay_filter,
                                      multi_precision=cfg.multi_precision)
    if decay_filter is not None and cfg.regularizer:
        # Paddle applies an optimizer-level regularizer to every parameter; exclusions go per parameter group.
        decay = [p for p in params if decay_filter(p.name)]
        keep = [p for p in params if not decay_filter(p.name)]
        params = [{"params": decay}, {"params": keep, "weight_decay": 0.0}]
    reg = None
    if cfg.regularizer and cfg.regularizer.coeff > 0:
        reg = (paddle.regularizer.L2Decay if cfg.regularizer.name == "L2" else paddle.regularizer.L1Decay)(
            cfg.regularizer.coeff)
    if cfg.name == "Momentum":
        return paddle.optimizer.Momentum(lr_scheduler, momentum=cfg.momentum, parameters=params, weight_decay=reg,
                                         use_nesterov=cfg.use_nesterov, multi_precision=cfg.multi_precision)
    if cfg.name == "SGD":
        return paddle.optimizer.SGD(lr_scheduler, parameters=params, weight_decay=reg,
                                    multi_precision=cfg.multi_precision)
    if cfg.name == "RMSProp":
        return paddle.optimizer.RMSProp(lr_scheduler, rho=cfg.rho, epsilon=cfg.epsilon, momentum=cfg.momentum,
                                        parameters=params, weight_decay=reg)
    raise ConfigError(f"Optimizer.name: unknown optimizer {cfg.name!r}")
