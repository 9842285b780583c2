"""Optimizers, gradient clipping and learning-rate schedules from PaddleClas's `Optimizer` section.

Schedules step once per iteration, as PaddleClas's do (`by_epoch: false`), so `warmup_epoch` and epoch-based
boundaries are converted to iterations with the number of steps each epoch takes on this worker. `scale_lr`
multiplies a whole schedule for the linear scaling rule (Goyal et al., 2017, arXiv:1706.02677). Schedules and
optimizers are looked up by their PaddleClas names in `LR_SCHEDULES` and `OPTIMIZERS` (an unknown name is answered
with the closest known ones).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

import paddle

from ppipe.errors import ConfigError
from ppipe.registry import Registry

if TYPE_CHECKING:  # the config sections are only annotations here: `config` validates with this module
    from ppipe.config.schema import LRSection, OptimizerSection

# PaddleClas's schedule names -> builder(cfg, steps) -> (scheduler, its peak rate, where a warm-up ends)
LR_SCHEDULES: Registry = Registry("learning-rate schedule")
# PaddleClas's optimizer names -> builder(cfg, model, lr_scheduler) -> paddle.optimizer.Optimizer
OPTIMIZERS: Registry = Registry("optimizer")


class Steps(NamedTuple):
    """A schedule's length in iterations: all of it, its warm-up, and one epoch."""
    total: int
    warmup: int
    per_epoch: int


def build_lr(cfg: LRSection, epochs: int, steps_per_epoch: int):
    """A Paddle LRScheduler for `cfg`; `.step()` is to be called after every optimizer step."""
    per_epoch = max(1, steps_per_epoch)
    steps = Steps(epochs * per_epoch, cfg.warmup_epoch * per_epoch, per_epoch)
    sched, peak = LR_SCHEDULES.get(cfg.name, "Optimizer.lr.name")(cfg, steps)
    if steps.warmup > 0:
        sched = paddle.optimizer.lr.LinearWarmup(sched, warmup_steps=steps.warmup, start_lr=cfg.warmup_start_lr,
                                                 end_lr=peak)
    return sched


def _single_rate(cfg: LRSection) -> float:
    if isinstance(cfg.learning_rate, list):
        raise ConfigError(f"Optimizer.lr.learning_rate: a single number is expected for {cfg.name}")
    return cfg.learning_rate


@LR_SCHEDULES.register(name="Cosine")
def _cosine(cfg: LRSection, steps: Steps):
    base = _single_rate(cfg)
    return paddle.optimizer.lr.CosineAnnealingDecay(base, T_max=max(1, steps.total - steps.warmup),
                                                    eta_min=cfg.eta_min), base


@LR_SCHEDULES.register(name="Constant")
def _constant(cfg: LRSection, steps: Steps):
    base = _single_rate(cfg)
    return paddle.optimizer.lr.LambdaDecay(base, lambda _: 1.0), base


@LR_SCHEDULES.register(name="Linear")
def _linear(cfg: LRSection, steps: Steps):
    base = _single_rate(cfg)
    return paddle.optimizer.lr.PolynomialDecay(base, decay_steps=max(1, steps.total - steps.warmup),
                                               end_lr=cfg.end_lr, power=cfg.power), base


@LR_SCHEDULES.register(name="Piecewise")
def _piecewise(cfg: LRSection, steps: Steps):
    if not cfg.decay_epochs or not cfg.values or len(cfg.values) != len(cfg.decay_epochs) + 1:
        raise ConfigError("Optimizer.lr: Piecewise needs decay_epochs and one more value than boundaries")
    boundaries = [e * steps.per_epoch - steps.warmup for e in cfg.decay_epochs]
    return paddle.optimizer.lr.PiecewiseDecay(boundaries, cfg.values), cfg.values[0]


@LR_SCHEDULES.register(name="Step")
def _step(cfg: LRSection, steps: Steps):
    if not cfg.step_size:
        raise ConfigError("Optimizer.lr.step_size: required for the Step schedule")
    base = _single_rate(cfg)
    return paddle.optimizer.lr.StepDecay(base, step_size=cfg.step_size * steps.per_epoch, gamma=cfg.gamma), base


@LR_SCHEDULES.register(name="MultiStepDecay")
def _multi_step(cfg: LRSection, steps: Steps):
    if not cfg.milestones:
        raise ConfigError("Optimizer.lr.milestones: required for the MultiStepDecay schedule")
    base = _single_rate(cfg)
    return paddle.optimizer.lr.MultiStepDecay(base, milestones=[m * steps.per_epoch for m in cfg.milestones],
                                              gamma=cfg.gamma), base


def lr_fields(cfg: LRSection) -> tuple[str, ...]:
    """The learning-rate-valued fields `build_lr` reads for `cfg`'s schedule: the rates the schedule runs at, its
    floor (Cosine's `eta_min`, Linear's `end_lr`) and, with a warm-up, where the warm-up starts."""
    fields = ("values",) if cfg.name == "Piecewise" else ("learning_rate",)
    fields += {"Cosine": ("eta_min",), "Linear": ("end_lr",)}.get(cfg.name, ())
    return fields + (("warmup_start_lr",) if cfg.warmup_epoch > 0 else ())


def _rates(value) -> str:
    return f"[{', '.join(_rates(v) for v in value)}]" if isinstance(value, list) else f"{value:.6g}"


