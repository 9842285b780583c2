"""Promotion: pointing an alias (``production``, ``candidate``) at a version, optionally behind metric gates.

``ppipe artifacts promote resnet50@candidate production --require top1>=0.76 --require latency_ms<=12``: every
gate is checked against the version's manifest metrics before the alias moves, and the alias history records
who promoted which version from which, when, and the gates it passed (`ArtifactStore.set_alias`).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ppipe.artifacts.refs import ArtifactError, parse_ref

if TYPE_CHECKING:
    from ppipe.artifacts.store import ArtifactStore

_OPS = {">=": operator.ge, "<=": operator.le}
_GATE = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(>=|<=)\s*([-+0-9.eE]+|[-+]?inf)\s*$")


@dataclass(frozen=True)
class MetricGate:
    """`metric >= value` or `metric <= value` on a version's manifest metrics."""

    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"

    def failure(self, metrics: dict) -> str | None:
        """Why `metrics` fail the gate (None: they pass)."""
        have = metrics.get(self.metric)
        if not isinstance(have, (int, float)) or isinstance(have, bool) or math.isnan(have):
            known = ", ".join(sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))) or "none"
            return f"{self}: the version has no numeric metric {self.metric!r} (metrics: {known})"
        if not _OPS[self.op](have, self.value):
            return f"{self}: {self.metric} is {have:g}"
        return None


def parse_gate(text: str) -> MetricGate:
    """``top1>=0.76`` -> MetricGate("top1", ">=", 0.76); a clear error for anything else."""
    m = _GATE.match(str(text))
    if not m:
        raise ArtifactError(f"invalid --require {text!r}: expected METRIC>=VALUE or METRIC<=VALUE, e.g. top1>=0.76")
    try:
        value = float(m.group(3))
    except ValueError:
        raise ArtifactError(f"invalid --require {text!r}: {m.group(3)!r} is not a number") from None
    return MetricGate(m.group(1), m.group(2), value)


def promote(store: ArtifactStore, ref: str, alias: str, require: list[str] | tuple[str, ...] = ()) -> dict:
    """Point `alias` at the version `ref` names when it passes every gate in `require`; return the alias file
    ({"alias", "version", "updated", "history"}). A failed gate raises `ArtifactError` naming each failure, and
    the alias stays where it was."""
    gates = [parse_gate(g) for g in require]
    manifest = store.resolve(ref)
    name, _, _ = parse_ref(ref)
    failures = [f for g in gates if (f := g.failure(manifest.get("metrics") or {}))]
    if failures:
        raise ArtifactError(f"not promoting {name}:{manifest['version']} to {alias!r}: " + "; ".join(failures))
    note = {"ref": ref, "gates": [str(g) for g in gates]} if gates else {"ref": ref}
    return store.set_alias(name, alias, manifest["version"], note=note)
