"""`-o Section.key.sub=value` overrides (PaddleClas's syntax), each checked against the schema before it is set.

An override is checked on its own, so its error names it as the user typed it: a key the schema lacks, an empty
section (`-o Global=` would otherwise silently reset every Global key to its default), an empty value where the
field has no null, a value of the wrong type or outside the field's range (`ppipe.config.ranges`).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, Iterable, NamedTuple, Union

import yaml

from ppipe.config.ranges import check_range
from ppipe.config.schema import ArchSection, Config
from ppipe.config.typed import coerce_expressions, convert, unknown_key
from ppipe.errors import ConfigError


class Override(NamedTuple):
    text: str          # as given, for the error messages
    parts: list[str]   # the dotted key
    value: Any         # the YAML value; None when empty

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"override {self.text!r}: {message}")


class _Target(NamedTuple):
    """What the schema says of an override's key: its type (Any below free-form data) and its field's metadata."""
    tp: Any
    metadata: Any


def parse_override(text: str) -> Override:
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected Section.key=value")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if not key.strip():
        raise ConfigError(f"override {text!r}: empty key; expected Section.key=value")
    if not all(parts):
        raise ConfigError(f"override {text!r}: empty part in the key {key.strip()!r}; expected Section.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({e})") from None
    return Override(text, parts, value)


def _members(tp: Any) -> tuple[Any, ...]:
    """The alternatives of a union type other than None; `(tp,)` for any other type."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        return tuple(a for a in typing.get_args(tp) if a is not type(None))
    return (tp,)


def _is_container(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp) or typing.get_origin(tp) in (list, dict)


def _child(override: Override, depth: int, parent: _Target) -> _Target:
    """What the schema says of `override.parts[depth]` inside a value of `parent`'s type."""
    part, where = override.parts[depth], ".".join(override.parts[:depth])
    containers = [m for m in _members(parent.tp) if _is_container(m)]
    if parent.tp is Any or len(containers) > 1:
        return _Target(Any, {})
    if not containers:
        raise override.error(f"{where} is a value, not a section")
    tp, args = containers[0], typing.get_args(containers[0])
    if dataclasses.is_dataclass(tp):
        fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
        if tp is ArchSection and (part not in fields or part == "kwargs"):
            return _Target(Any, {})  # a constructor argument: the loader checks it against the model
        if part not in fields:
            raise override.error(str(unknown_key(part, where, fields)))
        return _Target(typing.get_type_hints(tp)[part], fields[part].metadata)
    if typing.get_origin(tp) is list:
        if not part.isdigit():
            raise override.error(f"{where} is a list, indexed by item number, not by {part!r}")
        return _Target(args[0] if args else Any, parent.metadata)  # an item is held to its list's range
    return _Target(args[1] if len(args) == 2 else Any, {})


def _target(override: Override) -> _Target:
    target = _Target(Config, {})
    for depth in range(len(override.parts)):
        target = _child(override, depth, target)
    return target


def check_override(override: Override) -> None:
    """Raise ConfigError naming `override` if its key is not in the schema or its value cannot be that key's."""
    target = _target(override)
    where = ".".join(override.parts)
    if any(dataclasses.is_dataclass(m) for m in _members(target.tp)):
        if override.value is None and type(None) not in typing.get_args(target.tp):
            raise override.error(f"no value for the section {where}, which would reset all its keys to their "
                                 f"defaults; set keys as {where}.key=value")
        return  # a section as a mapping (from_dict names its keys), or an optional one set to null (EMA=: no EMA)
    if target.tp is Any:
        return  # free-form data (operators, losses, architecture arguments): checked when the config is built
    try:
        check_range(target.metadata, convert(target.tp, coerce_expressions(override.value), where), where)
    except ConfigError as e:
        raise override.error(str(e)) from None


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """`data` with `Section.key.sub=value` paths set (list items by index, as PaddleClas's `-o` does), each
    override checked against the schema first (`check_override`)."""
    data = copy.deepcopy(data)
    for text in overrides or ():
        override = parse_override(text)
        check_override(override)
        _set(data, override)
    return data


def _set(data: dict, override: Override) -> None:
    node: Any = data
    parts = override.parts
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise override.error(f"{where} is not an index of a {len(node)}-item list")
            if last:
                node[int(part)] = override.value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = override.value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
        else:
            raise override.error(f"{'.'.join(parts[:i])} is a value, not a section")
