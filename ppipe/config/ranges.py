"""Valid ranges of numeric config fields, declared on the schema's fields and checked by the loader.

A field says what values can work next to its type: `epochs: int = field(default=1, metadata=within(low=1))`.
`ppipe.config.typed.from_dict` checks every such field as it builds a section, so a value that cannot work (a
negative learning rate, `eval_interval: 0`, `class_num: -3`) fails at load time naming its key, instead of minutes
later on a Ray worker or, worse, training something else than asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ppipe.errors import ConfigError

RANGE = "range"    # the metadata key of a field's Range
LENGTH = "length"  # the metadata key of a list field's required length


@dataclass(frozen=True)
class Range:
    """The numbers a field accepts; `low`/`high` are included unless `low_open`/`high_open`, None is unbounded.
    `what` names the quantity in the error ("a learning rate >= 0")."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    what: str = ""

    def admits(self, x: float) -> bool:
        above = self.low is None or (x > self.low if self.low_open else x >= self.low)
        below = self.high is None or (x < self.high if self.high_open else x <= self.high)
        return above and below

    def __str__(self) -> str:
        bounds = [f"{'>' if self.low_open else '>='} {self.low:g}" if self.low is not None else "",
                  f"{'<' if self.high_open else '<='} {self.high:g}" if self.high is not None else ""]
        return " and ".join(b for b in bounds if b)


def within(low: float | None = None, high: float | None = None, *, above: float | None = None,
           below: float | None = None, length: int | None = None, what: str = "") -> dict[str, Any]:
    """Field metadata for a number (or each number of a list) in [low, high], or (above, below) on an open side;
    `length`: a list field's required number of items."""
    if low is not None and above is not None or high is not None and below is not None:
        raise ValueError("give each side of a range once: low or above, high or below")
    rng = Range(low=above if above is not None else low, high=below if below is not None else high,
                low_open=above is not None, high_open=below is not None, what=what)
    return {RANGE: rng, **({LENGTH: length} if length is not None else {})}


def check_range(metadata: Any, value: Any, where: str) -> None:
    """Raise ConfigError naming `where` when `value` (a number, a list of numbers, or None: unset) is outside the
    range (or length) that `metadata` declares; fields without one accept any value of their type."""
    length = metadata.get(LENGTH)
    if length is not None and isinstance(value, list) and len(value) != length:
        raise ConfigError(f"{where}: expected a list of {length} values, got {len(value)} ({value!r})")
    rng: Range | None = metadata.get(RANGE)
    if rng is None or value is None:
        return
    for i, x in enumerate(value) if isinstance(value, list) else ((None, value),):
        if not rng.admits(x):
            at = where if i is None else f"{where}[{i}]"
            raise ConfigError(f"{at}: expected {rng.what + ' ' if rng.what else ''}{rng}, got {x!r}")
