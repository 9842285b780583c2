"""Activations chosen by name, as PaddleClas's configs spell them."""

from __future__ import annotations

import paddle.nn as nn

_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish, "hardsigmoid": nn.Hardsigmoid,
         "gelu": nn.GELU, "silu": nn.Silu, "swish": nn.Swish, "sigmoid": nn.Sigmoid, "leaky_relu": nn.LeakyReLU,
         "tanh": nn.Tanh, "prelu": nn.PReLU}


def register_act(name: str, cls: type[nn.Layer]) -> None:
    """Add an activation (a family with its own, e.g. a quick-GELU); names are unique."""
    if name in _ACTS and _ACTS[name] is not cls:
        raise ValueError(f"activation {name!r} is already registered")
    _ACTS[name] = cls


def create_act(name: str | None) -> nn.Layer:
    """A fresh activation layer for `name` (`None` gives the identity)."""
    if name is None:
        return nn.Identity()
    try:
        return _ACTS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(_ACTS))}") from None
