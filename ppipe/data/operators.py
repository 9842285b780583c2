"""The two registries of PaddleClas's data operators and the errors their lists raise.

`OPERATORS` holds the per-sample operators of a `transform_ops` list (DecodeImage, RandAugment, ...),
`BATCH_OPERATORS` those of a `batch_transform_ops` list (MixupOperator, CutmixOperator, OpSampler). Both are
`ppipe.registry.Registry`s: a name registered twice is an error, an unknown name or parameter is answered with
the closest known ones. Each list refuses the other's operators with an error saying where they belong.
"""

from __future__ import annotations

from typing import Any

from ppipe.registry import Registry, named_items

__all__ = ["BATCH_OPERATORS", "OPERATORS", "OperatorParamError", "UnknownOperatorError", "build_operators",
           "register_batch_operator", "register_operator"]


class OperatorParamError(ValueError):
    """An operator got a parameter it does not have, or a value it cannot use."""


class UnknownOperatorError(ValueError):
    """An operator name that is not in the registry."""


OPERATORS: Registry[type] = Registry("transform operator", error=OperatorParamError,
                                     unknown_error=UnknownOperatorError)
BATCH_OPERATORS: Registry[type] = Registry("batch operator", error=OperatorParamError,
                                           unknown_error=UnknownOperatorError)

# The config list each registry's operators go in, and what they are called, for the "wrong list" error.
_LISTS = {OPERATORS: ("transform_ops", "per-sample"), BATCH_OPERATORS: ("batch_transform_ops", "batch")}


def register_batch_operator(cls: type) -> type:
    """Class decorator: make `cls` available to `create_batch_operators` under its class name."""
    return BATCH_OPERATORS.register(cls)


def register_operator(cls: type) -> type:
    """Class decorator: make `cls` available to `create_operators` under its class name (to
    `create_batch_operators` when it is a batch operator, i.e. has `is_batch_operator = True`)."""
    registry = BATCH_OPERATORS if getattr(cls, "is_batch_operator", False) else OPERATORS
    return registry.register(cls)


def check_listed_in(registry: Registry, name: str, where: str = "") -> None:
    """Refuse `name` with an error naming the list it belongs to, when it is registered in the other registry
    and not in `registry`."""
    other = BATCH_OPERATORS if registry is OPERATORS else OPERATORS
    if name in registry or name not in other:
        return
    own_list, _ = _LISTS[registry]
    other_list, other_kind = _LISTS[other]
    prefix = f"{where}: " if where else ""
    raise OperatorParamError(f"{prefix}{name} is a {other_kind} operator: list it under {other_list}, not "
                             f"{own_list} ({own_list} takes: {', '.join(registry.names())})")


def build_operators(registry: Registry, items: Any, list_name: str,
                    params_of=lambda name, params: params) -> list[Any]:
    """Every operator of a PaddleClas list (`[{Name: params}, ...]`) built from `registry`, in order.

    `params_of(name, params)` may complete an operator's parameters first (batch operators get class_num).
    """
    ops = []
    for name, params in named_items(items, list_name, OperatorParamError):
        check_listed_in(registry, name)
        ops.append(registry.build(name, params_of(name, params)))
    return ops
