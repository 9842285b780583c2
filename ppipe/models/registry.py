"""The model registry: `@register_model(spec(...))` entrypoints, looked up by their PaddleClas names.

timm's decorator and `list_models`/`create_model`, with torchvision's rule that registering a name twice is an error.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import os
from typing import Any, Callable

import paddle

from ppipe.models.spec import ModelSpec

_MODELS: dict[str, tuple[Callable[..., paddle.nn.Layer], ModelSpec]] = {}


class UnknownModelError(KeyError, ValueError):
    """No model is registered under this name; the message lists the closest registered names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DuplicateModelError(ValueError):
    """A model name was registered twice."""


def register_model(model_spec: ModelSpec):
    """Register the decorated entrypoint under its function name (or `model_spec.name` when set)."""

    def decorate(fn: Callable[..., paddle.nn.Layer]) -> Callable[..., paddle.nn.Layer]:
        name = model_spec.name or fn.__name__
        if name in _MODELS:
            raise DuplicateModelError(f"model {name!r} is already registered (by {_MODELS[name][0].__module__})")
        _MODELS[name] = (fn, dataclasses.replace(model_spec, name=name))
        return fn

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching the fnmatch `pattern` (case-sensitive)."""
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))


def _lookup(name: str) -> tuple[Callable[..., paddle.nn.Layer], ModelSpec]:
    try:
        return _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_MODELS), n=5, cutoff=0.5)
        if not close:  # fall back to a case-insensitive match on the family prefix
            close = [n for n in sorted(_MODELS) if n.lower().startswith(name.lower()[:4])][:5]
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise UnknownModelError(f"unknown model {name!r}{hint} (see list_models())") from None


def get_spec(name: str) -> ModelSpec:
    """The published figures of model `name`."""
    return _lookup(name)[1]


def create_model(name: str, num_classes: int = 1000, pretrained: str | os.PathLike | None = None, *,
                 drop_classifier: bool | None = None, **kwargs: Any) -> paddle.nn.Layer:
    """Build model `name` with `num_classes` outputs, optionally loading a PaddleClas `.pdparams` file.

    The model is built inside `paddle.utils.unique_name.guard()` so parameter names do not depend on what was
    built before. `kwargs` go to the family's constructor (e.g. `dropout_prob`, `class_expand`); PaddleClas's
    `class_num` is accepted as an alias of `num_classes` so an `Arch:` section of its YAML can be passed as is.
    `pretrained` is a local path (there are no downloads): every key must match (see
    `ppipe.models.weights.load_pretrained`, which also documents `drop_classifier` for fine-tuning: by default a
    classifier whose shape differs from the checkpoint's is skipped with a warning and keeps its fresh init).
    The returned model carries its `ModelSpec` as `model.spec`.
    """
    if "class_num" in kwargs:
        class_num = kwargs.pop("class_num")
        if num_classes not in (1000, class_num):
            raise ValueError(f"num_classes={num_classes} and class_num={class_num} disagree")
        num_classes = class_num
    fn, model_spec = _lookup(name)
    if pretrained is not None and not isinstance(pretrained, (str, os.PathLike)):
        raise TypeError(f"pretrained must be a path to a .pdparams file, got {pretrained!r} (no downloads)")
    with paddle.utils.unique_name.guard():
        model = fn(num_classes=num_classes, **kwargs)
    model.spec = model_spec
    if pretrained is not None:
        from ppipe.models.weights import load_pretrained

        load_pretrained(model, pretrained, drop_classifier=drop_classifier)
    return model


def models_table(pattern: str = "*") -> list[dict[str, Any]]:
    """Rows for `ppipe models list --json`: name, family, params_m, input_size of each matching model."""
    return [{"name": n, "family": s.family, "params_m": s.params_m, "input_size": s.input_size}
            for n in list_models(pattern) for s in [_MODELS[n][1]]]
