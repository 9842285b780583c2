"""Loading a recipe: YAML file -> `-o Section.key=value` overrides -> typed `Config` -> semantic checks.

Everything that can be known wrong before a worker starts is checked here (unknown keys, wrong types,
unknown operators, losses or metrics, settings ppipe cannot honour), so a bad recipe fails in a second
with the key's name instead of minutes later on a Ray worker.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Iterable

import yaml

from ppipe.config.schema import Config
from ppipe.config.typed import ConfigError, from_dict, single_key_items, to_dict

_ARCH_KEYS = {"name", "class_num", "pretrained", "use_ssld", "use_sync_bn"}


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected Section.key=value")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({e})") from None
    return parts, value


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Set `Section.key.sub=value` paths (list items by index, as PaddleClas's `-o` does)."""
    data = copy.deepcopy(data)
    for text in overrides or ():
        parts, value = _parse_override(text)
        node: Any = data
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = ".".join(parts[: i + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"override {text!r}: {where} is not an index of a {len(node)}-item list")
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                else:
                    if node.get(part) is None:
                        node[part] = {}
                    node = node[part]
            else:
                raise ConfigError(f"override {text!r}: {'.'.join(parts[:i])} is a value, not a section")
    return data


def _split_arch(data: dict) -> dict:
    arch = data.get("Arch")
    if isinstance(arch, dict):
        extra = {k: v for k, v in arch.items() if k not in _ARCH_KEYS}
        data["Arch"] = {**{k: v for k, v in arch.items() if k in _ARCH_KEYS}, "kwargs": extra}
    return data


def _coerce_expressions(node: Any) -> Any:
    # PaddleClas recipes write numbers as expressions (`scale: 1.0/255.0`), which PaddleClas evaluates;
    # accept exactly that form (two numbers and one operator), nothing more general.
    if isinstance(node, dict):
        return {k: _coerce_expressions(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_coerce_expressions(v) for v in node]
    if isinstance(node, str):
        for op in ("/", "*"):
            left, sep, right = node.partition(op)
            if sep:
                try:
                    a, b = float(left), float(right)
                except ValueError:
                    return node
                return a / b if op == "/" else a * b
    return node


def validate(cfg: Config) -> Config:
    """Semantic checks that types alone cannot express."""
    from ppipe.data import create_batch_operators, create_operators
    from ppipe.models import get_spec
    from ppipe.train.losses import LOSSES
    from ppipe.train.metrics import METRICS

    if cfg.Arch.name == "DistillationModel":
        from ppipe.distill.model import parse_models

        parse_models(cfg.Arch.kwargs, cfg.Arch.class_num or cfg.Global.class_num)
    else:
        try:
            get_spec(cfg.Arch.name)
        except (KeyError, ValueError) as e:
            raise ConfigError(f"Arch.name: {e}") from None
    if cfg.Global.use_dali:
        raise ConfigError("Global.use_dali: DALI is not supported; ppipe's own input pipeline reads prepared shards")
    _validate_amp(cfg)
    if cfg.Global.update_freq < 1:
        raise ConfigError(f"Global.update_freq: expected >= 1, got {cfg.Global.update_freq}")
    if cfg.Global.epochs < 1:
        raise ConfigError(f"Global.epochs: expected >= 1, got {cfg.Global.epochs}")
    if cfg.Ray.num_workers < 0:
        raise ConfigError(f"Ray.num_workers: expected >= 0, got {cfg.Ray.num_workers}")
    for split in ("Train", "Eval"):
        loader = getattr(cfg.DataLoader, split)
        if loader is None:
            continue
        where = f"DataLoader.{split}.dataset.transform_ops"
        try:
            create_operators(loader.dataset.transform_ops)
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"{where}: {e}") from None
        try:
            create_batch_operators(loader.dataset.batch_transform_ops, class_num=cfg.num_classes)
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"DataLoader.{split}.dataset.batch_transform_ops: {e}") from None
        if loader.sampler.batch_size < 1:
            raise ConfigError(f"DataLoader.{split}.sampler.batch_size: expected >= 1")
    for split in ("Train", "Eval"):
        for name, params in single_key_items(getattr(cfg.Loss, split), f"Loss.{split}"):
            if split == "Train" and cfg.Arch.name == "DistillationModel" and name == "CELoss":
                raise ConfigError("Loss.Train: CELoss needs one model's output, but a DistillationModel gives "
                                  "several: use DistillationGTCELoss (model_names: [Student])")
            if split == "Train" and cfg.Arch.name == "GoogLeNet" and name == "CELoss":
                raise ConfigError("Loss.Train: CELoss needs one output, but GoogLeNet trains with its main and two "
                                  "auxiliary heads' logits: use GoogLeNetLoss (as PaddleClas's GoogLeNet recipe does)")
            if name not in LOSSES:
                raise ConfigError(f"Loss.{split}: unknown loss {name!r}; known: {', '.join(sorted(LOSSES))}")
            LOSSES[name].check_params(params, f"Loss.{split}.{name}")
        for name, params in single_key_items(getattr(cfg.Metric, split), f"Metric.{split}"):
            if name not in METRICS:
                raise ConfigError(f"Metric.{split}: unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
    return cfg


def _validate_amp(cfg: Config) -> None:
    amp = cfg.AMP
    if not amp.use_amp:
        return
    if cfg.Global.device != "gpu" or not cfg.Ray.use_gpu:
        raise ConfigError("AMP.use_amp: mixed precision (float16) runs on GPUs only (on a CPU Paddle's auto_cast and "
                          "GradScaler do nothing): set Global.device: gpu and Ray.use_gpu: true, or AMP.use_amp: false")
    if amp.scale_loss <= 0:
        raise ConfigError(f"AMP.scale_loss: expected > 0, got {amp.scale_loss}")
    if amp.level == "O2" and cfg.EMA is not None:
        raise ConfigError("EMA with AMP.level O2 is not supported: the averaged float32 weights cannot be swapped "
                          "into the float16 model for evaluation; use AMP.level O1 with EMA")


def load_config(path: str | os.PathLike | None = None, overrides: Iterable[str] = (), *,
                data: dict | None = None) -> Config:
    """Load a PaddleClas-style YAML recipe (or `data`), apply overrides, and return a validated `Config`."""
    if data is None:
        if path is None:
            raise ConfigError("no config given: pass a YAML path or a mapping")
        if not os.path.isfile(path):
            raise ConfigError(f"config file {path!s} does not exist")
        with open(path, encoding="utf-8") as f:
            try:
                data = yaml.safe_load(f) or {}
            except yaml.YAMLError as e:
                raise ConfigError(f"config file {path!s} is not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path!s}: expected a mapping of sections at the top level")
    data = apply_overrides(data, overrides)
    data = _split_arch(_coerce_expressions(data))
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
