"""The metric gate of a promotion: a published version gets an alias (e.g. `production`) only when its metric
passes the threshold. Written here over `ppipe.artifacts.resolve`/`set_alias` until the store offers
`promote(store, ref, alias, require={metric: minimum})` itself (the CONTRACT's `ppipe artifacts promote`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ppipe.artifacts import resolve, set_alias
from ppipe.errors import ConfigError


@dataclass(frozen=True)
class Gate:
    """Promote to `alias` when `metric` >= `minimum` (`mode: max`) or <= `minimum` (`mode: min`)."""

    metric: str = "top1"
    minimum: float = 0.0
    alias: str = "production"
    mode: str = "max"

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> "Gate | None":
        """A gate from a flow parameter `{"metric", "minimum", "alias", "mode"}`; None: no promotion."""
        if not params:
            return None
        unknown = set(params) - {"metric", "minimum", "alias", "mode"}
        if unknown:
            raise ConfigError(f"gate: unknown key(s) {sorted(unknown)}; expected metric, minimum, alias, mode")
        gate = cls(**params)
        if gate.mode not in ("max", "min"):
            raise ConfigError(f"gate.mode: expected 'max' or 'min', got {gate.mode!r}")
        return gate

    def passes(self, value: float) -> bool:
        return value >= self.minimum if self.mode == "max" else value <= self.minimum


def promote_if_passing(store: str | None, ref: str, gate: Gate) -> dict[str, Any]:
    """Point `gate.alias` at the version `ref` names when its metric passes; returns
    {"promoted", "alias", "metric", "value", "reason"}."""
    manifest = resolve(store, ref)
    value = (manifest.get("metrics") or {}).get(gate.metric)
    outcome = {"promoted": False, "alias": gate.alias, "metric": gate.metric, "value": value}
    if not isinstance(value, (int, float)):
        return {**outcome, "reason": f"{ref} has no metric {gate.metric!r}"}
    op = ">=" if gate.mode == "max" else "<="
    if not gate.passes(value):
        return {**outcome, "reason": f"{gate.metric}={value:.4g} fails {op} {gate.minimum}"}
    set_alias(store, manifest["name"], gate.alias, manifest["version"])
    return {**outcome, "promoted": True, "reason": f"{gate.metric}={value:.4g} {op} {gate.minimum}"}
