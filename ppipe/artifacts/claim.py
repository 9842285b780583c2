"""Choosing and claiming the version number of a new publish, safely against crashed and concurrent publishers.

A version exists only once its ``manifest.json`` does. A publish first claims ``<name>/v<N>/`` with a claim
marker (``.publish.json``: a token and the start time). A folder without a manifest is either the leftovers of a
crashed publish (no claim marker, or one older than `STALE_PUBLISH_S`: reused, after removing the leftovers) or a
publish in progress (a fresh claim marker: skipped, the next number is taken).
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
import time
from typing import TYPE_CHECKING

from ppipe import storage
from ppipe.artifacts.refs import CLAIM, MANIFEST, ArtifactError, now_iso, vname

if TYPE_CHECKING:
    from ppipe.artifacts.store import ArtifactStore

STALE_PUBLISH_S = 6 * 3600.0


class LostClaim(ArtifactError):
    """Another publisher judged this publish's claim stale and took its version over."""


def is_stale(store: ArtifactStore, vdir: str) -> bool:
    """True when the unpublished folder `vdir` has no claim marker or one older than `STALE_PUBLISH_S`."""
    claim = store.read_json(posixpath.join(vdir, CLAIM)) or {}
    started = claim.get("started_unix")
    return not (isinstance(started, (int, float)) and (time.time() - started) < STALE_PUBLISH_S)


def _claim_local(vdir: str, claim: dict) -> bool:
    """Create `vdir` holding the claim marker in one step (a rename), or return False when it exists."""
    parent = os.path.dirname(vdir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(vdir)}.claim-", dir=parent)
    try:
        with open(os.path.join(tmp, CLAIM), "w", encoding="utf-8") as f:
            json.dump(claim, f)
        try:
            os.rename(tmp, vdir)  # fails when vdir exists and is not empty
            return True
        except OSError:
            return False
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _remove_crashed_below_newest(store: ArtifactStore, name: str, published: dict[int, dict]) -> None:
    """Leftovers of crashed publishes below the newest version are never reused by a claim: remove them."""
    for k in store.version_numbers(name):
        if published and k < max(published) and k not in published:
            vdir = store.path(name, vname(k))
            if is_stale(store, vdir) and not store.fs.exists(posixpath.join(vdir, MANIFEST)):
                store.fs.rm(vdir, recursive=True)


def claim_version(store: ArtifactStore, name: str, token: str) -> int:
    """Choose and claim the version number for a new publish of `name` (see the module docstring)."""
    published = store.published(name)
    _remove_crashed_below_newest(store, name, published)
    claim = {"token": token, "started": now_iso(), "started_unix": time.time(), "pid": os.getpid()}
    fs, local = store.fs, storage.is_local(store.fs)
    n = (max(published) if published else 0) + 1
    for _ in range(10_000):
        vdir = store.path(name, vname(n))
        if local and _claim_local(vdir, claim):
            return n
        if not local and not fs.exists(vdir):
            break
        # the folder exists: leftovers of a crashed publish (reuse) or a publish in progress (skip)
        if fs.exists(posixpath.join(vdir, MANIFEST)) or not is_stale(store, vdir):
            n += 1
            continue
        try:
            fs.rm(vdir, recursive=True)
        except FileNotFoundError:  # another publisher cleaned it first
            pass
        if local:
            continue  # retry the claim of the same number; losing the race moves on to the next
        break
    else:  # pragma: no cover
        raise ArtifactError(f"artifact {name!r}: could not claim a version number")
    # object stores have no atomic create: the token is checked again before the manifest is written
    store.write_json(store.url_of(name, vname(n), CLAIM), claim)
    return n


def still_ours(store: ArtifactStore, name: str, n: int, token: str) -> bool:
    """Whether version `n` is still this publish's claim and unpublished (checked before its manifest is written)."""
    vpath = store.path(name, vname(n))
    claim = store.read_json(posixpath.join(vpath, CLAIM)) or {}
    return claim.get("token") == token and not store.fs.exists(posixpath.join(vpath, MANIFEST))


def release(store: ArtifactStore, name: str, n: int, token: str) -> None:
    """A failed publish removes its own unpublished folder, so the number is free again at once (best effort: a
    stale claim is cleaned up later anyway)."""
    try:
        if still_ours(store, name, n, token):
            store.fs.rm(store.path(name, vname(n)), recursive=True)
    except Exception:  # noqa: BLE001
        pass