def scale_lr(cfg: LRSection, factor: float) -> tuple[LRSection, list[str]]:
    """`cfg` with every rate its schedule uses multiplied by `factor`, so the whole schedule (warm-up start, peak,
    decay steps, floor) scales alike; and one "field old -> new" entry per field that changed."""
    changed, notes = {}, []
    for name in lr_fields(cfg):
        value = getattr(cfg, name)
        if value is None:  # a Piecewise schedule without values: build_lr names the problem
            continue
        scaled = [v * factor for v in value] if isinstance(value, list) else value * factor
        if scaled != value:
            changed[name] = scaled
            notes.append(f"{name} {_rates(value)} -> {_rates(scaled)}")
    return dataclasses.replace(cfg, **changed), notes


def _no_decay_filter(cfg: OptimizerSection, model: paddle.nn.Layer):
    names = (cfg.no_weight_decay_name or "").split()
    one_dim = {p.name for p in model.parameters() if cfg.one_dim_param_no_weight_decay and len(p.shape) == 1}
    by_name = {p.name for n, p in model.named_parameters() if any(s in n for s in names)}
    skip = one_dim | by_name
    return (lambda pname: pname not in skip) if skip else None


def gradient_clip(cfg: OptimizerSection):
    """The optimizer's gradient clipping: `clip_grad` (global norm), `clip_norm` (each parameter's norm), or None.
    Paddle applies it inside `optimizer.step()`, after AMP's GradScaler has unscaled the gradients."""
    if cfg.clip_grad is not None and cfg.clip_norm is not None:
        raise ConfigError("Optimizer: clip_grad (global norm) and clip_norm (per-parameter norm) are two ways to "
                          "clip the same gradients; set one of them")
    # (each norm's range, > 0, is declared on OptimizerSection and checked when a recipe loads)
    if cfg.clip_grad is not None:
        return paddle.nn.ClipGradByGlobalNorm(clip_norm=cfg.clip_grad)
    if cfg.clip_norm is not None:
        return paddle.nn.ClipGradByNorm(clip_norm=cfg.clip_norm)
    return None


def build_optimizer(cfg: OptimizerSection, model: paddle.nn.Layer, lr_scheduler) -> paddle.optimizer.Optimizer:
    return OPTIMIZERS.get(cfg.name, "Optimizer.name")(cfg, model, lr_scheduler)


@OPTIMIZERS.register(name="AdamW")
def _adamw(cfg: OptimizerSection, model: paddle.nn.Layer, lr_scheduler):
    coeff = cfg.weight_decay if cfg.weight_decay is not None else (cfg.regularizer.coeff if cfg.regularizer else 0.01)
    return paddle.optimizer.AdamW(lr_scheduler, parameters=model.parameters(), beta1=cfg.beta1, beta2=cfg.beta2,
                                  epsilon=cfg.epsilon, weight_decay=coeff,
                                  apply_decay_param_fun=_no_decay_filter(cfg, model), grad_clip=gradient_clip(cfg),
                                  multi_precision=cfg.multi_precision)


def _regularized(cfg: OptimizerSection, model: paddle.nn.Layer):
    """The parameters (in groups where some are exempt from weight decay) and the regularizer of `cfg`."""
    params = model.parameters()
    decay_filter = _no_decay_filter(cfg, model)
    if decay_filter is not None and cfg.regularizer:
        # Paddle applies an optimizer-level regularizer to every parameter; exclusions go per parameter group.
        decay = [p for p in params if decay_filter(p.name)]
        keep = [p for p in params if not decay_filter(p.name)]
        params = [{"params": decay}, {"params": keep, "weight_decay": 0.0}]
    reg = None
    if cfg.regularizer and cfg.regularizer.coeff > 0:
        reg = (paddle.regularizer.L2Decay if cfg.regularizer.name == "L2" else paddle.regularizer.L1Decay)(
            cfg.regularizer.coeff)
    return params, reg


@OPTIMIZERS.register(name="Momentum")
def _momentum(cfg: OptimizerSection, model: paddle.nn.Layer, lr_scheduler):
    params, reg = _regularized(cfg, model)
    return paddle.optimizer.Momentum(lr_scheduler, momentum=cfg.momentum, parameters=params, weight_decay=reg,
                                     grad_clip=gradient_clip(cfg), use_nesterov=cfg.use_nesterov,
                                     multi_precision=cfg.multi_precision)


@OPTIMIZERS.register(name="SGD")
def _sgd(cfg: OptimizerSection, model: paddle.nn.Layer, lr_scheduler):
    params, reg = _regularized(cfg, model)
    return paddle.optimizer.SGD(lr_scheduler, parameters=params, weight_decay=reg, grad_clip=gradient_clip(cfg),
                                multi_precision=cfg.multi_precision)


@OPTIMIZERS.register(name="RMSProp")
def _rmsprop(cfg: OptimizerSection, model: paddle.nn.Layer, lr_scheduler):
    params, reg = _regularized(cfg, model)
    return paddle.optimizer.RMSProp(lr_scheduler, rho=cfg.rho, epsilon=cfg.epsilon, momentum=cfg.momentum,
                                    parameters=params, weight_decay=reg, grad_clip=gradient_clip(cfg))
