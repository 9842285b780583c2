"""Loading a recipe: YAML file -> `-o Section.key=value` overrides -> typed `Config` -> semantic checks.

Everything that can be known wrong before a worker starts is checked here (unknown keys, wrong types,
unknown operators, losses or metrics, architecture arguments the model does not take, settings ppipe cannot
honour), so a bad recipe fails in a second with the key's name instead of minutes later on a Ray worker.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import re
from typing import Any, Iterable

import yaml

from ppipe.config.overrides import apply_overrides
from ppipe.config.ranges import check_range
from ppipe.config.schema import COUNT, ArchSection, Config
from ppipe.config.typed import ConfigError, coerce_expressions, convert, from_dict, to_dict
from ppipe.model_outputs import LOGITS, OutputKind, check_accepts
from ppipe.registry import named_items

# PaddleClas's Arch keys that are settings of the run, not constructor arguments: the typed `ArchSection` fields.
_ARCH_KEYS = {f.name for f in dataclasses.fields(ArchSection)} - {"kwargs"}


def _split_arch(data: dict) -> dict:
    arch = data.get("Arch")
    if isinstance(arch, dict):
        extra = {k: v for k, v in arch.items() if k not in _ARCH_KEYS}
        data["Arch"] = {**{k: v for k, v in arch.items() if k in _ARCH_KEYS}, "kwargs": extra}
    return data


def validate(cfg: Config) -> Config:
    """Semantic checks that types alone cannot express."""
    if cfg.Global.image_channel not in (3, 4):
        raise ConfigError(f"Global.image_channel: expected 3 (RGB) or 4 (RGB and a zero channel, PaddleClas's "
                          f"\"ultra\" configs), got {cfg.Global.image_channel}")
    # (numeric ranges are declared on the schema's fields and checked as each section is built: ppipe.config.ranges)
    _validate_arch(cfg)
    _validate_optimizer(cfg)
    _validate_amp(cfg)
    _validate_quantization(cfg)
    _validate_data_loaders(cfg)
    _validate_losses_and_metrics(cfg)
    return cfg


def _validate_arch(cfg: Config) -> None:
    from ppipe.models import get_spec
    from ppipe.models.distillation import DISTILLATION, check_return_patterns, parse_models

    arch_num, global_num = cfg.Arch.class_num, cfg.Global.class_num
    if arch_num is not None and global_num is not None and arch_num != global_num:
        raise ConfigError(f"Arch.class_num: {arch_num}, but Global.class_num: {global_num}; the model's outputs and "
                          f"the labels' classes must agree: give one count (Arch.class_num is the model's)")
    if cfg.Arch.name == DISTILLATION:
        for i, (key, model) in enumerate(parse_models(cfg.Arch.kwargs, cfg.Arch.class_num or cfg.Global.class_num)):
            where = f"Arch.models[{i}].{key}"
            if model["class_num"] is not None:  # a free-form entry: typed and ranged here
                check_range(COUNT, convert(int, model["class_num"], f"{where}.class_num"), f"{where}.class_num")
            check_arch_arguments(model["name"], model["class_num"] or 1000, model["kwargs"], where)
            check_return_patterns(model, where)
    else:
        try:
            get_spec(cfg.Arch.name)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"Arch.name: {e}") from None
        check_arch_arguments(cfg.Arch.name, cfg.num_classes, cfg.Arch.kwargs)
    for key in ("use_fused_attn", "use_fused_linear"):
        if getattr(cfg.Arch, key):
            raise ConfigError(f"Arch.{key}: PaddleClas's fused attention/linear GPU kernels (SwinTransformer) are not "
                              f"in ppipe, whose models have only the plain attention and linear layers; set it to "
                              f"false (the published recipes' value)")


def _validate_optimizer(cfg: Config) -> None:
    from ppipe.optim import OPTIMIZERS, build_lr, gradient_clip

    OPTIMIZERS.get(cfg.Optimizer.name, "Optimizer.name")
    # the schedule as training builds it (pure Python, no tensors), so what it needs (Piecewise's values, Step's
    # step_size, one rate) is checked now rather than on the workers; one step per epoch is as good as any count
    build_lr(cfg.Optimizer.lr, cfg.Global.epochs, steps_per_epoch=1)
    gradient_clip(cfg.Optimizer)
    if cfg.Optimizer.lr.step_each_epoch is not None:
        logging.getLogger("ppipe.config").info(
            "Optimizer.lr.step_each_epoch: %s is not used: ppipe counts each epoch's steps from the prepared data",
            cfg.Optimizer.lr.step_each_epoch)


def _validate_data_loaders(cfg: Config) -> None:
    from ppipe.data import create_batch_operators, create_operators

    for split in ("Train", "Eval"):
        loader = getattr(cfg.DataLoader, split)
        if loader is None:
            continue
        where = f"DataLoader.{split}.dataset"
        try:
            create_operators(loader.dataset.transform_ops)
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"{where}.transform_ops: {e}") from None
        try:
            create_batch_operators(loader.dataset.batch_transform_ops, class_num=cfg.num_classes)
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"{where}.batch_transform_ops: {e}") from None
        if loader.sampler.batch_size < 1:
            raise ConfigError(f"DataLoader.{split}.sampler.batch_size: expected >= 1")


def _train_outputs(cfg: Config) -> OutputKind:
    """What the recipe's model returns in training (`ppipe.model_outputs`), as the model declares it."""
    from ppipe.models import get_spec
    from ppipe.models.distillation import DISTILLATION, DistillationModel

    return DistillationModel.train_outputs if cfg.Arch.name == DISTILLATION else get_spec(cfg.Arch.name).train_outputs


