"""Which recipe files a flow runs: a model name is the zoo recipe `<recipe_root>/<Family>/<Model>.yaml`
(`ppipe.models.get_spec(name).family`), anything else a recipe path; a sweep takes every model of the listed
families (default: the whole zoo)."""

from __future__ import annotations

import difflib
import fnmatch
import os

from flows.workspace import in_repo
from ppipe.errors import ConfigError
from ppipe.models import get_spec, list_models

ZOO_RECIPES = "configs/ImageNet"


def _zoo_recipe(name: str, recipe_root: str) -> str:
    return os.path.join(recipe_root, get_spec(name).family, f"{name}.yaml")


def resolve_recipe(entry: str, recipe_root: str = ZOO_RECIPES) -> str:
    """The recipe file of `entry` (a zoo model name, or a recipe path: relative ones from the checkout),
    absolute; an unknown one is a ConfigError naming the closest models."""
    if os.path.isfile(in_repo(entry)):
        return in_repo(entry)
    if entry.endswith((".yaml", ".yml")) or os.sep in entry:
        raise ConfigError(f"recipes: {entry!r} is no recipe file (and no zoo model name)")
    try:
        path = _zoo_recipe(entry, in_repo(recipe_root))
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"recipes: {exc.args[0] if exc.args else exc}") from None
    if not os.path.isfile(path):
        raise ConfigError(f"recipes: model {entry!r} has no recipe at {path}")
    return os.path.abspath(path)


def zoo_models(families: list[str] | None = None, pattern: str = "*") -> list[str]:
    """Every zoo model of `families` (None: all) whose name matches the fnmatch `pattern`."""
    models = list_models("*")
    known = sorted({get_spec(m).family for m in models})
    unknown = [f for f in families or [] if f not in known]
    if unknown:
        hints = {f: difflib.get_close_matches(f, known, n=3) for f in unknown}
        raise ConfigError(f"families: unknown {hints} (closest known shown; known: {', '.join(known)})")
    return [m for m in models if (families is None or get_spec(m).family in families)
            and fnmatch.fnmatchcase(m, pattern)]


def zoo_recipes(models: list[str], recipe_root: str = ZOO_RECIPES) -> tuple[dict[str, str], list[str]]:
    """({model: recipe path} of the models that have a recipe, [models without one])."""
    found, missing = {}, []
    for m in models:
        path = _zoo_recipe(m, recipe_root)
        if os.path.isfile(path):
            found[m] = os.path.abspath(path)
        else:
            missing.append(m)
    return found, missing
