"""A versioned artifact store on a local folder or any fsspec URL (``s3://bucket/prefix``, ``file://...``):
`ArtifactStore(url)`, which publishes, lists, resolves references, moves aliases and pulls.

An *artifact* is a named set of files (weights, an inference model, a config, metrics, ...). Every publish of
a name makes a new integer version. Layout::

    <store>/<name>/v<N>/<files...>          the files, under the names given to `publish`
    <store>/<name>/v<N>/manifest.json       written LAST: name, version, created, files {rel: {sha256, size}},
                                            metrics, targets, metadata
    <store>/<name>/v<N>/.publish.json       the claim marker that made the folder this publish's (stays behind)
    <store>/<name>/aliases/<alias>.json     {"alias", "version", "updated", "history"}, written atomically

A version exists only once its ``manifest.json`` does: a publish that crashed (or is still running) leaves a
folder without one, which `list` and `pull` never see; claiming version numbers exclusively, so that concurrent
publishes never share a folder, is `ppipe.artifacts.claim`'s job, removing what crashed publishes left is
`ppipe.artifacts.gc`'s. Manifests are read as untrusted input (`ppipe.artifacts.manifest`): a corrupt one makes
its version unreadable, with an error naming the file, and nothing else.

``latest`` is a reserved alias that always resolves to the newest published version (computed from the
manifests; ``aliases/latest.json`` is also kept up to date for tools that only read files).

The module-level functions (`publish`, `list_artifacts`, `pull`, ...) take the store URL first and are one call
on an `ArtifactStore` each.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import uuid
from typing import Any

from ppipe import storage
from ppipe.artifacts import claim, compare, gc, promote, secrets
from ppipe.artifacts.manifest import CorruptManifest, parse_manifest
from ppipe.artifacts.refs import (LATEST, MANIFEST, NAME_RE, ArtifactError, check_name, check_relpath,
                                  current_user, now_iso, parse_ref, parse_version, version_number, vname)

log = logging.getLogger("ppipe.artifacts")

__all__ = ["ArtifactError", "ArtifactStore", "default_store", "publish", "set_alias", "list_artifacts",
           "list_versions", "resolve", "get_manifest", "pull", "parse_ref"]


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


def _checked_files(name: str, files: dict[str, str]) -> dict[str, str]:
    """{file name inside the artifact: local path}, every name valid and every local file present."""
    if not files:
        raise ArtifactError(f"artifact {name!r}: no files to publish")
    rels: dict[str, str] = {}
    for rel, local in files.items():
        r = check_relpath(rel)
        if r in rels:
            raise ArtifactError(f"artifact {name!r}: file name {r!r} given twice")
        rels[r] = os.fspath(local)
    missing = [f"{r} -> {p}" for r, p in rels.items() if not os.path.isfile(p)]
    if missing:
        raise ArtifactError(f"artifact {name!r}: local file(s) not found: " + ", ".join(missing))
    return rels


class ArtifactStore:
    """The store at `url` (a local folder or fsspec URL; None: `default_store()`)."""

    def __init__(self, url: str | None = None):
        self.url = _store_url(url)
        self.fs, self.root = storage.filesystem(self.url)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    # ----------------------------------------------------------------------------------------------- layout
    def path(self, *parts: str) -> str:
        """A path inside the store, as its filesystem names it."""
        return posixpath.join(self.root, *parts)

    def url_of(self, *parts: str) -> str:
        return storage.join(self.url, *parts)

    def refresh(self) -> None:
        """Forget listings cached by the filesystem (s3fs caches them): other publishers may have written."""
        try:
            self.fs.invalidate_cache()
        except Exception:  # pragma: no cover - filesystems without a listing cache
            pass

    def read_json(self, path: str) -> dict | None:
        """The JSON object at `path` (None when absent); `ArtifactError` naming the file when it is not one."""
        try:
            with self.fs.open(path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
        except FileNotFoundError:
            return None
        except (UnicodeDecodeError, ValueError) as e:
            raise ArtifactError(f"{self.where(path)}: not a JSON file ({e})") from None
        if not isinstance(doc, dict):
            raise ArtifactError(f"{self.where(path)}: holds a {type(doc).__name__}, not a JSON object")
        return doc

    def where(self, path: str) -> str:
        """A store path as the user knows it (the store's URL, not the filesystem's internal path)."""
        rel = posixpath.relpath(path, self.root) if path.startswith(self.root) else path
        return self.url_of(*rel.split("/"))

    def write_json(self, url: str, obj: Any) -> None:
        storage.write_bytes_atomic(url, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    def _ls(self, path: str) -> list[str]:
        """Base names of the entries directly under `path` (empty when it does not exist)."""
        try:
            entries = self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [base for base in (posixpath.basename(str(e).rstrip("/")) for e in entries) if base]

    def names(self) -> list[str]:
        return sorted(b for b in self._ls(self.root) if NAME_RE.match(b))

    def version_numbers(self, name: str) -> list[int]:
        """Numbers of every v<N> folder of `name`, published or not."""
        return sorted(n for n in map(version_number, self._ls(self.path(name))) if n is not None)

    def published_numbers(self, name: str) -> list[int]:
        """Numbers of the folders of `name` that hold a manifest (readable or not: the number is taken)."""
        return [n for n in self.version_numbers(name) if self.fs.exists(self.path(name, vname(n), MANIFEST))]

    def manifest(self, name: str, n: int) -> dict | None:
        """The checked manifest of version `n` of `name`; None when unpublished; `CorruptManifest` naming the file
        when it is damaged, truncated or describes another folder."""
        path = self.path(name, vname(n), MANIFEST)
        try:
            with self.fs.open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return parse_manifest(data, self.where(path), name, n)

    def published(self, name: str) -> dict[int, dict]:
        """{version number: manifest} of the readable published versions of `name`; a corrupt manifest is
        skipped with a warning naming it (on stderr), so one damaged version never hides the others."""
        out: dict[int, dict] = {}
        for n in self.version_numbers(name):
            try:
                manifest = self.manifest(name, n)
            except CorruptManifest as e:
                log.warning("skipping %s:%s: %s", name, vname(n), e)
                continue
            if manifest is not None:
                out[n] = manifest
        return out

    def alias_doc(self, name: str, alias: str) -> dict | None:
        """``aliases/<alias>.json`` of `name`: {"alias", "version", "updated", "history"} (None when absent)."""
        return self.read_json(self.path(name, "aliases", f"{alias}.json"))

    def aliases(self, name: str) -> dict[str, int]:
        """{alias: version number} from ``<name>/aliases/*.json`` (``latest`` excluded: it is computed); an
        unreadable alias file is skipped with a warning naming it."""
        out: dict[str, int] = {}
        for base in self._ls(self.path(name, "aliases")):
            alias = base[: -len(".json")]
            if not base.endswith(".json") or alias == LATEST or not NAME_RE.match(alias):
                continue
            try:
                out[alias] = parse_version((self.alias_doc(name, alias) or {}).get("version"))
            except ArtifactError as e:
                log.warning("skipping alias %s@%s: %s", name, alias, e)
        return out

    # ---------------------------------------------------------------------------------------------- publish
    def publish(self, name: str, files: dict[str, str], *, metrics: dict | None = None,
                targets: list[str] | None = None, aliases: list[str] | None = None,
                metadata: dict | None = None, lineage: dict | None = None) -> dict:
        """Publish `files` ({name inside the artifact: local path}) as the next version of `name`; return its
        manifest.

        The manifest (written last) makes the version visible; then ``latest`` and every alias in `aliases` are
        pointed at it (``latest`` in `aliases` is accepted and changes nothing: it is always the newest). Raises
        `ArtifactError` for an invalid name, a missing local file, non-JSON metadata, or a credential from the
        environment found in a file or in the metadata (`ppipe.artifacts.secrets`).
        """
        check_name("artifact name", name)
        rels = _checked_files(name, files)
        for a in aliases or []:
            check_name("alias", a)
        aliases = [a for a in dict.fromkeys(aliases or []) if a != LATEST]  # 'latest' is automatic
        extra = {"metrics": metrics or {}, "targets": list(targets or []), "metadata": metadata or {},
                 "lineage": lineage or {}}
        try:
            extra = json.loads(json.dumps(extra))
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"artifact {name!r}: metrics/targets/metadata/lineage must be JSON-serialisable: "
                                f"{e}") from e
        secrets.refuse_credentials(name, rels, extra)

        self.refresh()
        token = uuid.uuid4().hex
        n = claim.claim_version(self, name, token)
        try:
            manifest = self._upload(name, n, token, rels, extra)
        except claim.LostClaim:
            raise
        except BaseException:
            claim.release(self, name, n, token)
            raise
        self.refresh()
        # `latest` is computed from the manifests; this file is a convenience for readers of plain files
        newest = max(self.published_numbers(name) or [n])
        self.write_json(self.url_of(name, "aliases", f"{LATEST}.json"),
                        {"alias": LATEST, "version": vname(newest), "updated": now_iso()})
        for a in aliases:
            self.set_alias(name, a, n)
        return manifest

    def _upload(self, name: str, n: int, token: str, rels: dict[str, str], extra: dict) -> dict:
        """The files of version `n`, checksummed, then its manifest (unless gc removed the folder meanwhile)."""
        vurl = self.url_of(name, vname(n))
        entries: dict[str, dict] = {}
        for r, local in sorted(rels.items()):
            entries[r] = {"sha256": storage.sha256_file(local), "size": os.path.getsize(local)}
            storage.upload_file_atomic(local, storage.join(vurl, *r.split("/")))
        self.refresh()
        if not claim.still_ours(self, name, n, token):
            raise claim.LostClaim(f"artifact {name!r} {vname(n)}: the unfinished version was removed during the "
                                  "upload (by `ppipe artifacts gc`?); publish again")
        manifest = {"name": name, "version": vname(n), "created": now_iso(), "files": entries, **extra}
        self.write_json(storage.join(vurl, MANIFEST), manifest)
        return manifest

    def set_alias(self, name: str, alias: str, version: str | int, *, note: dict | None = None) -> dict:
        """Point `alias` of `name` at a published `version` (``v3`` or ``3``); ``latest`` is reserved.

        The alias file keeps its history, newest last: {"version", "from" (the version it pointed at before, or
        None), "by" (the user), "at" (UTC time)}, plus `note` (what `promote` checked)."""
        check_name("artifact name", name)
        check_name("alias", alias)
        if alias == LATEST:
            raise ArtifactError("alias 'latest' is reserved: it always points to the newest version")
        n = parse_version(version)
        self.refresh()
        if self.manifest(name, n) is None:
            raise self._unknown_version(name, vname(n))
        try:
            previous = self.alias_doc(name, alias) or {}
        except ArtifactError as e:  # a damaged alias file is replaced, and the damage noted
            log.warning("replacing %s@%s: %s", name, alias, e)
            previous = {}
        history = [h for h in previous.get("history", []) if isinstance(h, dict)]
        event = {"version": vname(n), "from": previous.get("version"), "by": current_user(), "at": now_iso(),
                 **(note or {})}
        doc = {"alias": alias, "version": vname(n), "updated": event["at"], "history": history + [event]}
        self.write_json(self.url_of(name, "aliases", f"{alias}.json"), doc)
        return doc

    # -------------------------------------------------------------------------------------------- read side
    def _unknown_version(self, name: str, version: str) -> ArtifactError:
        have = ", ".join(vname(k) for k in self.published_numbers(name)) or "none"
        return ArtifactError(f"artifact {name!r} has no version {version} in {self.url} (versions: {have})")

    def resolve(self, ref: str) -> dict:
        """The manifest of the version that `ref` (``NAME``, ``NAME:VERSION``, ``NAME@ALIAS``) names; a corrupt
        manifest of that version raises `CorruptManifest` naming the file."""
        name, kind, value = parse_ref(ref)
        self.refresh()
        numbers = self.published_numbers(name)
        if not numbers:
            have = ", ".join(n for n in self.names() if self.published_numbers(n)) or "none"
            raise ArtifactError(f"no artifact named {name!r} in {self.url} (artifacts: {have})")
        if kind == "version":
            n = parse_version(value)
        elif value == LATEST:
            published = self.published(name)
            if not published:
                raise ArtifactError(f"artifact {name!r} in {self.url}: every version's manifest is unreadable")
            n = max(published)
        else:
            aliases = self.aliases(name)
            if value not in aliases:
                have = ", ".join([LATEST] + sorted(aliases))
                raise ArtifactError(f"artifact {name!r} has no alias {value!r} in {self.url} (aliases: {have})")
            n = aliases[value]
        manifest = self.manifest(name, n)
        if manifest is None:
            if kind == "version":
                raise self._unknown_version(name, value)
            raise ArtifactError(f"alias {name}@{value} points to {vname(n)}, which is not published "
                                f"(versions: {', '.join(vname(k) for k in numbers)})")
        return manifest

    def list(self) -> list[dict]:
        """One dict per readable published version, sorted by name then version number:
        ``{"name", "version": "v3", "aliases": [...], "uri", "targets", "metrics", "created"}``."""
        self.refresh()
        rows: list[dict] = []
        for name in self.names():
            published = self.published(name)
            if not published:
                continue
            by_version: dict[int, list[str]] = {}
            for alias, n in self.aliases(name).items():
                by_version.setdefault(n, []).append(alias)
            for n in sorted(published):
                manifest = published[n]
                rows.append({
                    "name": name,
                    "version": vname(n),
                    "aliases": ([LATEST] if n == max(published) else []) + sorted(by_version.get(n, [])),
                    "uri": self.url_of(name, vname(n)),
                    "targets": list(manifest.get("targets") or []),
                    "metrics": dict(manifest.get("metrics") or {}),
                    "created": manifest.get("created"),
                })
        return rows

    def versions(self, name: str) -> list[dict]:
        """`list` restricted to one artifact name."""
        return [r for r in self.list() if r["name"] == name]

    def show(self, ref: str) -> dict:
        """`ppipe.artifacts.compare.show`: the manifest with its uri, aliases and alias history."""
        return compare.show(self, ref)

    def diff(self, ref_a: str, ref_b: str) -> dict:
        """`ppipe.artifacts.compare.diff`: metrics, files, targets, lineage and metadata that differ."""
        return compare.diff(self, ref_a, ref_b)

    def promote(self, ref: str, alias: str, require: list[str] | tuple[str, ...] = ()) -> dict:
        """`ppipe.artifacts.promote.promote`: move `alias` to `ref`'s version if it passes the metric gates."""
        return promote.promote(self, ref, alias, require)

    def gc(self, *, grace_s: float = gc.DEFAULT_GRACE_S, dry_run: bool = False) -> dict:
        """`ppipe.artifacts.gc.collect`: remove what crashed publishes left, never a published version."""
        return gc.collect(self, grace_s=grace_s, dry_run=dry_run)

    # ------------------------------------------------------------------------------------------------- pull
    def pull(self, ref: str, dest: str, *, overwrite: bool = False) -> dict:
        """Download the version `ref` names into the local folder `dest`, verified; return its manifest.

        Files go to a temporary folder beside `dest`; every size and sha256 is checked against the manifest
        (a mismatch raises `ArtifactError` naming the files, and nothing is left behind); then the folder is
        renamed to `dest`, with ``manifest.json`` beside the files. An existing non-empty `dest` is an error
        unless `overwrite` (then it is replaced).
        """
        manifest = self.resolve(ref)  # checked: its name and version are the folder it was read from
        name, version = manifest["name"], manifest["version"]
        dest = os.path.abspath(os.fspath(dest))
        if os.path.exists(dest) and not (os.path.isdir(dest) and not os.listdir(dest)) and not overwrite:
            raise ArtifactError(f"destination {dest} already exists and is not empty "
                                "(pass overwrite=True to replace it)")
        if os.path.isdir(dest) and not os.listdir(dest):
            os.rmdir(dest)
        with storage.staged_directory(dest, "pull") as tmp:
            bad = [problem for rel, info in sorted(manifest.get("files", {}).items())
                   if (problem := self._download_verified(self.path(name, version), rel, info, tmp))]
            if bad:
                raise ArtifactError(f"{name}:{version} from {self.url} failed verification: " + "; ".join(bad))
            with open(os.path.join(tmp, MANIFEST), "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=2, sort_keys=True)
        return manifest

    def _download_verified(self, vpath: str, rel: str, info: dict, into: str) -> str | None:
        """Copy file `rel` of a version into the folder `into`; what is wrong with it (None: it matches)."""
        rel = check_relpath(rel)  # a manifest can never make pull write outside the destination
        local = os.path.join(into, *rel.split("/"))
        os.makedirs(os.path.dirname(local), exist_ok=True)
        try:
            self.fs.get_file(posixpath.join(vpath, rel), local)
        except FileNotFoundError:
            return f"{rel} (missing from the store)"
        size = os.path.getsize(local)
        if size != info.get("size"):
            return f"{rel} (size {size} != manifest {info.get('size')})"
        digest = storage.sha256_file(local)
        if digest != info.get("sha256"):
            return f"{rel} (sha256 {digest[:12]}... != manifest {str(info.get('sha256'))[:12]}...)"
        return None


# ------------------------------------------------------------------------ the functions the CLI and scripts call
def publish(store: str | None, name: str, files: dict[str, str], **kwargs: Any) -> dict:
    """`ArtifactStore(store).publish(name, files, ...)`."""
    return ArtifactStore(store).publish(name, files, **kwargs)


def set_alias(store: str | None, name: str, alias: str, version: str | int) -> dict:
    return ArtifactStore(store).set_alias(name, alias, version)


def resolve(store: str | None, ref: str) -> dict:
    return ArtifactStore(store).resolve(ref)


get_manifest = resolve


def list_artifacts(store: str | None = None) -> list[dict]:
    return ArtifactStore(store).list()


def list_versions(store: str | None, name: str) -> list[dict]:
    return ArtifactStore(store).versions(name)


def pull(store: str | None, ref: str, dest: str, *, overwrite: bool = False) -> dict:
    return ArtifactStore(store).pull(ref, dest, overwrite=overwrite)
