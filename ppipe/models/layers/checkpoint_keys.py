"""Renaming PaddleClas checkpoint keys into ppipe's, as ordered (pattern, replacement) regex rules.

Each family whose PaddleClas names differ from ours lists its rules as data; `rename_keys` applies them to every key
of a state dict, in order. Keys already in ppipe's layout match none of a family's rules, so both load.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence, TypeVar

V = TypeVar("V")
Rule = tuple[str, str | Callable[[re.Match], str]]

# PaddleClas's `ConvBNLayer` calls its parts `_conv` and `_batch_norm` (or `_bn`); ours are `conv` and `bn`.
PADDLECLAS_CONV_BN: tuple[Rule, ...] = ((r"\._conv\.", ".conv."), (r"\._batch_norm\.", ".bn."),
                                        (r"\._bn\.", ".bn."))


def classifier_rule(paddleclas_name: str, ours: str = "fc") -> Rule:
    """The rule renaming PaddleClas's top-level classifier `paddleclas_name` (e.g. `out`) to `ours`."""
    return (rf"^{re.escape(paddleclas_name)}\.", f"{ours}.")


def rename_key(key: str, rules: Sequence[Rule]) -> str:
    """`key` after every rule's `re.sub`, in order."""
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def rename_keys(state: Mapping[str, V], rules: Sequence[Rule]) -> dict[str, V]:
    """`state` with every key renamed by `rules` (see `rename_key`); the values and their order are kept."""
    return {rename_key(k, rules): v for k, v in state.items()}
