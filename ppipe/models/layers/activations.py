"""Activations chosen by name, as PaddleClas's configs spell them."""

from __future__ import annotations

import paddle.nn as nn

_ACTS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hardswish": nn.Hardswish}


def create_act(name: str | None) -> nn.Layer:
    """A fresh activation layer for `name` (`None` gives the identity)."""
    if name is None:
        return nn.Identity()
    try:
        return _ACTS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(_ACTS))}") from None
