"""Choosing and claiming the version number of a new publish, safely against crashed and concurrent publishers.

A version exists only once its ``manifest.json`` does. A publish owns ``<name>/v<N>/`` once it has *created*
the claim marker ``v<N>/.publish.json`` (a token and the start time), and creating it is exclusive on every
store: ``os.open(O_CREAT | O_EXCL)`` on a local disk, a conditional PUT (``If-None-Match: *``) on S3, so of two
publishers that pick the same number exactly one gets it and the other tries the next. Only the owner writes
into the folder, so two publishes can never mix their files (earlier, on S3, the loser of a check-then-write
race uploaded into the winner's folder).

A claim is never taken over: a folder whose claim marker exists keeps its number, published or not (a publish
still running, or one that was killed: invisible, skipped, and removed by `ppipe artifacts gc` once older than
its grace period). A folder *without* a claim marker (a publish killed before it claimed, or by an older
ppipe) is claimed like an empty number, and its leftovers are removed by the new owner before it uploads.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
from typing import TYPE_CHECKING

from ppipe import storage
from ppipe.artifacts.refs import CLAIM, MANIFEST, ArtifactError, now_iso, vname

if TYPE_CHECKING:
    from ppipe.artifacts.store import ArtifactStore

MAX_TRIES = 10_000


class LostClaim(ArtifactError):
    """This publish's folder was removed under it (by `gc`, after its grace period): its manifest is not written."""


class ExclusiveCreateUnsupported(ArtifactError):
    """The store's filesystem offers no create-if-absent, so concurrent publishes could collide."""


def create_exclusive(store: ArtifactStore, path: str, data: bytes) -> bool:
    """Create file `path` in the store holding `data`, only if it does not exist; False when it already does."""
    fs = store.fs
    if storage.is_local(fs):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return True
    if "s3" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        bucket, key, _ = fs.split_path(path)
        try:
            # s3fs turns S3's 412 Precondition Failed into FileExistsError
            fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except FileExistsError:
            return False
        return True
    raise ExclusiveCreateUnsupported(
        f"the artifact store {store.url} is on {type(fs).__name__}, which has no create-if-absent: publishing "
        "needs a local folder or s3:// (S3 conditional writes) so that concurrent publishes cannot collide")


def claim_record(token: str) -> dict:
    return {"token": token, "started": now_iso(), "started_unix": time.time(), "pid": os.getpid(),
            "host": os.uname().nodename}


def claim_version(store: ArtifactStore, name: str, token: str) -> int:
    """Claim the lowest free version number above the newest published one (see the module docstring)."""
    published = store.published_numbers(name)
    data = json.dumps(claim_record(token)).encode("utf-8")
    n = (max(published) if published else 0) + 1
    for _ in range(MAX_TRIES):
        vdir = store.path(name, vname(n))
        if create_exclusive(store, posixpath.join(vdir, CLAIM), data):
            if not store.fs.exists(posixpath.join(vdir, MANIFEST)):
                _remove_leftovers(store, vdir)
                return n
            # a version published by a ppipe that left no claim marker: the marker now keeps it taken
        n += 1
    raise ArtifactError(f"artifact {name!r}: no free version number after {MAX_TRIES} tries")


def _remove_leftovers(store: ArtifactStore, vdir: str) -> None:
    """Files of a publish that died before it claimed `vdir`, which now belongs to this publish."""
    for path in store.fs.find(vdir):
        if posixpath.basename(path) != CLAIM:
            store.fs.rm_file(path)


def read_claim(store: ArtifactStore, vdir: str) -> dict:
    """The claim marker of `vdir` ({} when absent or unreadable: a publish killed while writing it)."""
    try:
        with store.fs.open(posixpath.join(vdir, CLAIM), "rb") as f:
            claim = json.loads(f.read().decode("utf-8"))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return {}
    return claim if isinstance(claim, dict) else {}


def still_ours(store: ArtifactStore, name: str, n: int, token: str) -> bool:
    """Whether version `n` is still this publish's claim and unpublished (checked before its manifest is written)."""
    vpath = store.path(name, vname(n))
    return read_claim(store, vpath).get("token") == token and not store.fs.exists(posixpath.join(vpath, MANIFEST))


def release(store: ArtifactStore, name: str, n: int, token: str) -> None:
    """A failed publish removes its own unpublished folder, so the number is free again at once (best effort:
    `gc` removes what is left)."""
    try:
        if still_ours(store, name, n, token):
            store.fs.rm(store.path(name, vname(n)), recursive=True)
    except Exception:  # noqa: BLE001 - the publish's own error is the one to report
        pass
