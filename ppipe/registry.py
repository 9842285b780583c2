"""Named registries for PaddleClas's `[{Name: {params}}]` lists: transform and batch operators, losses,
metrics, activations, export targets.

One type owns what those lists share: a name registered twice is an error (a second family or plug-in can never
silently replace the first), an unknown name or argument is answered with the closest known ones, and the list
form itself (`- CELoss: {weight: 1.0}`, or a bare `- ToCHWImage`) is parsed in one place.

This module sits at the bottom of ppipe's dependency graph: it imports nothing from ppipe but `errors`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from ppipe.errors import ConfigError

T = TypeVar("T")


def closest(name: str, known, n: int = 3) -> str:
    """' (did you mean A, B?)' for the names in `known` closest to `name`, or '' when none is close."""
    close = difflib.get_close_matches(str(name), list(known), n=n)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def named_items(items: list[Any] | None, where: str,
                error: type[Exception] = ConfigError) -> list[tuple[str, dict[str, Any]]]:
    """A PaddleClas list (`- Name: {param: value}`, `- Name:` or a bare `- Name`) as (name, params) pairs."""
    if items is None:
        return []
    if not isinstance(items, (list, tuple)):
        raise error(f"{where}: expected a list of '- Name: {{param: value}}' items, got {items!r}")
    out = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            out.append((item, {}))
            continue
        if not isinstance(item, dict) or len(item) != 1:
            raise error(f"{where}[{i}]: expected a single-key mapping like '- Name: {{param: value}}', "
                        f"got {item!r}")
        (name, params), = item.items()
        if params is not None and not isinstance(params, dict):
            raise error(f"{where}[{i}].{name}: expected a mapping of parameters, got {params!r}")
        out.append((str(name), dict(params or {})))
    return out


def accepted_params(factory: Callable) -> tuple[list[str], bool]:
    """The keyword arguments `factory` takes, and whether it also takes any (`**kwargs`)."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    params = list(inspect.signature(target).parameters.values())
    names = [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return names, any(p.kind == p.VAR_KEYWORD for p in params)


class Registry(Generic[T]):
    """Names → factories (classes or functions) of one kind.

    `kind` is what the registry holds, in the words of an error message ("transform operator", "loss").
    `error` is the exception raised for user mistakes (unknown name, unknown argument): a `ConfigError` by
    default, so that the CLI reports it in one line.
    """

    def __init__(self, kind: str, error: type[Exception] = ConfigError,
                 unknown_error: type[Exception] | None = None):
        self.kind = kind
        self.error = error
        self.unknown_error = unknown_error or error
        self._items: dict[str, T] = {}

    def register(self, obj: T | None = None, *, name: str | None = None):
        """Register `obj` under `name` (default: its `__name__`); usable as a decorator, with or without
        `name=`. Registering a name twice is an error, even for the same object: it means two modules claim it."""
        def add(o: T) -> T:
            key = name or o.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered (by {self._items[key]!r})")
            self._items[key] = o
            return o

        return add if obj is None else add(obj)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str, where: str = "") -> T:
        """The factory registered as `name`; an unknown name is an error naming the closest known ones."""
        try:
            return self._items[name]
        except KeyError:
            prefix = f"{where}: " if where else ""
            raise self.unknown_error(f"{prefix}unknown {self.kind} {name!r}{closest(name, self._items)}; "
                                     f"known: {', '.join(self.names())}") from None

    def check_params(self, name: str, params: dict[str, Any], where: str = "") -> Callable:
        """The factory of `name`, after checking that it accepts every key of `params`, and its values where it
        says how (a `check_values(params, where)` class method: losses and metrics refuse values up front)."""
        factory = self.get(name, where)
        valid, takes_any = accepted_params(getattr(factory, "params_factory", factory))
        declared = getattr(factory, "params", None)  # a factory may declare its keys (losses do)
        if declared is not None:
            valid, takes_any = list(declared), False
        unknown = [] if takes_any else [k for k in params if k not in valid]
        at = f"{where}.{name}" if where else name
        if unknown:
            raise self.error(f"{at}: unknown parameter{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(map(repr, unknown))}{closest(unknown[0], valid)}; "
                             f"valid parameters: {', '.join(valid) if valid else '(none)'}")
        check_values = getattr(factory, "check_values", None)
        if check_values is not None:
            check_values(params, at)
        return factory

    def build(self, name: str, params: dict[str, Any] | None = None, where: str = "") -> Any:
        """An instance of `name` built with `params`, with errors that name what is wrong."""
        params = dict(params or {})
        factory = self.check_params(name, params, where)
        try:
            return factory(**params)
        except TypeError as exc:  # a required parameter is missing, or a value of the wrong kind
            at = f"{where}.{name}" if where else name
            raise self.error(f"{at}: {exc}") from exc

    def build_all(self, items: list[Any] | None, where: str) -> list[Any]:
        """Every item of a PaddleClas list (`[{Name: params}, ...]`) built in order."""
        return [self.build(name, params, f"{where}[{i}]")
                for i, (name, params) in enumerate(named_items(items, where, self.error))]