def _validate_losses_and_metrics(cfg: Config) -> None:
    """Build every loss and metric of the recipe (names, keys and values checked) and ask each whether it reads
    what the model gives: the training model's outputs in `Train`, one logits tensor in `Eval` (evaluation
    scores the exported model, in eval mode)."""
    from ppipe.losses import LOSSES, CombinedLoss
    from ppipe.metrics import METRICS, build_metrics

    kinds = {"Train": (_train_outputs(cfg), f"{cfg.Arch.name} in training"),
             "Eval": (LOGITS, "the evaluated model")}
    for split, (kind, model) in kinds.items():
        CombinedLoss(getattr(cfg.Loss, split), f"Loss.{split}")
        build_metrics(getattr(cfg.Metric, split), f"Metric.{split}")
        for section, registry in (("Loss", LOSSES), ("Metric", METRICS)):
            where = f"{section}.{split}"
            for i, (name, _) in enumerate(named_items(getattr(getattr(cfg, section), split), where)):
                check_accepts(registry, name, kind, f"{where}[{i}]", model)


def check_arch_arguments(name: str, num_classes: int, kwargs: dict[str, Any], where: str = "Arch") -> None:
    """Check the extra Arch keys of zoo architecture `name` against what its entrypoint and constructor take.

    The model is built as training builds it (`create_model(name, num_classes=..., **kwargs)`), but under
    `paddle.LazyGuard`, which allocates and initialises no weights (well under a second even for the largest
    transformers; the global random state is untouched). Python's own argument binding then decides: a key the
    constructor lacks, one the variant's entrypoint already sets, or a value the constructor refuses is a
    `ConfigError` naming the key here instead of a failure on a Ray worker.
    """
    if not kwargs:
        return
    if "num_classes" in kwargs:  # training passes the class count as num_classes itself
        raise ConfigError(f"{where}.num_classes: give the class count as {where}.class_num")
    failure = _lazy_build_failure(name, {"num_classes": num_classes, **kwargs})
    if failure is None:
        return
    kind, detail = failure
    if kind == "unknown":
        settings = f" (besides {', '.join(sorted(_ARCH_KEYS - {'name'}))})" if where == "Arch" else ""
        raise ConfigError(f"unknown key {where}.{detail}: not an argument of {name}; it takes "
                          f"{', '.join(arch_arguments(name)) or 'no further arguments'}{settings}")
    if kind == "repeated":
        raise ConfigError(f"{where}.{detail}: {name} sets {detail} itself (it defines the variant); remove it")
    raise ConfigError(f"{where}: {name} cannot be built with {kwargs}: {detail}")


