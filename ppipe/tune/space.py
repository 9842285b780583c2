"""A search file: recipe keys (`-o` style) mapped to distributions, plus optional `Tune:` settings.

```yaml
Optimizer.lr.learning_rate: loguniform(1e-3, 1e-1)
Optimizer.momentum: uniform(0.8, 0.95)
DataLoader.Train.sampler.batch_size: choice([16, 32])
Arch.scale: grid([0.25, 0.5])
Tune: {num_samples: 4, scheduler: asha, metric: top1, mode: max}
```
The syntax is Ray Tune's search-space API written as text (`tune.loguniform`, `tune.uniform`, `tune.choice`,
`tune.grid_search`). Under PBT (`scheduler: pbt`) grid keys set the starting population and the other keys are
also what PBT perturbs (a range's value times 0.8 or 1.2, a choice's neighbouring value, or a fresh sample).
Every key is checked against the recipe's schema with the values it can take (both bounds of a range, every listed
choice) before any trial starts, so a typo fails in a second with the key's name.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

from ppipe.config import Config, ConfigError, config_to_data, load_config
from ppipe.config.loader import read_yaml_mapping
from ppipe.config.schema import TuneSection
from ppipe.config.typed import from_dict, map_strings, parse_number, to_dict

_CALL = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$", re.S)
_SYNTAX = {
    "loguniform": "loguniform(low, high) with 0 < low < high",
    "uniform": "uniform(low, high) with low < high",
    "choice": "choice([v1, v2, ...]) with at least one value",
    "grid": "grid([v1, v2, ...]) with at least one value",
}
# Keys the tuner sets itself for every trial: a search over them would fight the tuner.
TUNER_KEYS = ("Global.output_dir", "Ray.storage_path", "Ray.run_name", "Ray.address")


@dataclass(frozen=True)
class Distribution:
    """One key's search space: `kind` is one of `_SYNTAX`; `args` are (low, high) or the listed values."""

    kind: str
    args: tuple[Any, ...]

    def to_tune(self):
        from ray import tune

        if self.kind == "loguniform":
            return tune.loguniform(*self.args)
        if self.kind == "uniform":
            return tune.uniform(*self.args)
        if self.kind == "choice":
            return tune.choice(list(self.args))
        return tune.grid_search(list(self.args))

    def pbt_mutation(self):
        """What PBT perturbs this key with: a range's Tune domain (value x0.8 or x1.2, or a fresh sample); a
        choice's values as a list (a neighbouring value or a fresh pick; as a domain PBT would multiply it)."""
        return list(self.args) if self.kind == "choice" else self.to_tune()

    def representatives(self) -> tuple[Any, ...]:
        """Values the recipe is checked with: a range's bounds, every listed value."""
        return self.args


@dataclass(frozen=True)
class SearchSpace:
    distributions: dict[str, Distribution]
    settings: TuneSection

    def param_space(self) -> dict[str, Any]:
        return {key: dist.to_tune() for key, dist in self.distributions.items()}


def override(key: str, value: Any) -> str:
    """A trial's value as a `-o` override (JSON is YAML, so lists, floats and strings survive the round trip)."""
    return f"{key}={json.dumps(value)}"


def parse_distribution(where: str, text: Any) -> Distribution:
    match = _CALL.match(text) if isinstance(text, str) else None
    if not match or match.group(1) not in _SYNTAX:
        raise ConfigError(f"{where}: expected one of {', '.join(_SYNTAX.values())}; got {text!r}")
    kind, raw = match.group(1), match.group(2)
    expected = f"{where}: expected {_SYNTAX[kind]}; got {text!r}"
    try:
        # YAML 1.1 reads `1e-3` (no dot) as a string: numbers written that way are numbers here too.
        args = map_strings(yaml.safe_load(f"[{raw}]"), lambda t: t if parse_number(t) is None else parse_number(t))
    except yaml.YAMLError:
        raise ConfigError(expected) from None
    if kind in ("choice", "grid"):
        if len(args) != 1 or not isinstance(args[0], list) or not args[0]:
            raise ConfigError(expected)
        return Distribution(kind, tuple(args[0]))
    if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
        raise ConfigError(expected)
    low, high = float(args[0]), float(args[1])
    if not low < high or (kind == "loguniform" and low <= 0):
        raise ConfigError(expected)
    return Distribution(kind, (low, high))


def _settings(base: TuneSection, data: Any, where: str) -> TuneSection:
    if data is None:
        return base
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of Tune settings, got {type(data).__name__}")
    merged = from_dict(TuneSection, {**to_dict(base), **data}, "Tune")
    if merged.num_samples < 1:
        raise ConfigError(f"Tune.num_samples: expected at least 1, got {merged.num_samples}")
    return merged


def check_against_recipe(cfg: Config, space: dict[str, Distribution], where: str) -> None:
    """Each key, with each of its representative values, must give a valid recipe."""
    data = config_to_data(cfg)
    for key, dist in space.items():
        if key in TUNER_KEYS:
            raise ConfigError(f"{where}: {key}: set by the tuner for each trial; it cannot be searched")
        for value in dist.representatives():
            try:
                load_config(data=data, overrides=[override(key, value)])
            except ConfigError as e:
                raise ConfigError(f"{where}: {key}: {dist.kind}{list(dist.args)} does not fit the recipe "
                                  f"(with {value!r}): {e}") from None


def load_search_space(path: str | os.PathLike, cfg: Config) -> SearchSpace:
    """Parse and validate the search file `path` against the recipe `cfg`."""
    where = str(path)
    data = read_yaml_mapping(path, "search file", "`Section.key: distribution` lines and an optional Tune:")
    settings = _settings(cfg.Tune, data.pop("Tune", None), f"{where}: Tune")
    space = {str(key): parse_distribution(f"{where}: {key}", text) for key, text in data.items()}
    if not space:
        raise ConfigError(f"search file {where}: no key to search (expected lines like "
                          "`Optimizer.lr.learning_rate: loguniform(1e-3, 1e-1)`)")
    if settings.scheduler == "pbt" and all(d.kind == "grid" for d in space.values()):
        raise ConfigError(f"{where}: Tune.scheduler: pbt perturbs the keys written as loguniform(), uniform() or "
                          "choice(), and every key here is a grid() (a grid only sets the starting population)")
    check_against_recipe(cfg, space, where)
    return SearchSpace(space, settings)

