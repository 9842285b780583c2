"""Turning plain YAML data into typed dataclasses, with errors that name the offending key.

A small converter rather than a schema library: PaddleClas YAML is nested dataclasses of scalars, lists and
single-key operator lists, which dataclass type hints describe fully. Every error carries the dotted path of
the key (`Optimizer.lr.warmup_epoch`), which is what a user needs to fix a recipe.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from typing import Any, Literal, Union

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


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return _numbers_in(value)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(arg, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: expected {' or '.join(_type_name(a) for a in args)}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        number = parse_number(value) if isinstance(value, str) else None
        if number is not None:
            return number
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise TypeError(f"unsupported config type {tp!r} at {where}")


def _sub(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def from_dict(cls: type, data: Any, where: str = "") -> Any:
    """Build dataclass `cls` from `data`; unknown keys, missing required keys and wrong types are errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; valid keys: {', '.join(fields)}"
            raise ConfigError(f"unknown key {_sub(where, key)}{hint}")
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"missing required key {_sub(where, missing[0])}")
    return cls(**{k: _convert(hints[k], v, _sub(where, k)) for k, v in data.items()})


def to_dict(obj: Any) -> Any:
    """The plain-data form of a typed config (YAML/JSON serialisable), the inverse of `from_dict`."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