def arch_arguments(name: str) -> list[str]:
    """The keyword arguments an Arch section may give zoo architecture `name`: its model class's constructor
    parameters, less `num_classes` and the ones its entrypoint sets itself (giving those again is refused)."""
    import paddle

    from ppipe.models import create_model

    with paddle.LazyGuard():
        cls = type(create_model(name))
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p.name for p in params
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "num_classes" and p.default is not p.empty
            and (_lazy_build_failure(name, {p.name: p.default}) or ("",))[0] != "repeated"]


def _lazy_build_failure(name: str, kwargs: dict[str, Any]) -> tuple[str, str] | None:
    """Build `name` with `kwargs` without weights: None if it builds, else ("unknown", key), ("repeated", key) or
    ("refused", why)."""
    import paddle

    from ppipe.models import create_model

    try:
        with paddle.LazyGuard():
            create_model(name, **kwargs)
        return None
    except TypeError as e:
        found = (re.search(r"unexpected keyword argument '(\w+)'", str(e)),
                 re.search(r"multiple values for (?:keyword )?argument '(\w+)'", str(e)))
        if found[0]:
            return "unknown", found[0][1]
        if found[1]:
            return "repeated", found[1][1]
        return "refused", f"TypeError: {e}"
    except KeyError as e:
        # CPython 3.11 reports a keyword argument given twice (`f(scale=1, **{"scale": 2})`) as a bare
        # KeyError('scale') instead of its TypeError when that happens while another exception is being handled.
        if len(e.args) == 1 and e.args[0] in kwargs:
            return "repeated", e.args[0]
        return "refused", f"KeyError: {e}"
    except Exception as e:  # a value the constructor refuses (asserts, ValueError, ...)
        return "refused", f"{type(e).__name__}: {e}"


def _validate_amp(cfg: Config) -> None:
    amp = cfg.AMP
    # AMP with Global.device: cpu loads: a GPU recipe smoke-tested on a CPU machine trains in float32, and its
    # workers say so (ppipe.train.amp.MixedPrecision), as with Global.device: gpu on CPU workers.
    if not amp.use_amp:
        return
    if amp.level == "O2" and cfg.EMA is not None:
        raise ConfigError("EMA with AMP.level O2 is not supported: the averaged float32 weights cannot be swapped "
                          "into the float16 model for evaluation; use AMP.level O1 with EMA")


def _validate_quantization(cfg: Config) -> None:
    from ppipe.models.distillation import DISTILLATION

    if cfg.Quantization is not None and cfg.Quantization.mode == "qat" and cfg.Arch.name == DISTILLATION:
        raise ConfigError("Quantization.mode: qat with Arch.name: DistillationModel would fake-quantize the teacher "
                          "too; distil first, then train the student alone with QAT (its weights as "
                          "Global.pretrained_model)")


def read_yaml_mapping(path: str | os.PathLike, what: str, expected: str) -> dict:
    """The YAML mapping in `path`; a missing file, invalid YAML or anything but a mapping is a ConfigError that
    names `what` (e.g. "config file") and the path."""
    if not os.path.isfile(path):
        raise ConfigError(f"{what} {path!s} does not exist")
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{what} {path!s} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path!s}: expected {expected}")
    return data


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = (), *,
                data: dict | None = None) -> Config:
    """Load a PaddleClas-style YAML recipe (or `data`), apply overrides, and return a validated `Config`."""
    if data is None:
        if path is None:
            raise ConfigError("no config given: pass a YAML path or a mapping")
        data = read_yaml_mapping(path, "config file", "a mapping of sections at the top level")
    data = apply_overrides(data, overrides)
    data = _split_arch(coerce_expressions(data))
    return validate(from_dict(Config, data))


def config_to_data(cfg: Config) -> dict:
    """The recipe as plain data in PaddleClas's shape (Arch extras back at the Arch level); `load_config(data=...)`
    gives the same Config back."""
    data = to_dict(cfg)
    arch = data["Arch"]
    data["Arch"] = {**{k: v for k, v in arch.items() if k != "kwargs"}, **arch["kwargs"]}
    return data


def config_to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(config_to_data(cfg), sort_keys=False)
