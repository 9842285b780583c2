"""Reading one version in full (`show`) and two side by side (`diff`): what `ppipe artifacts show|diff` print."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ppipe import storage
from ppipe.artifacts.refs import LATEST, ArtifactError, vname

if TYPE_CHECKING:
    from ppipe.artifacts.store import ArtifactStore


def show(store: ArtifactStore, ref: str) -> dict[str, Any]:
    """The manifest of `ref`'s version, with its ``uri``, the ``aliases`` now pointing at it, and
    ``alias_history``: every alias move to or from this version (alias, version, from, by, at, gates)."""
    manifest = store.resolve(ref)
    name, version = manifest["name"], manifest["version"]
    pointing = [a for a, n in sorted(store.aliases(name).items()) if vname(n) == version]
    if vname(max(store.published(name))) == version:
        pointing.insert(0, LATEST)
    history = []
    for alias in sorted(store.aliases(name)):
        for event in (store.alias_doc(name, alias) or {}).get("history", []):
            if isinstance(event, dict) and version in (event.get("version"), event.get("from")):
                history.append({"alias": alias, **event})
    history.sort(key=lambda e: str(e.get("at")))
    shown = {**manifest, "uri": store.url_of(name, version), "aliases": pointing, "alias_history": history}
    if "model_card.json" in manifest.get("files", {}):
        shown["model_card"] = json.loads(_verified_file(store, manifest, "model_card.json"))
    return shown


def _verified_file(store: ArtifactStore, manifest: dict, rel: str) -> bytes:
    """One published file of the version, refused when it is not what the manifest recorded."""
    data = storage.read_bytes(store.url_of(manifest["name"], manifest["version"], rel))
    if storage.sha256_bytes(data) != manifest["files"][rel]["sha256"]:
        raise ArtifactError(f"{manifest['name']}:{manifest['version']}/{rel}: sha256 does not match the manifest")
    return data


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b.0": leaf} for nested dicts and lists: the keys `diff` compares configs and lineage by."""
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = ((str(i), v) for i, v in enumerate(obj))
    else:
        return {prefix: obj}
    out: dict[str, Any] = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: {"a": a.get(k), "b": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def diff(store: ArtifactStore, ref_a: str, ref_b: str) -> dict[str, Any]:
    """What differs between two versions (of one name or two): ``metrics`` {name: {a, b, delta}}, ``files``
    (added, removed, changed by sha256, unchanged count), ``targets`` (added, removed), and ``lineage`` and
    ``metadata`` as {dotted key: {a, b}} for every differing leaf (the resolved config is under lineage)."""
    a, b = store.resolve(ref_a), store.resolve(ref_b)
    ma, mb = a.get("metrics") or {}, b.get("metrics") or {}
    metrics = {}
    for k in sorted(set(ma) | set(mb)):
        if ma.get(k) != mb.get(k):
            numeric = all(isinstance(m.get(k), (int, float)) and not isinstance(m.get(k), bool) for m in (ma, mb))
            metrics[k] = {"a": ma.get(k), "b": mb.get(k), **({"delta": mb[k] - ma[k]} if numeric else {})}
    fa, fb = a["files"], b["files"]
    files = {"added": sorted(set(fb) - set(fa)), "removed": sorted(set(fa) - set(fb)),
             "changed": sorted(k for k in set(fa) & set(fb) if fa[k]["sha256"] != fb[k]["sha256"]),
             "unchanged": sum(1 for k in set(fa) & set(fb) if fa[k]["sha256"] == fb[k]["sha256"])}
    ta, tb = a.get("targets") or [], b.get("targets") or []
    targets = {"added": [t for t in tb if t not in ta], "removed": [t for t in ta if t not in tb]}
    return {"a": f"{a['name']}:{a['version']}", "b": f"{b['name']}:{b['version']}", "metrics": metrics,
            "files": files, "targets": targets,
            "lineage": _changes(flatten(a.get("lineage") or {}), flatten(b.get("lineage") or {})),
            "metadata": _changes(flatten(a.get("metadata") or {}), flatten(b.get("metadata") or {}))}


