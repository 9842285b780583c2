"""Turning plain YAML data into typed dataclasses, with errors that name the offending key.

A small converter rather than a schema library: PaddleClas YAML is nested dataclasses of scalars, lists and
single-key operator lists, which dataclass type hints describe fully. Every error carries the dotted path of
the key (`Optimizer.lr.warmup_epoch`), which is what a user needs to fix a recipe.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from typing import Any, Iterable, Literal, Union

from ppipe.config.ranges import check_range
from ppipe.errors import ConfigError

# A decimal number as PaddleClas recipes write them: `1e-8`, `5e-4`, `1.0e-5`, `.5`, `-2`. YAML 1.1 (PyYAML) reads
# the exponent forms without a dot or a sign as strings, and PaddleClas `literal_eval`s them; ppipe parses exactly
# this grammar instead of evaluating anything (so no `inf`, `nan`, `0x10`, `1_000` or expressions).
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


def parse_number(text: str) -> float | None:
    """`text` as a float when it is a plain decimal number (scientific notation included), else None."""
    return float(text) if _NUMBER.fullmatch(text.strip()) else None


def map_strings(node: Any, fn) -> Any:
    """`node` (nested dicts/lists from YAML) with every string leaf replaced by `fn(string)`."""
    if isinstance(node, dict):
        return {k: map_strings(v, fn) for k, v in node.items()}
    if isinstance(node, list):
        return [map_strings(v, fn) for v in node]
    return fn(node) if isinstance(node, str) else node


def _as_number(text: str) -> Any:
    number = parse_number(text)
    if number is None:
        return text
    return int(text) if _INTEGER.fullmatch(text.strip()) else number


def _numbers_in(node: Any) -> Any:
    # Free-form parameters (operators, losses, architecture arguments) have no declared types, so a string that
    # is a number there is taken as the number, as PaddleClas's config reader does.
    return map_strings(node, _as_number)


def _expression_value(text: str) -> Any:
    for op in ("/", "*"):
        left, sep, right = text.partition(op)
        if sep:
            try:
                a, b = float(left), float(right)
            except ValueError:
                return text
            return a / b if op == "/" else a * b
    return text


def coerce_expressions(node: Any) -> Any:
    """`node` with PaddleClas's number expressions (`scale: 1.0/255.0`, which PaddleClas evaluates) computed:
    exactly that form (two numbers and one operator), nothing more general."""
    return map_strings(node, _expression_value)


def _shown(value: Any) -> str:
    return "null (no value)" if value is None else repr(value)


def _is_list_type(tp: Any) -> bool:
    return typing.get_origin(tp) in (list, tuple)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def convert(tp: Any, value: Any, where: str) -> Any:
    """`value` (plain YAML data) as type `tp`; a ConfigError naming `where` when it is not one."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return _numbers_in(value)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        # where one alternative alone has the value's shape (a number for `float | list[float]`), its own error
        # says best what is wrong ("expected a finite number")
        shaped = [a for a in members if _is_list_type(a) == isinstance(value, (list, tuple))]
        if len(shaped) == 1:
            return convert(shaped[0], value, where)
        for arg in members:
            try:
                return convert(arg, value, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {' or '.join(_type_name(a) for a in args)}, got {_shown(value)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {_shown(value)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if _is_list_type(tp):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {_shown(value)}")
        item = args[0] if args else Any
        return [convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {_shown(value)}")
        vt = args[1] if len(args) == 2 else Any
        return {k: convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {_shown(value)}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {_shown(value)}")
    if tp is float:
        number = (float(value) if isinstance(value, (int, float)) and not isinstance(value, bool)
                  else parse_number(value) if isinstance(value, str) else None)
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {_shown(value)}")
        if not math.isfinite(number):  # YAML's .inf and .nan: no setting of a run works with them
            raise ConfigError(f"{where}: expected a finite number, got {number}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {_shown(value)}")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _sub(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def unknown_key(key: Any, where: str, known: Iterable[str]) -> ConfigError:
    """The error for `key` under section `where`, suggesting the closest of the `known` keys (or listing them)."""
    known = list(known)
    close = difflib.get_close_matches(str(key), known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(known)}"
    return ConfigError(f"unknown key {_sub(where, key)}{hint}")


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass `cls` from `data`; unknown keys, missing required keys, wrong types and values outside a
    field's declared range (`ppipe.config.ranges`) are errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise unknown_key(key, where, fields)
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"missing required key {_sub(where, missing[0])}")
    values = {k: convert(hints[k], v, _sub(where, k)) for k, v in data.items()}
    for k, v in values.items():
        check_range(fields[k].metadata, v, _sub(where, k))
    return cls(**values)


def to_dict(obj: Any) -> Any:
    """The plain-data form of a typed config (YAML/JSON serialisable), the inverse of `from_dict`."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
