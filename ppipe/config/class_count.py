"""Does the recipe's class count fit the prepared dataset? A check for when training opens its data.

The recipe's `class_num` sizes the model's output layer; the dataset's labels run from 0 to its class count - 1.
A label with no output fails deep inside the loss; more outputs than classes trains silently (a 1000-way
head on 10 digits) unless that is what is meant, fine-tuning on a subset of the model's classes, which the recipe
then says with `Global.allow_class_subset: true`.
"""

from __future__ import annotations

from ppipe.config.schema import Config
from ppipe.errors import ConfigError


def _class_num_key(cfg: Config) -> str:
    if cfg.Arch.class_num is not None:
        return "Arch.class_num"
    return "Global.class_num" if cfg.Global.class_num is not None else "Arch.class_num (unset: PaddleClas's 1000)"


def _output_counts(cfg: Config) -> list[tuple[str, int]]:
    """(the key that sets it, the count) of every model output layer the recipe trains."""
    from ppipe.models.distillation import DISTILLATION, parse_models

    if cfg.Arch.name != DISTILLATION:
        return [(_class_num_key(cfg), cfg.num_classes)]
    counts = []
    for i, (key, model) in enumerate(parse_models(cfg.Arch.kwargs, cfg.Arch.class_num or cfg.Global.class_num)):
        own = "class_num" in cfg.Arch.kwargs["models"][i][key]
        counts.append((f"Arch.models[{i}].{key}.class_num" if own else _class_num_key(cfg),
                       model["class_num"] or 1000))
    return counts


def check_class_num(cfg: Config, dataset_num_classes: int) -> None:
    """Raise ConfigError naming the class-count key when the model(s) of `cfg` cannot train on a dataset of
    `dataset_num_classes` classes: fewer outputs than classes always; more outputs only with
    `Global.allow_class_subset`."""
    for key, outputs in _output_counts(cfg):
        if dataset_num_classes > outputs:
            raise ConfigError(f"{key}: {outputs} outputs, but the prepared dataset has {dataset_num_classes} classes "
                              f"(labels {outputs}..{dataset_num_classes - 1} would have no output); set "
                              f"Arch.class_num: {dataset_num_classes}")
        if dataset_num_classes < outputs and not cfg.Global.allow_class_subset:
            raise ConfigError(f"{key}: {outputs} outputs, but the prepared dataset has {dataset_num_classes} classes; "
                              f"set Arch.class_num: {dataset_num_classes}, or Global.allow_class_subset: true "
                              f"(-o Global.allow_class_subset=true) to train {outputs} outputs on the dataset's "
                              f"{dataset_num_classes} classes (fine-tuning on a subset of the model's classes)")
