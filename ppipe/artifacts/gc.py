"""Garbage collection of the store: what crashed or killed publishes left behind, never a published version.

Removed: version folders without a ``manifest.json`` whose claim marker (or, without one, newest file) is older
than the grace period (a younger one may be a publish still uploading); files in a published version that its
manifest does not list (leftovers of a publish interrupted before an older ppipe reused its folder, files dropped
in by hand); interrupted atomic writes of alias files (``.*.tmp-*``) older than the grace period.
Never removed: a manifest, a listed file, a readable alias, a version whose manifest is corrupt (which of its
files belong to it is unknown), anything outside ``<name>/v<N>/`` and ``<name>/aliases/``.
"""

from __future__ import annotations

import posixpath
import re
import time
from typing import TYPE_CHECKING

from ppipe.artifacts.claim import read_claim
from ppipe.artifacts.manifest import CorruptManifest
from ppipe.artifacts.refs import CLAIM, MANIFEST, vname

if TYPE_CHECKING:
    from ppipe.artifacts.store import ArtifactStore

DEFAULT_GRACE_S = 24 * 3600.0
_TMP = re.compile(r"^\..*\.tmp-[0-9a-f]+$")


def _modified_unix(store: ArtifactStore, path: str) -> float | None:
    info = store.fs.info(path)
    for key in ("mtime", "LastModified", "created"):
        value = info.get(key)
        if value is not None:
            return value.timestamp() if hasattr(value, "timestamp") else float(value)
    return None


def _last_activity(store: ArtifactStore, vdir: str, files: list[str]) -> float | None:
    """When the unpublished folder `vdir` was started (its claim marker), else last written (its newest file)."""
    started = read_claim(store, vdir).get("started_unix")
    if isinstance(started, (int, float)):
        return float(started)
    times = [t for t in (_modified_unix(store, p) for p in files) if t is not None]
    return max(times) if times else None


def collect(store: ArtifactStore, *, grace_s: float = DEFAULT_GRACE_S, dry_run: bool = False) -> dict:
    """Remove (with `dry_run`, only list) what the module docstring says. Returns ``{"dry_run", "grace_s",
    "incomplete": [version folder URLs], "unreferenced": [file URLs], "kept_recent": [folders younger than
    the grace period]}``."""
    store.refresh()
    found: dict[str, list[str]] = {"incomplete": [], "unreferenced": [], "kept_recent": []}
    cutoff = time.time() - grace_s
    for name in store.names():
        for n in store.version_numbers(name):
            _sort_version(store, name, n, cutoff, found)
        for path in store.fs.find(store.path(name, "aliases")):
            if _TMP.match(posixpath.basename(path)) and (_modified_unix(store, path) or 0) < cutoff:
                found["unreferenced"].append(path)
    if not dry_run:
        for path in found["incomplete"] + found["unreferenced"]:
            store.fs.rm(path, recursive=True)
    return {"dry_run": dry_run, "grace_s": grace_s, **{k: [store.where(p) for p in v] for k, v in found.items()}}


def _sort_version(store: ArtifactStore, name: str, n: int, cutoff: float, found: dict[str, list[str]]) -> None:
    vdir = store.path(name, vname(n))
    files = store.fs.find(vdir)
    if posixpath.join(vdir, MANIFEST) not in files:
        last = _last_activity(store, vdir, files)
        found["incomplete" if last is None or last < cutoff else "kept_recent"].append(vdir)
        return
    try:
        manifest = store.manifest(name, n)
    except CorruptManifest:
        return
    keep = {posixpath.join(vdir, *rel.split("/")) for rel in manifest["files"]}
    keep |= {posixpath.join(vdir, MANIFEST), posixpath.join(vdir, CLAIM)}
    found["unreferenced"] += [p for p in files if p not in keep]
