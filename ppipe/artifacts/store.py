"""A versioned artifact store on a local folder or any fsspec URL (``s3://bucket/prefix``, ``file://...``).

An *artifact* is a named set of files (weights, an inference model, a config, metrics, ...). Every publish of
a name makes a new integer version. Layout::

    <store>/<name>/v<N>/<files...>          the files, under the names given to `publish`
    <store>/<name>/v<N>/manifest.json       written LAST: name, version, created, files {rel: {sha256, size}},
                                            metrics, targets, metadata
    <store>/<name>/v<N>/.publish.json       claim marker of a publish in progress (stays behind; harmless)
    <store>/<name>/aliases/<alias>.json     {"alias", "version", "updated"}, written atomically

A version exists only once its ``manifest.json`` does: a publish that crashed (or is still running) leaves a
folder without one, which `list_artifacts` and `pull` never see. The next publish reuses such a folder's number
when it has no claim marker or a stale one (older than `STALE_PUBLISH_S`), removing the leftovers first; a
fresh claim marker means another publisher is at work, so the next number is taken instead.

``latest`` is a reserved alias that always resolves to the newest published version (computed from the
manifests; ``aliases/latest.json`` is also kept up to date for tools that only read files).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from ppipe import storage

__all__ = [
    "ArtifactError",
    "default_store",
    "publish",
    "set_alias",
    "list_artifacts",
    "list_versions",
    "resolve",
    "get_manifest",
    "pull",
    "parse_ref",
]

MANIFEST = "manifest.json"
CLAIM = ".publish.json"
LATEST = "latest"
STALE_PUBLISH_S = 6 * 3600.0
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
_VERSION_RE = re.compile(r"^v([0-9]+)$")


class ArtifactError(Exception):
    """Any artifact-store failure: bad input, unknown reference, checksum mismatch, ..."""


class _LostClaim(ArtifactError):
    pass


# --------------------------------------------------------------------------------------------------- helpers
def default_store() -> str:
    """`$PPIPE_STORE`, else ``./artifacts`` in the current working directory."""
    env = os.environ.get("PPIPE_STORE")
    if env:
        return env
    return os.path.join(os.getcwd(), "artifacts")


def _store_url(store: str | None) -> str:
    url = str(store) if store else default_store()
    if "://" not in url:
        url = os.path.abspath(os.path.expanduser(url))
    return url.rstrip("/") if len(url.rstrip("/")) > 0 else url


def _check_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in (".", ".."):
        raise ArtifactError(f"invalid {kind} {value!r}: use only letters, digits, '.', '_' and '-'")
    return value


def _parse_version(v: str | int) -> int:
    s = str(v).strip()
    m = _VERSION_RE.match(s) or re.match(r"^([0-9]+)$", s)
    if not m or int(m.group(1)) < 1:
        raise ArtifactError(f"invalid version {v!r}: expected 'v<N>' or '<N>' with N >= 1")
    return int(m.group(1))


def _vname(n: int) -> str:
    return f"v{n}"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _check_relpath(rel: str) -> str:
    r = str(rel).replace("\\", "/")
    parts = r.split("/")
    if (not r or r.startswith("/") or any(p in ("", ".", "..") for p in parts) or ":" in parts[0]):
        raise ArtifactError(f"invalid file name inside the artifact: {rel!r} (use a relative path like 'a/b.json')")
    if r == MANIFEST or r == CLAIM:
        raise ArtifactError(f"file name {rel!r} is reserved by the artifact store")
    return r


def _fs(store_url: str):
    fs, root = storage.filesystem(store_url)
    try:
        fs.invalidate_cache()
    except Exception:  # pragma: no cover - filesystems without a listing cache
        pass
    return fs, root


def _ls_names(fs, path: str) -> list[str]:
    """Base names of the entries directly under `path` (empty when it does not exist)."""
    try:
        entries = fs.ls(path, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for e in entries:
        base = posixpath.basename(str(e).rstrip("/"))
        if base:
            out.append(base)
    return out


def _read_json(fs, path: str) -> dict | None:
    try:
        with fs.open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        return None


def _write_json(url: str, obj: Any) -> None:
    storage.write_bytes_atomic(url, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))


def _version_dirs(fs, root: str, name: str) -> list[int]:
    """Numbers of every v<N> folder of `name`, published or not."""
    out = []
    for base in _ls_names(fs, posixpath.join(root, name)):
        m = _VERSION_RE.match(base)
        if m:
            out.append(int(m.group(1)))
    return sorted(out)


def _published(fs, root: str, name: str) -> dict[int, dict]:
    """{version number: manifest} of the published versions of `name`."""
    out: dict[int, dict] = {}
    for n in _version_dirs(fs, root, name):
        man = _read_json(fs, posixpath.join(root, name, _vname(n), MANIFEST))
        if man is not None:
            out[n] = man
    return out


def _names(fs, root: str) -> list[str]:
    return sorted(b for b in _ls_names(fs, root) if _NAME_RE.match(b) and b not in (".", ".."))


def _aliases(fs, root: str, name: str) -> dict[str, int]:
    """{alias: version number} from ``<name>/aliases/*.json`` (``latest`` excluded: it is computed)."""
    out: dict[str, int] = {}
    adir = posixpath.join(root, name, "aliases")
    for base in _ls_names(fs, adir):
        if not base.endswith(".json") or base.startswith("."):
            continue
        alias = base[: -len(".json")]
        if alias == LATEST or not _NAME_RE.match(alias):
            continue
        doc = _read_json(fs, posixpath.join(adir, base))
        if not doc:
            continue
        try:
            out[alias] = _parse_version(doc.get("version"))
        except ArtifactError:
            continue
    return out


# --------------------------------------------------------------------------------------------------- publish
def _is_stale(fs, vdir: str) -> bool:
    """True when the unpublished folder `vdir` has no claim marker or one older than `STALE_PUBLISH_S`."""
    claim = _read_json(fs, posixpath.join(vdir, CLAIM)) or {}
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


def _claim_version(fs, root: str, store_url: str, name: str, token: str) -> int:
    """Choose and claim the version number for a new publish (see the module docstring)."""
    published = _published(fs, root, name)
    for k in _version_dirs(fs, root, name):  # leftovers of crashed publishes below the newest version
        if published and k < max(published) and k not in published:
            vdir = posixpath.join(root, name, _vname(k))
            if _is_stale(fs, vdir) and not fs.exists(posixpath.join(vdir, MANIFEST)):
                fs.rm(vdir, recursive=True)
    claim = {"token": token, "started": _now_iso(), "started_unix": time.time(), "pid": os.getpid()}
    local = storage.is_local(fs)
    n = (max(published) if published else 0) + 1
    for _ in range(10_000):
        vdir = posixpath.join(root, name, _vname(n))
        if local and _claim_local(vdir, claim):
            return n
        if not local and not fs.exists(vdir):
            break
        # the folder exists: leftovers of a crashed publish (reuse) or a publish in progress (skip)
        if fs.exists(posixpath.join(vdir, MANIFEST)) or not _is_stale(fs, vdir):
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
    _write_json(storage.join(store_url, name, _vname(n), CLAIM), claim)
    return n


def publish(store: str | None, name: str, files: dict[str, str], *, metrics: dict | None = None,
            targets: list[str] | None = None, aliases: list[str] | None = None,
            metadata: dict | None = None) -> dict:
    """Publish `files` ({name inside the artifact: local path}) as the next version of `name`; return its manifest.

    The manifest (written last) makes the version visible; then ``latest`` and every alias in `aliases`
    are pointed at it (``latest`` in `aliases` is accepted and changes nothing: it is always the newest). Raises `ArtifactError` for an invalid name, a missing local file or non-JSON metadata.
    """
    _check_name("artifact name", name)
    if not files:
        raise ArtifactError(f"artifact {name!r}: no files to publish")
    rels: dict[str, str] = {}
    for rel, local in files.items():
        r = _check_relpath(rel)
        if r in rels:
            raise ArtifactError(f"artifact {name!r}: file name {r!r} given twice")
        rels[r] = os.fspath(local)
    missing = [f"{r} -> {p}" for r, p in rels.items() if not os.path.isfile(p)]
    if missing:
        raise ArtifactError(f"artifact {name!r}: local file(s) not found: " + ", ".join(missing))
    for a in aliases or []:
        _check_name("alias", a)
    aliases = [a for a in dict.fromkeys(aliases or []) if a != LATEST]  # 'latest' is automatic
    try:
        extra = json.dumps({"metrics": metrics or {}, "targets": list(targets or []), "metadata": metadata or {}})
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"artifact {name!r}: metrics/targets/metadata must be JSON-serialisable: {e}") from e

    store_url = _store_url(store)
    fs, root = _fs(store_url)
    token = uuid.uuid4().hex
    n = _claim_version(fs, root, store_url, name, token)
    vurl = storage.join(store_url, name, _vname(n))

    vpath = posixpath.join(root, name, _vname(n))
    try:
        entries: dict[str, dict] = {}
        for r, local in sorted(rels.items()):
            entries[r] = {"sha256": storage.sha256_file(local), "size": os.path.getsize(local)}
            storage.upload_file_atomic(local, storage.join(vurl, *r.split("/")))

        # another publisher may have judged our claim stale and taken the folder over: never write over it
        claim = _read_json(fs, posixpath.join(vpath, CLAIM)) or {}
        if claim.get("token") != token or fs.exists(posixpath.join(vpath, MANIFEST)):
            raise _LostClaim(f"artifact {name!r} {_vname(n)}: another publish took over this version; retry")

        manifest = {
            "name": name,
            "version": _vname(n),
            "created": _now_iso(),
            "files": entries,
            **json.loads(extra),
        }
        _write_json(storage.join(vurl, MANIFEST), manifest)
    except _LostClaim:
        raise
    except BaseException:
        # a failed publish removes its own unpublished folder, so the number is free again at once
        try:
            if (not fs.exists(posixpath.join(vpath, MANIFEST))
                    and (_read_json(fs, posixpath.join(vpath, CLAIM)) or {}).get("token") == token):
                fs.rm(vpath, recursive=True)
        except Exception:  # noqa: BLE001 - best effort; a stale claim is cleaned up later anyway
            pass
        raise

    fs, root = _fs(store_url)
    newest = max(_published(fs, root, name) or {n: None})
    _write_json(storage.join(store_url, name, "aliases", f"{LATEST}.json"),
                {"alias": LATEST, "version": _vname(newest), "updated": _now_iso()})
    for a in aliases or []:
        set_alias(store_url, name, a, n)
    return manifest


def set_alias(store: str | None, name: str, alias: str, version: str | int) -> dict:
    """Point `alias` of `name` at a published `version` (``v3`` or ``3``); ``latest`` is reserved."""
    _check_name("artifact name", name)
    _check_name("alias", alias)
    if alias == LATEST:
        raise ArtifactError("alias 'latest' is reserved: it always points to the newest version")
    n = _parse_version(version)
    store_url = _store_url(store)
    fs, root = _fs(store_url)
    published = _published(fs, root, name)
    if n not in published:
        raise _unknown_version(store_url, name, _vname(n), published)
    doc = {"alias": alias, "version": _vname(n), "updated": _now_iso()}
    _write_json(storage.join(store_url, name, "aliases", f"{alias}.json"), doc)
    return doc


# --------------------------------------------------------------------------------------------------- read side
def _unknown_name(store_url: str, name: str, names: list[str]) -> ArtifactError:
    have = ", ".join(names) if names else "none"
    return ArtifactError(f"no artifact named {name!r} in {store_url} (artifacts: {have})")


def _unknown_version(store_url: str, name: str, version: str, published: dict) -> ArtifactError:
    have = ", ".join(_vname(k) for k in sorted(published)) or "none"
    return ArtifactError(f"artifact {name!r} has no version {version} in {store_url} (versions: {have})")


def parse_ref(ref: str) -> tuple[str, str, str | None]:
    """``NAME`` -> (name, "alias", "latest"); ``NAME:V`` -> (name, "version", "vN"); ``NAME@A`` -> (name, "alias", A)."""
    ref = str(ref).strip()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return _check_name("artifact name", name), "alias", _check_name("alias", alias)
    if ":" in ref:
        name, ver = ref.split(":", 1)
        return _check_name("artifact name", name), "version", _vname(_parse_version(ver))
    return _check_name("artifact name", ref), "alias", LATEST


def resolve(store: str | None, ref: str) -> dict:
    """The manifest of the version that `ref` (``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``) names."""
    name, kind, value = parse_ref(ref)
    store_url = _store_url(store)
    fs, root = _fs(store_url)
    published = _published(fs, root, name)
    if not published:
        raise _unknown_name(store_url, name, [n for n in _names(fs, root) if _published(fs, root, n)])
    if kind == "version":
        n = _parse_version(value)
        if n not in published:
            raise _unknown_version(store_url, name, value, published)
        return published[n]
    if value == LATEST:
        return published[max(published)]
    aliases = _aliases(fs, root, name)
    if value not in aliases:
        have = ", ".join([LATEST] + sorted(aliases))
        raise ArtifactError(f"artifact {name!r} has no alias {value!r} in {store_url} (aliases: {have})")
    n = aliases[value]
    if n not in published:
        raise ArtifactError(f"alias {name}@{value} points to {_vname(n)}, which is not published "
                            f"(versions: {', '.join(_vname(k) for k in sorted(published))})")
    return published[n]


get_manifest = resolve


def list_versions(store: str | None, name: str) -> list[dict]:
    """`list_artifacts` restricted to one artifact name."""
    return [r for r in list_artifacts(store) if r["name"] == name]


def list_artifacts(store: str | None = None) -> list[dict]:
    """One dict per published version, sorted by name then version number:
    ``{"name", "version": "v3", "aliases": [...], "uri", "targets", "metrics", "created"}``."""
    store_url = _store_url(store)
    fs, root = _fs(store_url)
    rows: list[dict] = []
    for name in _names(fs, root):
        published = _published(fs, root, name)
        if not published:
            continue
        newest = max(published)
        by_version: dict[int, list[str]] = {}
        for alias, n in _aliases(fs, root, name).items():
            by_version.setdefault(n, []).append(alias)
        for n in sorted(published):
            man = published[n]
            al = sorted(by_version.get(n, []))
            if n == newest:
                al = [LATEST] + al
            rows.append({
                "name": name,
                "version": _vname(n),
                "aliases": al,
                "uri": storage.join(store_url, name, _vname(n)),
                "targets": list(man.get("targets") or []),
                "metrics": dict(man.get("metrics") or {}),
                "created": man.get("created"),
            })
    return rows


# --------------------------------------------------------------------------------------------------- pull
def pull(store: str | None, ref: str, dest: str, *, overwrite: bool = False) -> dict:
    """Download the version `ref` names into the local folder `dest`, verified; return its manifest.

    Files go to a temporary folder beside `dest`; every size and sha256 is checked against the manifest
    (a mismatch raises `ArtifactError` naming the files, and nothing is left behind); then the folder is renamed
    to `dest`, with ``manifest.json`` beside the files. An existing non-empty `dest` is an error unless
    `overwrite` (then it is replaced).
    """
    store_url = _store_url(store)
    manifest = resolve(store_url, ref)
    name, version = manifest["name"], manifest["version"]
    fs, root = _fs(store_url)
    vpath = posixpath.join(root, name, version)

    dest = os.path.abspath(os.fspath(dest))
    if os.path.exists(dest) and not (os.path.isdir(dest) and not os.listdir(dest)) and not overwrite:
        raise ArtifactError(f"destination {dest} already exists and is not empty (pass overwrite=True to replace it)")
    if os.path.isdir(dest) and not os.listdir(dest):
        os.rmdir(dest)
    with storage.staged_directory(dest, "pull") as tmp:
        bad: list[str] = []
        for rel, info in sorted(manifest.get("files", {}).items()):
            rel = _check_relpath(rel)
            local = os.path.join(tmp, *rel.split("/"))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            try:
                fs.get_file(posixpath.join(vpath, rel), local)
            except FileNotFoundError:
                bad.append(f"{rel} (missing from the store)")
                continue
            size = os.path.getsize(local)
            if size != info.get("size"):
                bad.append(f"{rel} (size {size} != manifest {info.get('size')})")
                continue
            digest = storage.sha256_file(local)
            if digest != info.get("sha256"):
                bad.append(f"{rel} (sha256 {digest[:12]}... != manifest {str(info.get('sha256'))[:12]}...)")
        if bad:
            raise ArtifactError(f"{name}:{version} from {store_url} failed verification: " + "; ".join(bad))
        with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
    return manifest
